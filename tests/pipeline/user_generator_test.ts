// A user's own generator module (pipeline/user_generator.ts, examples/my_generator.ts): run through
// `generate` it makes exactly what it says (every image the mirror of a training image), a config
// names it by a path relative to the config file, it is a Table 3 arm, and a module that breaks
// the contract, or options that fail its schema, is one line naming the module with nothing
// written.

import assert from "node:assert/strict";
import { decodeNpy, npyValues } from "../../core/npy.ts";
import type { Dataset } from "../../core/batch.ts";
import { makePool } from "../../pipeline/experiments/shared.ts";
import { resolveTables12Config } from "../../pipeline/experiments/tables12.ts";
import { cellFileName } from "../../pipeline/experiments/experiment.ts";
import { loadGeneratorModule } from "../../pipeline/user_generator.ts";
import { resolveSection } from "../../core/schema.ts";
import { subset } from "../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../stages/load/mnist.ts";
import { REPO, runCli, withTempDir } from "../_cli.ts";
import { listNames } from "../_shared.ts";

const EXAMPLE = "./examples/my_generator.ts";

/** The left-right mirror of image q of a [n, 28, 28, 1] array. */
function mirror(images: Float32Array, q: number): Float32Array {
  const out = new Float32Array(784);
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) out[r * 28 + c] = images[q * 784 + r * 28 + 27 - c];
  }
  return out;
}

/** For each image, whether its mirror is, byte for byte, one of the training images. */
function mirroredFromTraining(images: Float32Array, train: Dataset): boolean[] {
  const keys = new Set<string>();
  for (let i = 0; i < train.shape[0]; i++) {
    keys.add(train.images.subarray(i * 784, (i + 1) * 784).join(","));
  }
  return Array.from(
    { length: images.length / 784 },
    (_, q) => keys.has(mirror(images, q).join(",")),
  );
}

Deno.test("generate --generator ./examples/my_generator.ts: every image is a training image mirrored", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/out`;
    const r = await runCli([
      "generate",
      "--data",
      "mnist",
      "--generator",
      EXAMPLE,
      "--count",
      "40",
      "--seed",
      "3",
      "--out",
      out,
      "--set",
      "data.size=100",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const images = npyValues(decodeNpy(await Deno.readFile(`${out}/images-00000.npy`)));
    const manifest = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
    assert.equal(manifest.generator.name, EXAMPLE);
    assert.equal(manifest.generator.provenance, "noised");
    // The CLI's training subset: the embedded MNIST's seeded split, then size 100 with seed 3.
    const train = subset(loadEmbeddedMnist(), 0, true, 0);
    assert.ok(mirroredFromTraining(images as Float32Array, train).every(Boolean));
  });
});

function moduleSource(body: string): string {
  return `import { map } from "rxjs";\nimport type { Batch } from "${REPO}/core/batch.ts";\n${body}`;
}

Deno.test("a config names a module relative to itself; options and --set go through its schema", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/conf/gens`, { recursive: true });
    // A generator that scales every anchor by k: provably k times a training image.
    await Deno.writeTextFile(
      `${dir}/conf/gens/scale.ts`,
      moduleSource(`
export const params = { k: { type: "number", min: 0, default: 1, doc: "scale" } } as const;
export const create = ({ k }: { k: number }) =>
  map((b: Batch) => ({ ...b, images: b.images.map((v) => v * k) }));
`),
    );
    const config = {
      data: { source: "mnist", size: 50 },
      generate: { generator: "./gens/scale.ts", count: 10, params: { k: 2 } },
      out: { dir: `${dir}/out`, summary: false },
    };
    await Deno.writeTextFile(`${dir}/conf/c.json`, JSON.stringify(config));
    // Run from another working directory: the path is the config file's, not the cwd's.
    const ok = await runCli([
      "pipeline",
      "--config",
      `${dir}/conf/c.json`,
      "--set",
      "generate.params.k=3",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const images = npyValues(decodeNpy(await Deno.readFile(`${dir}/out/images-00000.npy`)));
    let max = 0;
    for (const v of images) max = Math.max(max, v);
    assert.ok(max > 1.5 && max <= 3, `max ${max}: the anchors were scaled by 3`);
    const bad = await runCli([
      "pipeline",
      "--config",
      `${dir}/conf/c.json`,
      "--set",
      "generate.params.k=-1",
    ]);
    assert.equal(bad.code, 2);
    // Named twice: the config file and the module.
    assert.match(
      bad.stderr.trim(),
      /^sia: \S+\/conf\/c\.json: generator module \.\/gens\/scale\.ts: generate\.params\.k: expected a number >= 0, got -1$/,
    );
    await Deno.writeTextFile(
      `${dir}/conf/c.json`,
      JSON.stringify({ ...config, generate: { ...config.generate, params: { kk: 1 } } }),
    );
    const unknown = await runCli(["pipeline", "--config", `${dir}/conf/c.json`]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /^sia: .*c\.json: generator module \.\/gens\/scale\.ts: generate\.params\.kk: unknown key \(did you mean "generate\.params\.k"\?\)\n$/,
    );
  });
});

