// The run configuration: resolving the shipped quick config, unknown keys at every level (usage
// errors, exit code 2, naming the dotted key and suggesting the closest), and --set key=value.

import assert from "node:assert/strict";
import {
  allKeys,
  applySet,
  describeConfig,
  readConfigFile,
  resolveConfig,
} from "../../pipeline/config.ts";
import { SiaError } from "../../core/errors.ts";

const QUICK = new URL("../../configs/shards.json", import.meta.url);

function quickRaw(): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(QUICK));
}

/** Runs `f`, which must throw a SiaError with the given exit code; returns its message. */
function siaError(f: () => unknown, exitCode = 2): string {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SiaError, `expected a SiaError, got ${caught}`);
  assert.equal(caught.exitCode, exitCode, caught.message);
  return caught.message;
}

function minimal(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { out: { dir: "runs/test" }, ...extra };
}

// ---------------------------------------------------------------------------------------------
// resolveConfig

Deno.test("resolveConfig of configs/shards.json gives its values, typed", () => {
  const config = resolveConfig(quickRaw());
  assert.deepEqual(config, {
    seed: 0,
    description: quickRaw().description,
    data: {
      source: "mnist",
      labels: "",
      size: 1000,
      balanced: true,
      testFraction: 0.2,
      splitSeed: 0,
    },
    generate: {
      generator: "noise",
      count: 2000,
      batchSize: 256,
      params: { r: 1, s: 0.05, k: 0, clip: false },
    },
    augment: { stage: "", params: {} },
    out: { dir: "runs/shards", shardSize: 10000, summary: true, nnSample: 1000 },
  });
});

Deno.test("resolveConfig does not modify its input", () => {
  const raw = quickRaw();
  const before = JSON.stringify(raw);
  resolveConfig(raw);
  assert.equal(JSON.stringify(raw), before);
  // generate.params is still there: resolveConfig copies generate before removing it.
  assert.ok("params" in (raw.generate as Record<string, unknown>));
});

Deno.test("resolveConfig fills every default from a minimal config", () => {
  const config = resolveConfig(minimal());
  assert.equal(config.seed, 0);
  assert.equal(config.description, "");
  assert.deepEqual(config.data, {
    source: "mnist",
    labels: "",
    size: 0,
    balanced: true,
    testFraction: 0.2,
    splitSeed: 0,
  });
  assert.deepEqual(config.generate, {
    generator: "noise",
    count: 1000,
    batchSize: 256,
    params: { r: 1, s: 0.05, k: 0, clip: false },
  });
  assert.deepEqual(config.out, {
    dir: "runs/test",
    shardSize: 10000,
    summary: true,
    nnSample: 1000,
  });
});

