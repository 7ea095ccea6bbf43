// The command line's contract, driven as a user drives it (a subprocess of main.ts): what
// `generate` writes and that numpy reads it exactly, same seed -> same bytes however the stream
// is batched, one clear line and no output files for every kind of bad input, and --help.

import assert from "node:assert/strict";
import { decodeNpy, npyValues } from "../core/npy.ts";
import denoJson from "../deno.json" with { type: "json" };
import {
  assertOneLineError,
  bytesOf,
  exists,
  HAS_NUMPY,
  idxBytes,
  npyBytes,
  python,
  REPO,
  runCli,
  snapshot,
  unitPixels,
  withTempDir,
} from "./_cli.ts";
import type { CliResult } from "./_cli.ts";
import { listNames } from "./_shared.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** A small, fast generate run on the embedded MNIST: 200 training images, noise generator. */
function generateArgs(out: string, count: number, seed: number, ...extra: string[]): string[] {
  return [
    "generate",
    "--data",
    "mnist",
    "--generator",
    "noise",
    "--count",
    String(count),
    "--seed",
    String(seed),
    "--out",
    out,
    "--set",
    "data.size=200",
    ...extra,
  ];
}

function assertOk(result: CliResult): void {
  assert.equal(result.code, 0, `exit ${result.code}\nstderr: ${result.stderr}`);
}

async function readNpy(path: string) {
  return decodeNpy(await Deno.readFile(path));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function readManifest(dir: string): Promise<Json> {
  return JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
}

// ---------------------------------------------------------------------------------------------
// 1. What generate writes

Deno.test("generate writes images-00000.npy float32 [300,28,28,1], labels int32 [300] and a full manifest", async () => {
  await withTempDir(async (tmp) => {
    const out = `${tmp}/run`;
    const result = await runCli(generateArgs(out, 300, 0));
    assertOk(result);
    assert.match(result.stderr, /wrote 300 images to /);
    assert.deepEqual(await listNames(out), [
      "images-00000.npy",
      "labels-00000.npy",
      "manifest.json",
    ]);

    const images = await readNpy(`${out}/images-00000.npy`);
    assert.equal(images.descr, "<f4");
    assert.deepEqual(images.shape, [300, 28, 28, 1]);
    const pixels = new Float32Array(images.data.buffer);
    assert.ok(pixels.every(Number.isFinite), "every pixel is finite");
    // Noised MNIST: values leave [0, 1] (unclipped noise) but stay near it, and differ per image.
    const lo = pixels.reduce((a, b) => Math.min(a, b));
    const hi = pixels.reduce((a, b) => Math.max(a, b));
    assert.ok(lo < 0 && lo > -2 && hi > 1 && hi < 3, `pixel range [${lo}, ${hi}]`);
    assert.notDeepEqual(pixels.subarray(0, 784), pixels.subarray(784, 2 * 784));

    const labels = await readNpy(`${out}/labels-00000.npy`);
    assert.equal(labels.descr, "<i4");
    assert.deepEqual(labels.shape, [300]);
    const classes = new Int32Array(labels.data.buffer);
    assert.ok(classes.every((l) => l >= 0 && l <= 9), "MNIST labels are 0..9");

    const manifest: Json = await readManifest(out);
    assert.equal(manifest.interrupted, false);
    assert.equal(manifest.seed, 0);
    assert.equal(manifest.config.seed, 0);
    assert.equal(manifest.config.data.source, "mnist");
    assert.equal(manifest.config.data.size, 200);
    assert.equal(manifest.config.generate.generator, "noise");
    assert.equal(manifest.config.generate.count, 300);
    assert.deepEqual(manifest.config.generate.params, { r: 1, s: 0.05, k: 0, clip: false });
    assert.equal(manifest.config.out.dir, out);
    assert.equal(manifest.data.trainImages, 200);
    assert.deepEqual(manifest.data.imageShape, [28, 28, 1]);
    assert.equal(manifest.versions.sia, denoJson.version);
    assert.equal(manifest.versions.deno, Deno.version.deno);
    assert.equal(manifest.versions.rxjs, denoJson.imports.rxjs.replace("npm:rxjs@", ""));
    assert.ok(manifest.command.includes("--count 300"), manifest.command);
    // Counts agree with the labels actually written.
    assert.equal(manifest.counts.total, 300);
    const perClass: Record<string, number> = {};
    for (const l of classes) perClass[l] = (perClass[l] ?? 0) + 1;
    assert.deepEqual(manifest.counts.perClass, perClass);
    assert.deepEqual(manifest.counts.perOrigin, { "noised (noise)": 300 });
    assert.deepEqual(manifest.shards.files, [
      { images: "images-00000.npy", labels: "labels-00000.npy", count: 300 },
    ]);
    for (const key of ["loadSeconds", "generateSeconds", "totalSeconds", "imagesPerSecond"]) {
      assert.ok(
        typeof manifest.timings[key] === "number" && manifest.timings[key] > 0,
        `timings.${key} = ${manifest.timings[key]}`,
      );
    }
    assert.ok(manifest.timings.totalSeconds >= manifest.timings.generateSeconds);
    assert.ok(Date.parse(manifest.finishedAt) >= Date.parse(manifest.startedAt));
  });
});

Deno.test("generate --set out.shardSize=128 cuts the same stream into shards of 128, 128, 44", async () => {
  await withTempDir(async (tmp) => {
    const [whole, sharded] = await Promise.all([
      runCli(generateArgs(`${tmp}/whole`, 300, 0)),
      runCli(generateArgs(`${tmp}/sharded`, 300, 0, "--set", "out.shardSize=128")),
    ]);
    assertOk(whole);
    assertOk(sharded);
    const dir = `${tmp}/sharded`;
    assert.deepEqual(await listNames(dir), [
      "images-00000.npy",
      "images-00001.npy",
      "images-00002.npy",
      "labels-00000.npy",
      "labels-00001.npy",
      "labels-00002.npy",
      "manifest.json",
    ]);
    const counts = [128, 128, 44];
    const imageParts: Uint8Array[] = [];
    const labelParts: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const images = await readNpy(`${dir}/images-0000${i}.npy`);
      const labels = await readNpy(`${dir}/labels-0000${i}.npy`);
      assert.equal(images.descr, "<f4");
      assert.deepEqual(images.shape, [counts[i], 28, 28, 1]);
      assert.equal(labels.descr, "<i4");
      assert.deepEqual(labels.shape, [counts[i]]);
      imageParts.push(images.data);
      labelParts.push(labels.data);
    }
    const manifest: Json = await readManifest(dir);
    assert.deepEqual(
      manifest.shards.files,
      counts.map((count, i) => ({
        images: `images-0000${i}.npy`,
        labels: `labels-0000${i}.npy`,
        count,
      })),
    );
    assert.equal(manifest.shards.images, 300);
    // The shards, end to end, are exactly the single-shard run's arrays.
    const one = await readNpy(`${tmp}/whole/images-00000.npy`);
    const oneLabels = await readNpy(`${tmp}/whole/labels-00000.npy`);
    assert.deepEqual(concat(imageParts), one.data);
    assert.deepEqual(concat(labelParts), oneLabels.data);
  });
});