Deno.test("modules that break the contract: one line naming the module, exit 1, nothing written", async () => {
  const cases: [string, string, RegExp][] = [
    [
      "missing.ts",
      "",
      /^sia: generator module \S+missing\.ts: cannot import file:\/\/\S+ \(Module not found/,
    ],
    [
      "no_create.ts",
      moduleSource(`export const params = {};\n`),
      /^sia: generator module \S+no_create\.ts: exports no `create` \(its operator factory/,
    ],
    [
      "no_params.ts",
      moduleSource(`export const create = () => map((b: Batch) => b);\n`),
      /^sia: generator module \S+no_params\.ts: exports no `params`/,
    ],
    [
      "bad_field.ts",
      moduleSource(
        `export const params = { r: { type: "float", default: 1, doc: "" } };\nexport const create = () => map((b: Batch) => b);\n`,
      ),
      /^sia: generator module \S+bad_field\.ts: params\.r: type must be one of int, number, boolean, string, enum$/,
    ],
    [
      "bad_default.ts",
      moduleSource(
        `export const params = { r: { type: "int", min: 0, default: -2, doc: "r" } };\nexport const create = () => map((b: Batch) => b);\n`,
      ),
      /^sia: generator module \S+bad_default\.ts: params\.r\.default: expected an integer >= 0, got -2$/,
    ],
    [
      "syntax.ts",
      "export const = ;\n",
      /^sia: generator module \S+syntax\.ts: cannot import /,
    ],
  ];
  await withTempDir(async (dir) => {
    for (const [name, source, want] of cases) {
      if (source) await Deno.writeTextFile(`${dir}/${name}`, source);
      const out = `${dir}/out-${name}`;
      await Deno.mkdir(out);
      const r = await runCli([
        "generate",
        "--generator",
        `${dir}/${name}`,
        "--count",
        "4",
        "--out",
        out,
      ]);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr.trim(), want, name);
      assert.deepEqual(await listNames(out), []);
    }
  });
});

Deno.test("a generator module is a Table 3 arm: its pool is the module's output, its cells run", async () => {
  const stage = await loadGeneratorModule(EXAMPLE, REPO);
  const train = subset(loadEmbeddedMnist(), 300, true, 0);
  const pool = await makePool(EXAMPLE, resolveSection(stage.params, {}, "p."), train, 32, 0, "arm");
  assert.ok(mirroredFromTraining(pool.images, train).every(Boolean));
  await withTempDir(async (dir) => {
    const config = {
      experiment: "table3",
      data: { source: "mnist", size: 300 },
      table3: {
        learners: "simclr",
        seeds: "0",
        steps: 2,
        batch: 8,
        dim: 16,
        pool: 32,
        probeTrain: 100,
        probeTest: 50,
      },
      generators: { [`${REPO}/examples/my_generator.ts`]: { s: 0.01 } },
      out: { dir: `${dir}/t3` },
    };
    await Deno.writeTextFile(`${dir}/t3.json`, JSON.stringify(config));
    const r = await runCli(["pipeline", "--config", `${dir}/t3.json`]);
    assert.equal(r.code, 0, r.stderr);
    const arm = `generated:${REPO}/examples/my_generator.ts`;
    const file = `${dir}/t3/cells/${cellFileName({ learner: "simclr", arm, seed: 0 })}.json`;
    const cell = JSON.parse(await Deno.readTextFile(file));
    assert.equal(cell.key.arm, arm);
    assert.ok(cell.result.logistic >= 0 && cell.result.logistic <= 1 && cell.result.steps === 2);
  });
});

Deno.test("a generator module is a Tables 1/2 column by config", async () => {
  await loadGeneratorModule(EXAMPLE, REPO);
  const config = resolveTables12Config({
    experiment: "tables12",
    generators: { mine: { generator: EXAMPLE, params: { s: 0.02 } } },
    out: { dir: "unused" },
  });
  assert.equal(config.generators.mine.stage, EXAMPLE);
  assert.equal(config.generators.mine.params.s, 0.02);
  assert.throws(
    () =>
      resolveTables12Config({
        experiment: "tables12",
        generators: { mine: { generator: EXAMPLE, params: { s: -1 } } },
        out: { dir: "unused" },
      }),
    /^SiaError: generator module \.\/examples\/my_generator\.ts: generators\.mine\.params\.s: expected a number >= 0, got -1$/,
  );
});