Deno.test("unknown top-level key: usage error suggesting the closest", () => {
  assert.equal(
    siaError(() => resolveConfig(minimal({ sed: 3 }))),
    'sed: unknown key (did you mean "seed"?)',
  );
  assert.equal(
    siaError(() => resolveConfig(minimal({ dat: {} }))),
    'dat: unknown key (did you mean "data"?)',
  );
  const far = siaError(() => resolveConfig(minimal({ qqqqqqqqqqqq: 1 })));
  assert.match(
    far,
    /^qqqqqqqqqqqq: unknown key \(valid: seed, description, data, generate, augment, out/,
  );
});

Deno.test("unknown section key names the dotted key and suggests the closest", () => {
  assert.equal(
    siaError(() => resolveConfig(minimal({ data: { sise: 100 } }))),
    'data.sise: unknown key (did you mean "data.size"?)',
  );
  assert.equal(
    siaError(() => resolveConfig(minimal({ generate: { cout: 5 } }))),
    'generate.cout: unknown key (did you mean "generate.count"?)',
  );
  assert.equal(
    siaError(() => resolveConfig({ out: { dir: "x", shardsize: 5 } })),
    'out.shardsize: unknown key (did you mean "out.shardSize"?)',
  );
});

Deno.test("unknown generate.params key names the dotted key and lists the noise params", () => {
  const message = siaError(() => resolveConfig(minimal({ generate: { params: { radius: 1 } } })));
  assert.match(message, /^generate\.params\.radius: unknown key/);
  assert.match(
    message,
    /valid: generate\.params\.r, generate\.params\.s, generate\.params\.k, generate\.params\.clip/,
  );
  assert.equal(
    siaError(() => resolveConfig(minimal({ generate: { params: { clp: true } } }))),
    'generate.params.clp: unknown key (did you mean "generate.params.clip"?)',
  );
});

Deno.test("bad values in a config are usage errors naming the dotted key", () => {
  assert.match(
    siaError(() => resolveConfig(minimal({ generate: { params: { k: 1.5 } } }))),
    /^generate\.params\.k: expected an integer >= 0, got 1\.5$/,
  );
  assert.match(
    siaError(() => resolveConfig(minimal({ generate: { params: { r: -1 } } }))),
    /^generate\.params\.r: /,
  );
  assert.match(siaError(() => resolveConfig(minimal({ seed: -1 }))), /^seed: /);
  assert.match(siaError(() => resolveConfig(minimal({ seed: "1" }))), /^seed: /);
  assert.match(
    siaError(() => resolveConfig(minimal({ data: { testFraction: 0.95 } }))),
    /^data\.testFraction: .*<= 0\.9/,
  );
  assert.match(siaError(() => resolveConfig(minimal({ data: 5 }))), /^data: expected an object/);
  assert.match(
    siaError(() => resolveConfig(minimal({ generate: { params: [] } }))),
    /^generate\.params: expected an object/,
  );
  assert.match(siaError(() => resolveConfig([])), /^config: /);
  assert.match(siaError(() => resolveConfig(null)), /^config: /);
});

Deno.test('unknown generator "nosie" suggests "noise"', () => {
  assert.equal(
    siaError(() => resolveConfig(minimal({ generate: { generator: "nosie" } }))),
    'generate.generator: unknown generator "nosie" (did you mean "noise"?)',
  );
});

Deno.test("a missing or empty out.dir is an error", () => {
  for (const raw of [{}, { out: {} }, { out: { dir: "" } }, { out: { shardSize: 5 } }]) {
    const message = siaError(() => resolveConfig(raw));
    assert.match(message, /^out\.dir: /, JSON.stringify(raw));
  }
});

// ---------------------------------------------------------------------------------------------
// applySet

Deno.test("applySet sets nested values with the key's type", () => {
  const raw: Record<string, unknown> = {};
  applySet(raw, "generate.params.r=0.5");
  applySet(raw, "out.summary=false");
  applySet(raw, "generate.count=12");
  applySet(raw, "seed=7");
  applySet(raw, "data.source=some/path=with=equals");
  applySet(raw, "out.dir=runs/x");
  assert.deepEqual(raw, {
    generate: { params: { r: 0.5 }, count: 12 },
    out: { summary: false, dir: "runs/x" },
    seed: 7,
    data: { source: "some/path=with=equals" },
  });
  const generate = raw.generate as { params: { r: unknown }; count: unknown };
  assert.equal(typeof generate.params.r, "number");
  assert.equal(typeof (raw.out as { summary: unknown }).summary, "boolean");
  // And the result resolves.
  const config = resolveConfig(raw);
  assert.equal(config.generate.params.r, 0.5);
  assert.equal(config.generate.count, 12);
  assert.equal(config.out.summary, false);
  assert.equal(config.seed, 7);
  assert.equal(config.data.source, "some/path=with=equals");
});

Deno.test("applySet overrides values from a config file and keeps the rest", () => {
  const raw = quickRaw();
  applySet(raw, "generate.params.k=3");
  applySet(raw, "data.balanced=false");
  const config = resolveConfig(raw);
  assert.deepEqual(config.generate.params, { r: 1, s: 0.05, k: 3, clip: false });
  assert.equal(config.data.balanced, false);
  assert.equal(config.data.size, 1000);
});

Deno.test("applySet rejects values that do not parse as the key's type", () => {
  assert.equal(
    siaError(() => applySet({}, "generate.count=abc")),
    'generate.count: expected an integer >= 1, got "abc"',
  );
  assert.match(siaError(() => applySet({}, "generate.count=0")), /^generate\.count: .*>= 1/);
  assert.match(siaError(() => applySet({}, "generate.params.r=abc")), /^generate\.params\.r: /);
  assert.match(siaError(() => applySet({}, "generate.params.k=1.5")), /^generate\.params\.k: /);
  assert.match(siaError(() => applySet({}, "out.summary=yes")), /^out\.summary: /);
  assert.match(siaError(() => applySet({}, "seed=")), /^seed: /);
});

Deno.test("applySet leaves the config untouched when it rejects", () => {
  const raw = { generate: { count: 5 } };
  siaError(() => applySet(raw, "generate.count=abc"));
  assert.deepEqual(raw, { generate: { count: 5 } });
});

Deno.test("applySet rejects assignments without a key or an =", () => {
  assert.equal(siaError(() => applySet({}, "count")), '--set: expected key=value, got "count"');
  assert.match(siaError(() => applySet({}, "=5")), /^--set: expected key=value/);
  assert.match(siaError(() => applySet({}, "")), /^--set: /);
});

Deno.test("applySet rejects unknown keys with a dotted suggestion", () => {
  assert.equal(
    siaError(() => applySet({}, "data.sise=100")),
    'data.sise: unknown key (did you mean "data.size"?)',
  );
  assert.match(
    siaError(() => applySet({}, "generate.params.radius=1")),
    /^generate\.params\.radius: unknown key \((did you mean "generate\.params\.[rskclip]+"|valid: .*generate\.params\.r\b)/,
  );
  const count = siaError(() => applySet({}, "count=abc"));
  assert.match(count, /^count: unknown key/);
  assert.ok(count.includes("generate.count"), count);
  assert.match(siaError(() => applySet({}, "data.size.x=1")), /^data\.size\.x: unknown key/);
  assert.match(siaError(() => applySet({}, "nope.size=1")), /^nope\.size: unknown key/);
});

Deno.test("applySet on generator params checks the configured generator", () => {
  assert.equal(
    siaError(() => applySet({ generate: { generator: "nosie" } }, "generate.params.r=1")),
    'generate.generator: unknown generator "nosie" (did you mean "noise"?)',
  );
});

// ---------------------------------------------------------------------------------------------
// readConfigFile, allKeys, describeConfig

Deno.test("readConfigFile reads the quick config and names the file on problems", async () => {
  assert.deepEqual(await readConfigFile(QUICK.pathname), quickRaw());
  const dir = await Deno.makeTempDir({ prefix: "sia-config-" });
  try {
    const bad = `${dir}/bad.json`;
    await Deno.writeTextFile(bad, "{ not json");
    const notObject = `${dir}/array.json`;
    await Deno.writeTextFile(notObject, "[1, 2]");
    const missing = `${dir}/missing.json`;
    for (
      const [path, why] of [[bad, "not valid JSON"], [notObject, "JSON object"], [
        missing,
        "no such file",
      ]]
    ) {
      await assert.rejects(readConfigFile(path), (e: unknown) => {
        assert.ok(e instanceof SiaError);
        assert.equal(e.exitCode, 1);
        assert.ok(e.message.startsWith(`${path}: `), e.message);
        assert.ok(e.message.includes(why), e.message);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("allKeys and describeConfig cover every section and the noise params", () => {
  const keys = allKeys("noise");
  for (
    const k of [
      "seed",
      "description",
      "data.size",
      "generate.count",
      "out.dir",
      "generate.params.r",
      "generate.params.clip",
    ]
  ) {
    assert.ok(keys.includes(k), k);
  }
  assert.ok(!allKeys("nope").some((k) => k.startsWith("generate.params.")));
  const help = describeConfig().join("\n");
  for (const k of keys) assert.ok(help.includes(k), `help lacks ${k}`);
});

// ---------------------------------------------------------------------------------------------
// The augment section

Deno.test("augment: no stage by default; a stage's params resolve with its preset's defaults", () => {
  assert.deepEqual(resolveConfig(minimal()).augment, { stage: "", params: {} });
  const config = resolveConfig(
    minimal({ augment: { stage: "contrastive", params: { preset: "weak", views: 3 } } }),
  );
  assert.equal(config.augment.stage, "contrastive");
  assert.equal(config.augment.params.preset, "weak");
  assert.equal(config.augment.params.views, 3);
});

Deno.test("augment: unknown stage and unknown or bad params are usage errors that suggest", () => {
  const error = (raw: Record<string, unknown>) => {
    try {
      resolveConfig(raw);
    } catch (e) {
      assert.ok(e instanceof SiaError && e.exitCode === 2);
      return e.message;
    }
    throw new Error("no error");
  };
  assert.match(error(minimal({ augment: { stage: "contrastiv" } })), /did you mean "contrastive"/);
  assert.match(
    error(minimal({ augment: { stage: "contrastive", params: { presett: "weak" } } })),
    /augment\.params\.presett: unknown key \(did you mean "augment\.params\.preset"\?\)/,
  );
  const raw = minimal({ augment: { stage: "contrastive" } });
  applySet(raw, "augment.params.views=4");
  assert.equal((raw.augment as { params: { views: number } }).params.views, 4);
  assert.throws(() => applySet(raw, "augment.params.preset=wek"), /did you mean "weak"/);
});