const NUMPY_SCRIPT = `
import hashlib, json, sys
import numpy as np
out = []
for path in sys.argv[1:]:
    a = np.load(path)
    flat = a.ravel()
    seq = 0.0
    for v in flat.tolist():
        seq += v
    n = flat.size
    idx = [0, 1, n // 3, n // 2, n - 2, n - 1]
    out.append({
        "dtype": str(a.dtype),
        "shape": list(a.shape),
        "fortran": bool(np.isfortran(a)) if a.ndim > 1 else False,
        "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
        "sequentialSum": seq,
        "sum": float(a.astype(np.float64).sum()),
        "min": float(a.min()),
        "max": float(a.max()),
        "at": [float(flat[i]) for i in idx],
        "head": [float(v) for v in flat[:16]],
    })
print(json.dumps(out))
`;

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: "numpy reads every shard generate writes, value for value as decodeNpy does",
  ignore: !HAS_NUMPY,
  fn: async () => {
    await withTempDir(async (tmp) => {
      const out = `${tmp}/run`;
      assertOk(await runCli(generateArgs(out, 300, 0, "--set", "out.shardSize=128")));
      const paths = [0, 1, 2].flatMap((i) => [
        `${out}/images-0000${i}.npy`,
        `${out}/labels-0000${i}.npy`,
      ]);
      const fromNumpy: Json[] = JSON.parse(await python(NUMPY_SCRIPT, ...paths));
      assert.equal(fromNumpy.length, paths.length);
      for (let p = 0; p < paths.length; p++) {
        const ours = await readNpy(paths[p]);
        const theirs = fromNumpy[p];
        const isImages = paths[p].includes("images-");
        assert.equal(theirs.dtype, isImages ? "float32" : "int32", paths[p]);
        assert.deepEqual(theirs.shape, ours.shape, paths[p]);
        assert.equal(theirs.fortran, false);
        assert.equal(theirs.sha256, await sha256Hex(ours.data), `${paths[p]}: same bytes`);
        const values: Float32Array | Int32Array = isImages
          ? new Float32Array(ours.data.buffer)
          : new Int32Array(ours.data.buffer);
        let seq = 0;
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of values) {
          seq += v;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        // Same order of float64 additions on both sides: exactly the same double.
        assert.equal(theirs.sequentialSum, seq, `${paths[p]}: sequential float64 sum`);
        // numpy's own (pairwise) float64 sum agrees to rounding.
        assert.ok(
          Math.abs(theirs.sum - seq) <= 1e-9 * Math.max(1, Math.abs(seq)),
          `${paths[p]}: numpy sum ${theirs.sum} vs ${seq}`,
        );
        assert.equal(theirs.min, lo);
        assert.equal(theirs.max, hi);
        const n = values.length;
        const idx = [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 2, n - 1];
        assert.deepEqual(theirs.at, idx.map((i) => values[i]));
        assert.deepEqual(theirs.head, Array.from(values.subarray(0, 16)));
      }
    });
  },
});

