// The running graph: Ctrl-C mid-run leaves complete shards, a manifest that says so and exit 130;
// and backpressure keeps a million-image stream within a fixed memory bound, the source never
// more than `window` batches ahead of a slow sink.

import assert from "node:assert/strict";
import { decodeNpy } from "../../core/npy.ts";
import { resolveConfig } from "../../pipeline/config.ts";
import { runPipeline } from "../../pipeline/run.ts";
import { bytesOf, exists, npyBytes, runCli, spawnCli, unitPixels, withTempDir } from "../_cli.ts";
import { listNames } from "../_shared.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

// ---------------------------------------------------------------------------------------------
// Backpressure: bounded memory over a million images

const WINDOW = 2;
const COUNT = 1_000_000;
const BATCH = 256;
const RSS_BOUND_MB = 300;

Deno.test("backpressure: 1,000,000 noise images through a slow sink stay within a fixed memory bound", async () => {
  // In a process of its own: deno test --parallel runs other test files in this one.
  const probe = new URL("./_backpressure_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", probe],
    stdout: "piped",
    stderr: "inherit",
  })
    .output();
  assert.ok(out.success, "the backpressure probe failed");
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(r.images, COUNT);
  assert.equal(r.finished, Math.ceil(COUNT / BATCH));
  assert.equal(r.emitted, r.finished);
  assert.ok(r.idsInOrder && r.lastId === COUNT - 1, "every sample once, in order");
  assert.ok(r.maxAhead <= WINDOW, `source ran ${r.maxAhead} batches ahead (window ${WINDOW})`);
  assert.equal(r.maxAhead, WINDOW, "the slow sink did hold the source back at the window");
  assert.ok(
    r.growthMb < RSS_BOUND_MB,
    `rss grew ${
      r.growthMb.toFixed(0)
    } MB (bound ${RSS_BOUND_MB} MB; materialised: ${r.materialisedMb} MB)`,
  );
});

// ---------------------------------------------------------------------------------------------
// SIGINT and SIGTERM

const SHARD = 20000;