// ---------------------------------------------------------------------------------------------
// 2. Determinism

async function shardBytes(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const name of await listNames(dir)) {
    if (name.endsWith(".npy")) out[name] = await Deno.readFile(`${dir}/${name}`);
  }
  return out;
}

Deno.test("same seed -> byte-identical shards, whatever generate.batchSize; another seed -> other bytes", async () => {
  await withTempDir(async (tmp) => {
    const runs = [
      ["a", 7, "256"],
      ["b", 7, "256"],
      ["c", 7, "1"],
      ["d", 7, "13"],
      ["e", 8, "256"],
    ] as const;
    const results = await Promise.all(
      runs.map(([name, seed, batchSize]) =>
        runCli(
          generateArgs(`${tmp}/${name}`, 40, seed, "--set", `generate.batchSize=${batchSize}`),
        )
      ),
    );
    results.forEach(assertOk);
    const [a, b, c, d, e] = await Promise.all(runs.map(([name]) => shardBytes(`${tmp}/${name}`)));
    assert.deepEqual(Object.keys(a), ["images-00000.npy", "labels-00000.npy"]);
    assert.deepEqual(b, a, "a rerun with the same seed");
    assert.deepEqual(c, a, "batchSize 1");
    assert.deepEqual(d, a, "batchSize 13 (a last batch of 1)");
    assert.deepEqual(Object.keys(e), Object.keys(a));
    assert.equal(e["images-00000.npy"].length, a["images-00000.npy"].length);
    assert.notDeepEqual(e["images-00000.npy"], a["images-00000.npy"], "seed 8 differs from 7");
    // Not just a few bytes: almost every pixel of the other seed differs.
    const x = new Float32Array(decodeNpy(a["images-00000.npy"]).data.buffer);
    const y = new Float32Array(decodeNpy(e["images-00000.npy"]).data.buffer);
    let same = 0;
    for (let i = 0; i < x.length; i++) if (x[i] === y[i]) same++;
    assert.ok(same < x.length / 100, `${same} of ${x.length} pixels equal across seeds`);
    // The manifests record the seed and batch size each run used.
    assert.equal((await readManifest(`${tmp}/c`)).config.generate.batchSize, 1);
    assert.equal((await readManifest(`${tmp}/e`)).seed, 8);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Bad input: exit status, one line naming the file or key and the problem, no output files

interface BadCase {
  /** Writes fixtures into the temp dir. */
  setup?: (tmp: string) => Promise<void>;
  /** The command line, given the output directory to use. */
  args: (tmp: string, out: string) => string[];
  code: number;
  /** What the one stderr line must contain, given the temp dir. */
  expect: (tmp: string) => (string | RegExp)[];
  /** Run only against a fresh output path (default: also against an earlier run's dir). */
  freshOnly?: boolean;
}

/** Files an earlier run left: a failed run must neither replace nor remove them. */
async function writeEarlierRun(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/images-00000.npy`, npyBytes("<f4", [1, 1, 1, 1], new Uint8Array(4)));
  await Deno.writeFile(`${dir}/labels-00000.npy`, npyBytes("<i4", [1], new Uint8Array(4)));
  await Deno.writeTextFile(`${dir}/manifest.json`, '{"earlier": true}\n');
  await Deno.writeTextFile(`${dir}/notes.txt`, "not sia's\n");
}

function badInput(name: string, c: BadCase): void {
  Deno.test(`bad input: ${name}`, async () => {
    await withTempDir(async (tmp) => {
      await c.setup?.(tmp);
      await writeEarlierRun(`${tmp}/earlier`);
      const before = await snapshot(tmp);
      const outs = c.freshOnly ? [`${tmp}/fresh`] : [`${tmp}/fresh`, `${tmp}/earlier`];
      const results = await Promise.all(outs.map((out) => runCli(c.args(tmp, out))));
      for (const result of results) assertOneLineError(result, c.code, ...c.expect(tmp));
      // Nothing created (the fresh out dir included), nothing removed, nothing rewritten.
      assert.equal(await exists(`${tmp}/fresh`), false, "the output directory was not created");
      assert.deepEqual(await snapshot(tmp), before, "no file under the temp dir changed");
    });
  });
}

/** generate on a data file written by the test. */
function onData(file: string, ...extra: string[]) {
  return (tmp: string, out: string) => [
    "generate",
    "--data",
    `${tmp}/${file}`,
    "--count",
    "10",
    "--out",
    out,
    ...extra,
  ];
}

const write = (file: string, bytes: () => Uint8Array) => (tmp: string) =>
  Deno.writeFile(`${tmp}/${file}`, bytes());

/** Five 4x4 float32 images on [0, 1], with `poke` applied. */
function float32Images(poke: (a: Float32Array) => void = () => {}): Uint8Array {
  const a = unitPixels(5 * 4 * 4);
  poke(a);
  return npyBytes("<f4", [5, 4, 4], bytesOf(a));
}

badInput("truncated IDX images (header says 10 x 28 x 28, file holds 100 pixel bytes)", {
  setup: write("train-images-idx3-ubyte", () => idxBytes([10, 28, 28], new Uint8Array(100))),
  args: onData("train-images-idx3-ubyte"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/train-images-idx3-ubyte: `, "truncated", "7840", "100"],
});

badInput("corrupt IDX magic number", {
  setup: write("train-images-idx3-ubyte", () => {
    const bytes = idxBytes([2, 3, 3], new Uint8Array(18));
    bytes.set([0x1f, 0x00], 0); // first two bytes must be 0
    return bytes;
  }),
  args: onData("train-images-idx3-ubyte"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/train-images-idx3-ubyte: `, /magic/i],
});

badInput("CIFAR-10 .bin whose size is not a multiple of 3073", {
  setup: write("data_batch_1.bin", () => new Uint8Array(2 * 3073 + 5)),
  args: onData("data_batch_1.bin"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/data_batch_1.bin: `, "6151", "3073"],
});

badInput(".npy with a bad header", {
  setup: write(
    "bad.npy",
    () => npyBytes("<f4", [5, 4, 4], new Uint8Array(320), { header: "{oops}" }),
  ),
  args: onData("bad.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/bad.npy: `, /header/],
});

badInput(".npy of an unsupported dtype (float64)", {
  setup: write("f64.npy", () => npyBytes("<f8", [5, 4, 4], new Uint8Array(5 * 16 * 8))),
  args: onData("f64.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/f64.npy: `, /dtype/, /<f8|float64/],
});

badInput("Fortran-order .npy", {
  setup: write(
    "fortran.npy",
    () => npyBytes("<f4", [5, 4, 4], bytesOf(unitPixels(80)), { fortran: true }),
  ),
  args: onData("fortran.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/fortran.npy: `, /Fortran/],
});

badInput("rank-2 .npy images", {
  setup: write("flat.npy", () => npyBytes("<f4", [5, 16], bytesOf(unitPixels(80)))),
  args: onData("flat.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/flat.npy: `, /rank/, "(5, 16)"],
});

badInput(".npy with a NaN pixel", {
  setup: write("nan.npy", () => float32Images((a) => (a[2 * 16 + 7] = NaN))),
  args: onData("nan.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/nan.npy: `, "NaN", "image 2"],
});

badInput(".npy with an Inf pixel", {
  setup: write("inf.npy", () => float32Images((a) => (a[3 * 16] = -Infinity))),
  args: onData("inf.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/inf.npy: `, /Inf/, "image 3"],
});

badInput("labels file with another count than the images (images.npy + images.labels.npy)", {
  setup: async (tmp) => {
    await Deno.writeFile(`${tmp}/images.npy`, float32Images());
    await Deno.writeFile(
      `${tmp}/images.labels.npy`,
      npyBytes("<i4", [4], bytesOf(Int32Array.of(0, 1, 2, 3))),
    );
  },
  args: onData("images.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/images.labels.npy: `, "4 labels", "5 images"],
});

badInput("missing data file", {
  args: onData("nowhere/images.npy"),
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/nowhere/images.npy: `, /no such file/],
});

badInput('unknown generator "nosie" (suggests "noise")', {
  args: (_tmp, out) => ["generate", "--generator", "nosie", "--count", "10", "--out", out],
  code: 2,
  expect: () => ["nosie", /unknown generator/, 'did you mean "noise"'],
});

badInput("--count 0", {
  args: (_tmp, out) => ["generate", "--count", "0", "--out", out],
  code: 2,
  expect: () => ["sia: --count: ", ">= 1", /got 0\b/],
});

badInput("negative --count written --count=-3", {
  args: (_tmp, out) => ["generate", "--count=-3", "--out", out],
  code: 2,
  expect: () => ["sia: --count: ", ">= 1", "-3"],
});

badInput("negative --count written --count -3 (two arguments)", {
  args: (_tmp, out) => ["generate", "--count", "-3", "--out", out],
  code: 2,
  // One line naming the flag and what is wrong with "-3" (or how to write it: --count=-3).
  expect: () => ["sia: ", "--count", /-3|--count=/],
});

badInput('unknown flag --cont (suggests "--count")', {
  args: (_tmp, out) => ["generate", "--cont", "10", "--out", out],
  code: 2,
  expect: () => ["sia: --cont: ", /unknown flag/, 'did you mean "--count"'],
});

badInput('unknown config key --set data.sise=100 (suggests "data.size")', {
  args: (_tmp, out) => ["generate", "--count", "10", "--out", out, "--set", "data.sise=100"],
  code: 2,
  expect: () => ["sia: data.sise: ", /unknown key/, 'did you mean "data.size"'],
});

badInput("missing --out", {
  args: () => ["generate", "--count", "10"],
  code: 2,
  expect: () => ["sia: --out: ", /missing/],
  freshOnly: true,
});

badInput("unknown key in a config file for pipeline --config", {
  setup: async (tmp) => {
    await Deno.writeTextFile(
      `${tmp}/config.json`,
      JSON.stringify({
        seed: 0,
        data: { source: "mnist", sise: 100 },
        generate: { count: 10 },
        out: { dir: `${tmp}/fresh`, summary: false },
      }),
    );
  },
  args: (tmp, out) => ["pipeline", "--config", `${tmp}/config.json`, "--out", out],
  code: 2,
  expect: (tmp) => [`sia: ${tmp}/config.json: data.sise: `, /unknown key/, '"data.size"'],
});

badInput("output directory under a regular file (FILE/out)", {
  setup: (tmp) => Deno.writeTextFile(`${tmp}/FILE`, "a regular file\n"),
  args: (tmp) => ["generate", "--count", "10", "--out", `${tmp}/FILE/out`],
  code: 1,
  expect: (tmp) => [`sia: ${tmp}/FILE/out: `, /not a directory|is a file/],
  freshOnly: true,
});

// ---------------------------------------------------------------------------------------------
// 4. Help

const PIPELINE_FLAGS = ["--config", "--generator", "--out", "--set", "--debug", "--help"];
const GENERATE_FLAGS = ["--data", "--generator", "--count", "--seed", "--out", "--set", "--debug"];

function assertHelp(result: CliResult, flags: string[]): void {
  assertOk(result);
  assert.equal(result.stderr, "");
  assert.match(result.stdout, /^Usage: /);
  for (const flag of flags) assert.ok(result.stdout.includes(flag), `help lacks ${flag}`);
}

Deno.test("--help and -h on every subcommand: exit 0, every flag, the noise generator's keys", async () => {
  const [pipeline, pipelineShort, generate, generateShort, helpPipeline, helpGenerate] =
    await Promise.all([
      runCli(["pipeline", "--help"]),
      runCli(["pipeline", "-h"]),
      runCli(["generate", "--help"]),
      runCli(["generate", "-h"]),
      runCli(["help", "pipeline"]),
      runCli(["help", "generate"]),
    ]);
  for (const r of [pipeline, pipelineShort, helpPipeline]) assertHelp(r, PIPELINE_FLAGS);
  for (const r of [generate, generateShort, helpGenerate]) assertHelp(r, GENERATE_FLAGS);
  assert.equal(pipelineShort.stdout, pipeline.stdout);
  assert.equal(helpPipeline.stdout, pipeline.stdout);
  assert.equal(generateShort.stdout, generate.stdout);
  assert.equal(helpGenerate.stdout, generate.stdout);
  assert.notEqual(generate.stdout, pipeline.stdout);
  // The noise generator and each of its keys, one line per key with its type and default.
  assert.match(generate.stdout, /^\s+noise: /m);
  for (const key of ["r", "s", "k", "clip"]) {
    assert.match(generate.stdout, new RegExp(`^\\s+${key}\\s+\\S.*default`, "m"), `key ${key}`);
  }
  // pipeline's help lists every config key by dotted path, the generator's included.
  for (const key of ["data.size", "generate.count", "out.shardSize", "generate.params.clip"]) {
    assert.ok(pipeline.stdout.includes(key), `pipeline help lacks ${key}`);
  }
});

Deno.test("help with no command, and no arguments at all, print the usage", async () => {
  const [help, bare] = await Promise.all([runCli(["help"]), runCli([])]);
  for (const r of [help, bare]) {
    assertOk(r);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /Usage:/);
    for (const command of ["pipeline", "generate", "help"]) {
      assert.match(r.stdout, new RegExp(`^\\s+${command}\\s`, "m"), command);
    }
    assert.match(r.stdout, /130/, "exit statuses documented");
  }
  assert.equal(bare.stdout, help.stdout);
});

Deno.test("pipeline --config configs/shards.json with --out and --set: shards, summary, manifest", async () => {
  await withTempDir(async (tmp) => {
    const out = `${tmp}/quick`;
    const result = await runCli([
      "pipeline",
      "--config",
      "configs/shards.json",
      "--out",
      out,
      "--set",
      "generate.count=300",
      "--set",
      "data.size=200",
      "--set",
      "out.nnSample=100",
    ]);
    assertOk(result);
    assert.match(result.stdout, /# sia run summary/);
    assert.deepEqual(await listNames(out), [
      "images-00000.npy",
      "labels-00000.npy",
      "manifest.json",
      "summary.md",
    ]);
    assert.equal(
      (await Deno.readTextFile(`${out}/summary.md`)).trim(),
      result.stdout.trim(),
      "summary.md is what was printed",
    );
    const manifest: Json = await readManifest(out);
    const shards = JSON.parse(await Deno.readTextFile(`${REPO}/configs/shards.json`));
    assert.equal(manifest.config.description, shards.description);
    assert.equal(manifest.config.generate.count, 300);
    assert.equal(manifest.config.out.dir, out);
    assert.deepEqual((await readNpy(`${out}/images-00000.npy`)).shape, [300, 28, 28, 1]);
  });
});

Deno.test("pipeline with the contrastive stage writes every image's views, labels carried", async () => {
  await withTempDir(async (tmp) => {
    const config = {
      data: { source: "mnist", size: 100 },
      generate: { generator: "noise", count: 40, batchSize: 40 },
      augment: { stage: "contrastive", params: { preset: "weak", views: 3 } },
      out: { dir: `${tmp}/out`, summary: false },
    };
    await Deno.writeTextFile(`${tmp}/config.json`, JSON.stringify(config));
    const result = await runCli(["pipeline", "--config", `${tmp}/config.json`]);
    assert.equal(result.code, 0, result.stderr);
    const images = decodeNpy(await Deno.readFile(`${tmp}/out/images-00000.npy`));
    assert.deepEqual(images.shape, [120, 28, 28, 1]);
    const labels = npyValues(decodeNpy(await Deno.readFile(`${tmp}/out/labels-00000.npy`)));
    // One batch of 40 images: view v of image i is row v * 40 + i.
    for (let i = 0; i < 40; i++) {
      assert.ok(labels[i] === labels[40 + i] && labels[i] === labels[80 + i]);
    }
    const manifest = JSON.parse(await Deno.readTextFile(`${tmp}/out/manifest.json`));
    assert.equal(manifest.counts.total, 120);
    assert.equal(manifest.config.augment.params.preset, "weak");
  });
});