// SIGTERM is how schedulers (Kubernetes, SLURM, systemd) stop a job: it must keep as much as Ctrl-C.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal} mid-run: exit 130, manifest says interrupted, only complete shards, no .tmp files`, async () => {
    await withTempDir(async (tmp) => {
      const out = `${tmp}/run`;
      const args = (dir: string, count: number) => [
        "generate",
        "--data",
        "mnist",
        "--count",
        String(count),
        "--seed",
        "3",
        "--out",
        dir,
        "--set",
        `out.shardSize=${SHARD}`,
        "--set",
        "data.size=500",
      ];
      const child = spawnCli(args(out, 400000));
      const output = child.output();
      // Wait until the first shard is in place (renamed into its final name), then Ctrl-C.
      const deadline = Date.now() + 120_000;
      let exited = false;
      output.then(() => (exited = true), () => (exited = true));
      while (!(await exists(`${out}/images-00000.npy`))) {
        assert.ok(!exited, "generate exited before writing its first shard");
        assert.ok(Date.now() < deadline, "no shard after 120 s");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      child.kill(signal);
      const result = await output;
      const stderr = new TextDecoder().decode(result.stderr);
      assert.equal(result.code, 130, `exit ${result.code}\n${stderr}`);
      assert.match(stderr, /interrupted/);

      const names = await listNames(out);
      assert.deepEqual(names.filter((n) => n.endsWith(".tmp")), [], "no temporary files remain");
      assert.ok(names.includes("manifest.json"), `manifest.json written: ${names}`);
      const manifest: Json = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
      assert.equal(manifest.interrupted, true);
      assert.equal(manifest.config.generate.count, 400000);

      // Every file in the directory is one the manifest lists, and every listed shard is whole.
      const files: { images: string; labels: string; count: number }[] = manifest.shards.files;
      assert.ok(files.length >= 1);
      assert.deepEqual(
        names,
        [...files.flatMap((f) => [f.images, f.labels]), "manifest.json"].sort(),
        "the directory holds exactly the manifest's shards",
      );
      let total = 0;
      for (const [i, f] of files.entries()) {
        assert.equal(f.images, `images-${String(i).padStart(5, "0")}.npy`);
        assert.equal(f.labels, `labels-${String(i).padStart(5, "0")}.npy`);
        const images = decodeNpy(await Deno.readFile(`${out}/${f.images}`)); // throws if partial
        const labels = decodeNpy(await Deno.readFile(`${out}/${f.labels}`));
        assert.equal(images.descr, "<f4");
        assert.deepEqual(images.shape, [f.count, 28, 28, 1], f.images);
        assert.equal(labels.descr, "<i4");
        assert.deepEqual(labels.shape, [f.count], f.labels);
        assert.ok(new Float32Array(images.data.buffer).every(Number.isFinite), f.images);
        // Full shards, then at most one partial remainder.
        if (i < files.length - 1) assert.equal(f.count, SHARD, f.images);
        else assert.ok(f.count >= 1 && f.count <= SHARD, `last shard count ${f.count}`);
        total += f.count;
      }
      assert.ok(total >= SHARD && total < 400000, `${total} images before the stop`);
      assert.equal(manifest.shards.images, total);
      // (That manifest.counts agrees with the shards after a stop is checked in-process below.)

      // The stop loses and alters nothing before it: the shards are byte for byte those of an
      // uninterrupted run of `total` images with the same seed.
      const whole = await runCli(args(`${tmp}/whole`, total));
      assert.equal(whole.code, 0, whole.stderr);
      const wholeManifest: Json = JSON.parse(await Deno.readTextFile(`${tmp}/whole/manifest.json`));
      assert.deepEqual(wholeManifest.shards.files, files);
      for (const f of files) {
        for (const name of [f.images, f.labels]) {
          const a = await Deno.readFile(`${out}/${name}`);
          const b = await Deno.readFile(`${tmp}/whole/${name}`);
          assert.equal(a.length, b.length, name);
          assert.ok(a.every((x, i) => x === b[i]), `${name} differs from the uninterrupted run`);
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// runPipeline in-process: counts, result and shards agree, run to the end or stopped

/** 100 training images of 4x4x1 (10 per class) as images.npy + images.labels.npy. */
async function writeTrainingSet(dir: string): Promise<string> {
  const path = `${dir}/images.npy`;
  await Deno.writeFile(path, npyBytes("<f4", [100, 4, 4, 1], bytesOf(unitPixels(100 * 16))));
  await Deno.writeFile(
    `${dir}/images.labels.npy`,
    npyBytes("<i4", [100], bytesOf(Int32Array.from({ length: 100 }, (_, i) => i % 10))),
  );
  return path;
}

/** Reads every shard the manifest lists; checks each against its labels and returns totals. */
async function shardsOnDisk(
  dir: string,
  files: { images: string; labels: string; count: number }[],
) {
  let total = 0;
  const perClass: Record<string, number> = {};
  for (const f of files) {
    const images = decodeNpy(await Deno.readFile(`${dir}/${f.images}`));
    const labels = decodeNpy(await Deno.readFile(`${dir}/${f.labels}`));
    assert.deepEqual(images.shape, [f.count, 4, 4, 1], f.images);
    assert.deepEqual(labels.shape, [f.count], f.labels);
    for (const l of new Int32Array(labels.data.buffer)) perClass[l] = (perClass[l] ?? 0) + 1;
    total += f.count;
  }
  return { total, perClass };
}

function runConfig(data: string, out: string, count: number) {
  return resolveConfig({
    seed: 5,
    data: { source: data, testFraction: 0 },
    // 64 does not divide 1000: batches straddle shard boundaries.
    generate: { generator: "noise", count, batchSize: 64 },
    out: { dir: out, shardSize: 1000, summary: false },
  });
}

Deno.test("runPipeline to the end: result, manifest counts and shards on disk agree", async () => {
  await withTempDir(async (tmp) => {
    const data = await writeTrainingSet(tmp);
    const out = `${tmp}/run`;
    const logs: string[] = [];
    const result = await runPipeline(runConfig(data, out, 2500), {
      command: "test",
      print: () => {},
      log: (line) => logs.push(line),
      progress: { tty: false, logEvery: 1e9 },
    });
    assert.deepEqual(result, { interrupted: false, count: 2500, dir: out });
    const manifest: Json = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
    assert.equal(manifest.interrupted, false);
    assert.deepEqual(manifest.shards.files.map((f: { count: number }) => f.count), [
      1000,
      1000,
      500,
    ]);
    const disk = await shardsOnDisk(out, manifest.shards.files);
    assert.equal(disk.total, 2500);
    assert.equal(manifest.counts.total, 2500);
    assert.deepEqual(manifest.counts.perClass, disk.perClass);
    assert.ok(logs.some((l) => l.includes("100 training images")), logs.join("\n"));
  });
});

Deno.test("runPipeline stopped mid-run: result.count and manifest counts equal the images in the shards", async () => {
  await withTempDir(async (tmp) => {
    const data = await writeTrainingSet(tmp);
    const out = `${tmp}/run`;
    // The stop lands while the graph waits on I/O, i.e. while a shard is being written.
    const stop = new Promise<void>((resolve) => setTimeout(resolve, 500));
    const result = await runPipeline(runConfig(data, out, 100_000_000), {
      command: "test",
      print: () => {},
      log: () => {},
      stop,
      progress: { tty: false, logEvery: 1e9 },
    });
    assert.equal(result.interrupted, true);
    const names = await listNames(out);
    assert.deepEqual(names.filter((n) => n.endsWith(".tmp")), [], "no temporary files remain");
    const manifest: Json = JSON.parse(await Deno.readTextFile(`${out}/manifest.json`));
    assert.equal(manifest.interrupted, true);
    assert.deepEqual(
      names,
      [
        ...manifest.shards.files.flatMap((f: { images: string; labels: string }) => [
          f.images,
          f.labels,
        ]),
        "manifest.json",
      ].sort(),
    );
    const disk = await shardsOnDisk(out, manifest.shards.files);
    assert.ok(disk.total >= 1000 && disk.total < 100_000_000, `${disk.total} images written`);
    assert.equal(manifest.shards.images, disk.total);
    // The run's own account of what it wrote must be what it wrote.
    assert.equal(result.count, disk.total, "result.count (the CLI's 'wrote N images')");
    assert.equal(manifest.counts.total, disk.total, "manifest.counts.total");
    assert.deepEqual(manifest.counts.perClass, disk.perClass, "manifest.counts.perClass");
  });
});
