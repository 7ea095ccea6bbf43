// The stream server as its clients see it, on 127.0.0.1 only: a `serve` subprocess, read by the
// numpy and PyTorch clients in examples/ (run by the machine's python3) and by fetch. What they
// receive equals, value for value, what `generate` writes for the same sample positions; a
// PyTorch loop killed mid-epoch and restarted from its state dict gets exactly the batches it
// had not trained on; the same key gives the same bytes; ranks get disjoint equal shares; the
// token is checked; every bad request gets a 4xx and one line, and the server keeps serving.

import assert from "node:assert/strict";
import { decodeNpy, npyValues } from "../../../core/npy.ts";
import { decodeFrame } from "../../../core/frames.ts";
import type { Frame } from "../../../core/frames.ts";
import { batchesPerRank, positionsOf } from "../../../pipeline/serve/shares.ts";
import {
  assertOneLineError,
  findPython,
  HAS_NUMPY,
  NUMPY_PYTHON,
  REPO,
  runCli,
  withTempDir,
} from "../../_cli.ts";
import { readAll, startServer } from "./_server.ts";
import type { Server } from "./_server.ts";

const COUNT = 100;
const BATCH = 16;

/** A serve config: MNIST subset of 200 (as main_test's generate runs), noise, jobs a and b. */
function config(extra: Record<string, unknown> = {}) {
  return {
    seed: 3,
    data: { source: "mnist", size: 200 },
    generate: { generator: "noise", count: COUNT, batchSize: BATCH },
    serve: { jobs: { a: {}, b: { seed: 4 } }, maxBatch: 64 },
    ...extra,
  };
}

/** Pythons with torch (Debian's python3-torch) and with Hugging Face's safetensors (the format's own reader). */
const TORCH_PYTHON = await findPython(["torch", "numpy"]);
const SAFETENSORS_PYTHON = await findPython(["safetensors.numpy"]);

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

interface Generated {
  images: Float32Array;
  labels: Int32Array;
  d: number;
}

/** What `generate` writes for positions 0 .. count - 1 of a seed. */
async function generated(dir: string, seed: number, count: number): Promise<Generated> {
  const out = `${dir}/generate-${seed}`;
  const result = await runCli([
    "generate",
    "--data",
    "mnist",
    "--set",
    "data.size=200",
    "--generator",
    "noise",
    "--count",
    String(count),
    "--seed",
    String(seed),
    "--out",
    out,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const images = decodeNpy(await Deno.readFile(`${out}/images-00000.npy`));
  const labels = decodeNpy(await Deno.readFile(`${out}/labels-00000.npy`));
  return {
    images: npyValues(images) as Float32Array,
    labels: npyValues(labels) as Int32Array,
    d: images.shape[1] * images.shape[2] * images.shape[3],
  };
}

/** Asserts a batch (NHWC values, labels, ids) is generate's rows at the share's positions. */
function assertIsGenerated(
  g: Generated,
  key: { epoch: number; rank: number; world: number; index: number },
  got: { images: Float32Array; labels: Int32Array; ids: Int32Array },
): void {
  const share = { count: COUNT, batch: BATCH, world: key.world, last: "pad" as const };
  const positions = positionsOf(share, key.epoch, key.rank, key.index);
  assert.deepEqual(got.ids, positions, `ids of ${JSON.stringify(key)}`);
  for (let j = 0; j < positions.length; j++) {
    const p = positions[j];
    assert.equal(got.labels[j], g.labels[p]);
    assert.deepEqual(
      got.images.subarray(j * g.d, (j + 1) * g.d),
      g.images.subarray(p * g.d, (p + 1) * g.d),
      `image at position ${p}`,
    );
  }
}

/** NCHW -> NHWC for one batch. */
function channelsLast(values: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < c; k++) {
      for (let p = 0; p < h * w; p++) {
        out[(i * h * w + p) * c + k] = values[(i * c + k) * h * w + p];
      }
    }
  }
  return out;
}

async function npy(path: string) {
  const array = decodeNpy(await Deno.readFile(path));
  return { values: npyValues(array), shape: array.shape };
}

async function get(server: Server, path: string, init: RequestInit = {}): Promise<Response> {
  return await fetch(`${server.url}${path}`, init);
}

async function frames(server: Server, path: string): Promise<Frame[]> {
  const response = await get(server, path);
  assert.equal(response.status, 200, await response.clone().text());
  return await readAll(response);
}

async function bytes(server: Server, path: string): Promise<Uint8Array> {
  const response = await get(server, path);
  assert.equal(response.status, 200);
  return new Uint8Array(await response.arrayBuffer());
}

Deno.test("serve: the numpy and PyTorch clients, determinism, shares, every 4xx", async (t) => {
  await withTempDir(async (tmp) => {
    await Deno.writeTextFile(`${tmp}/serve.json`, JSON.stringify(config()));
    const [server, a, b] = await Promise.all([
      startServer(`${tmp}/serve.json`),
      generated(tmp, 3, 2 * COUNT),
      generated(tmp, 4, COUNT),
    ]);
    try {
      await t.step({
        name: "consume_numpy.py receives what generate writes (epochs 0 and 1, NHWC and NCHW)",
        ignore: !HAS_NUMPY,
        fn: async () => {
          const world = 2;
          const p = batchesPerRank({ count: COUNT, batch: BATCH, world, last: "pad" });
          for (const [epoch, rank, layout] of [[0, 0, "nhwc"], [1, 1, "nchw"]] as const) {
            const out = `${tmp}/numpy-${epoch}-${rank}`;
            const url =
              `${server.url}/v1/stream?job=a&rank=${rank}&world=${world}&epoch=${epoch}&layout=${layout}`;
            const run = await new Deno.Command(NUMPY_PYTHON!, {
              args: [`${REPO}/examples/consume_numpy.py`, url, "--out", out],
              stdout: "piped",
              stderr: "piped",
            }).output();
            assert.ok(run.success, new TextDecoder().decode(run.stderr));
            const lines = new TextDecoder().decode(run.stdout).trim().split("\n").map((l) =>
              JSON.parse(l)
            );
            assert.deepEqual(lines.map((l) => Number(l.index)), [...Array(p).keys()]);
            for (let index = 0; index < p; index++) {
              const file = (name: string) => npy(`${out}/${epoch}-${index}-${name}.npy`);
              const images = await file("images");
              const labels = (await file("labels")).values as Int32Array;
              const ids = (await file("ids")).values as Int32Array;
              const provenance = (await file("provenance")).values;
              assert.deepEqual(images.shape, layout === "nchw" ? [16, 1, 28, 28] : [16, 28, 28, 1]);
              const nhwc = layout === "nchw"
                ? channelsLast(images.values as Float32Array, images.shape)
                : images.values as Float32Array;
              assertIsGenerated(a, { epoch, rank, world, index }, { images: nhwc, labels, ids });
              assert.ok(provenance.every((v) => v === 2), "noised");
            }
          }
        },
      });

      await t.step({
        name: "consume_torch.py killed mid-epoch resumes from its state dict with exactly the rest",
        ignore: TORCH_PYTHON === null,
        fn: async () => {
          const out = `${tmp}/torch`;
          const state = `${tmp}/torch-state.pt`;
          const world = 2, rank = 1, epochs = 2;
          const p = batchesPerRank({ count: COUNT, batch: BATCH, world, last: "pad" });
          const args = [
            `${REPO}/examples/consume_torch.py`,
            server.url,
            "--job",
            "b",
            "--rank",
            String(rank),
            "--world",
            String(world),
            "--epochs",
            String(epochs),
            "--workers",
            "2",
            "--state",
            state,
            "--out",
            out,
          ];
          const first = new Deno.Command(TORCH_PYTHON!, {
            args: [...args, "--step-seconds", "0.5"],
            stdout: "piped",
            stderr: "null",
          }).spawn();
          const seen: { epoch: number; index: number }[] = [];
          let text = "";
          for await (const chunk of first.stdout) {
            text += new TextDecoder().decode(chunk);
            const lines = text.split("\n").slice(0, -1);
            if (lines.length >= 2) {
              first.kill("SIGKILL");
              seen.push(...lines.map((l) => JSON.parse(l)));
              break;
            }
          }
          await first.status;
          // Where the checkpoint says the data stands: the resume token of the last step saved.
          const resume = (await new Deno.Command(TORCH_PYTHON!, {
            args: ["-c", `import torch; print(torch.load("${state}")["data"]["resume"])`],
            stdout: "piped",
          }).output()).stdout;
          const token = new URLSearchParams(new TextDecoder().decode(resume).trim());
          const next = Number(token.get("from"));
          assert.equal(token.get("epoch"), "0", "killed in epoch 0");
          assert.ok(next >= 2 && next < p, `killed mid-epoch (at ${next} of ${p})`);
          assert.deepEqual(seen.map((s) => s.index), [0, 1]);
          const second = await new Deno.Command(TORCH_PYTHON!, {
            args,
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.ok(second.success, new TextDecoder().decode(second.stderr));
          const rest = new TextDecoder().decode(second.stdout).trim().split("\n").map((l) =>
            JSON.parse(l)
          );
          const expected = [];
          for (let index = next; index < p; index++) expected.push({ epoch: 0, index });
          for (let index = 0; index < p; index++) expected.push({ epoch: 1, index });
          assert.deepEqual(rest.map(({ epoch, index }) => ({ epoch, index })), expected);
          // Every batch the two runs trained on is generate's, seed 4 (job b); epoch 1 continues
          // the stream past generate's 100, so only epoch 0 is compared.
          for (let index = 0; index < p; index++) {
            const file = (name: string) => npy(`${out}/0-${index}-${name}.npy`);
            assertIsGenerated(b, { epoch: 0, rank, world, index }, {
              images: (await file("images")).values as Float32Array,
              labels: (await file("labels")).values as Int32Array,
              ids: (await file("ids")).values as Int32Array,
            });
          }
        },
      });

      await t.step({
        name: "Hugging Face's safetensors reads a frame as is (tensors and metadata)",
        ignore: SAFETENSORS_PYTHON === null,
        fn: async () => {
          const frame = await bytes(server, "/v1/batch?job=b&rank=1&world=2&index=2&layout=nchw");
          await Deno.writeFile(`${tmp}/frame.safetensors`, frame);
          const script = `
import hashlib, json, sys
from safetensors import safe_open
from safetensors.numpy import load
arrays = load(open(sys.argv[1], "rb").read())
with safe_open(sys.argv[1], "np") as f:
    metadata = f.metadata()
print(json.dumps({"metadata": metadata, "tensors": {k: [str(a.dtype), list(a.shape),
    hashlib.sha256(a.tobytes()).hexdigest()] for k, a in arrays.items()}}))`;
          const run = await new Deno.Command(SAFETENSORS_PYTHON!, {
            args: ["-c", script, `${tmp}/frame.safetensors`],
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.ok(run.success, new TextDecoder().decode(run.stderr));
          const read = JSON.parse(new TextDecoder().decode(run.stdout));
          const mine = decodeFrame(frame);
          assert.deepEqual(read.metadata, mine.metadata);
          const hash = (a: ArrayBufferView) =>
            sha256(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
          assert.deepEqual(read.tensors, {
            images: ["float32", [16, 1, 28, 28], await hash(mine.images)],
            labels: ["int32", [16], await hash(mine.labels)],
            ids: ["int32", [16], await hash(mine.ids)],
            provenance: ["uint8", [16], await hash(mine.provenance)],
          });
        },
      });
      await t.step(
        "the same key gives the same bytes; /v1/batch, from= and the resume token agree",
        async () => {
          const path = "/v1/stream?job=a&rank=1&world=3&epoch=2";
          const once = await bytes(server, path);
          assert.deepEqual(await bytes(server, path), once);
          const all = await frames(server, path);
          const p = batchesPerRank({ count: COUNT, batch: BATCH, world: 3, last: "pad" });
          assert.equal(all.length, p);
          for (let k = 0; k < p; k++) {
            const single = decodeFrame(
              await bytes(server, `/v1/batch?job=a&rank=1&world=3&epoch=2&index=${k}`),
            );
            assert.deepEqual(single, all[k]);
            assert.equal(all[k].metadata.index, String(k));
          }
          assert.deepEqual(await frames(server, `${path}&from=1`), all.slice(1));
          assert.deepEqual(
            await frames(server, `/v1/stream?${all[0].metadata.resume}`),
            all.slice(1),
          );
          assert.deepEqual(await frames(server, `/v1/stream?${all[p - 1].metadata.resume}`), []);
          const m = all[0].metadata;
          assert.deepEqual(
            [m.job, m.rank, m.world, m.epoch, m.generator, m.augment, m.seed, m.batches],
            ["a", "1", "3", "2", "noise", "", "3", String(p)],
          );
          // Job b has its own seed, so its own data; the share's ids are the same.
          const other = await frames(server, "/v1/stream?job=b&rank=1&world=3&epoch=2");
          assert.deepEqual(other.map((f) => f.ids), all.map((f) => f.ids));
          assert.notDeepEqual(other[0].images, all[0].images);
        },
      );

      await t.step(
        "ranks get disjoint equal shares; the padding is the epoch's first samples",
        async () => {
          for (const world of [1, 3, 4]) {
            const shares = await Promise.all(
              [...Array(world).keys()].map((r) =>
                frames(server, `/v1/stream?job=b&rank=${r}&world=${world}&epoch=1`)
              ),
            );
            const p = Math.ceil(COUNT / (BATCH * world));
            const count = new Map<number, number>();
            for (const share of shares) {
              assert.equal(share.length, p, `world ${world}: ${p} batches per rank`);
              for (const f of share) {
                assert.equal(f.ids.length, BATCH);
                for (const id of f.ids) count.set(id, (count.get(id) ?? 0) + 1);
              }
            }
            const padding = p * world * BATCH - COUNT;
            for (let q = COUNT; q < 2 * COUNT; q++) {
              assert.equal(
                count.get(q),
                q - COUNT < padding ? 2 : 1,
                `world ${world}: position ${q}`,
              );
            }
            assert.equal(count.size, COUNT);
          }
        },
      );

      await t.step(
        "every bad request gets a 4xx and one line; the server keeps serving",
        async () => {
          const cases: [string, number, string][] = [
            ["/v1/stream?job=a&rnak=0", 400, "rnak: unknown parameter"],
            ["/v1/stream?job=a&rank=2&world=2", 400, "rank: 2 is not below world=2"],
            ["/v1/stream?job=a&from=1x", 400, 'from: expected an integer >= 0, got "1x"'],
            ["/v1/stream?job=a&from=-1", 400, "from: expected an integer"],
            ["/v1/stream?job=c", 404, 'job: unknown job "c" (declared: a, b)'],
            ["/v1/stream?rank=0", 400, "job: missing (declared: a, b)"],
            ["/v1/stream?job=a&batch=65", 400, "batch: 65 is above the limit serve.maxBatch=64"],
            ["/v1/stream?job=a&batch=0", 400, "batch: expected an integer >= 1"],
            ["/v1/stream?job=a&world=0", 400, "world: expected an integer >= 1"],
            ["/v1/stream?job=a&layout=chw", 400, 'layout: expected nhwc or nchw, got "chw"'],
            ["/v1/stream?job=a&epoch=99999999", 400, "epoch: 99999999 is past the last epoch"],
            ["/v1/stream?job=a&rank=0&rank=1", 400, "rank: given twice"],
            ["/v1/batch?job=a", 400, "index: missing"],
            ["/v1/batch?job=a&index=7", 404, "index: 7 is past the share's 7 batches"],
            ["/v1/batch?job=a&index=0&from=0", 400, "from: unknown parameter"],
            ["/v2/stream", 404, "/v2/stream: no such endpoint"],
          ];
          for (const [path, status, line] of cases) {
            const response = await get(server, path);
            const body = await response.text();
            assert.equal(response.status, status, `${path}: ${body}`);
            assert.ok(
              body.endsWith("\n") && !body.slice(0, -1).includes("\n"),
              `${path}: one line`,
            );
            assert.ok(body.startsWith(line), `${path}: ${JSON.stringify(body)}`);
          }
          const post = await get(server, "/v1/stream?job=a", { method: "POST" });
          assert.equal(post.status, 405);
          assert.equal(await post.text(), "POST /v1/stream: only GET\n");
          const health = await get(server, "/v1/health");
          assert.equal(health.status, 200);
          assert.equal((await health.json()).ok, true);
          assert.equal((await frames(server, "/v1/stream?job=a&world=4&rank=3")).length, 2);
        },
      );

      await t.step(
        "/metrics is Prometheus text; /v1/status names the config and the jobs",
        async () => {
          const text = await (await get(server, "/metrics")).text();
          for (const line of text.trim().split("\n")) {
            assert.match(
              line,
              /^(# (HELP|TYPE) sia_\w+ .+|sia_\w+(\{(\w+="[^"]*",?)+\})? [\d.e+-]+)$/,
              line,
            );
          }
          const served = Number(/sia_frames_served_total\{job="a"\} (\d+)/.exec(text)![1]);
          assert.ok(served > 10, `${served} frames served to job a`);
          const status = await (await get(server, "/v1/status")).json();
          assert.equal(status.config.generate.generator, "noise");
          assert.deepEqual(
            status.jobs.map((j: { name: string; seed: number }) => [j.name, j.seed]),
            [
              ["a", 3],
              ["b", 4],
            ],
          );
        },
      );
    } finally {
      assert.equal(await server.stop("SIGTERM"), 130, server.stderr());
    }
  });
});

Deno.test("serve: a bearer token guards every request; off loopback it is required", async () => {
  await withTempDir(async (tmp) => {
    await Deno.writeTextFile(`${tmp}/serve.json`, JSON.stringify(config()));
    await Deno.writeTextFile(`${tmp}/token`, "s3cret-token\n");
    const refused = await runCli(["serve", "--config", `${tmp}/serve.json`, "--host", "0.0.0.0"]);
    assertOneLineError(refused, 2, "--host 0.0.0.0: a non-loopback host needs a bearer token");
    const missing = await runCli([
      "serve",
      "--config",
      `${tmp}/serve.json`,
      "--token-file",
      `${tmp}/nope`,
    ]);
    assertOneLineError(missing, 1, `${tmp}/nope: cannot read the token file`);
    await Deno.writeTextFile(`${tmp}/blank`, " \n");
    const blank = await runCli([
      "serve",
      "--config",
      `${tmp}/serve.json`,
      "--token-file",
      `${tmp}/blank`,
    ]);
    assertOneLineError(blank, 1, `${tmp}/blank: the token file must hold one token`);
    const server = await startServer(`${tmp}/serve.json`, "--token-file", `${tmp}/token`);
    try {
      for (const header of [undefined, "Bearer wrong", "s3cret-token", "Bearer s3cret-token2"]) {
        for (const path of ["/v1/stream?job=a", "/v1/health", "/metrics"]) {
          const response = await get(server, path, {
            headers: header ? { authorization: header } : {},
          });
          assert.equal(response.status, 401, `${path} with ${header}`);
          assert.equal(await response.text(), "unauthorized: missing or wrong bearer token\n");
        }
      }
      const ok = await get(server, "/v1/stream?job=a&world=4&rank=0", {
        headers: { authorization: "Bearer s3cret-token" },
      });
      assert.equal((await readAll(ok)).length, 2);
    } finally {
      await server.stop();
    }
  });
});

Deno.test("serve: closed-form + contrastive views stream what the pipeline writes for the same batches", async () => {
  await withTempDir(async (tmp) => {
    const settings = {
      seed: 5,
      data: { source: "mnist", size: 200 },
      generate: { generator: "closed-form", count: 48, batchSize: 16, params: { steps: 5 } },
      augment: { stage: "contrastive", params: { preset: "weak", size: 20 } },
    };
    await Deno.writeTextFile(`${tmp}/serve.json`, JSON.stringify(settings));
    await Deno.writeTextFile(
      `${tmp}/pipeline.json`,
      JSON.stringify({ ...settings, out: { dir: `${tmp}/out`, summary: false } }),
    );
    const [server, run] = await Promise.all([
      startServer(`${tmp}/serve.json`),
      runCli(["pipeline", "--config", `${tmp}/pipeline.json`]),
    ]);
    try {
      assert.equal(run.code, 0, run.stderr);
      const images = await npy(`${tmp}/out/images-00000.npy`);
      const labels = await npy(`${tmp}/out/labels-00000.npy`);
      assert.deepEqual(images.shape, [96, 20, 20, 1]);
      const got = await frames(server, "/v1/stream");
      assert.equal(got.length, 3);
      const d = 20 * 20;
      got.forEach((f, k) => {
        assert.deepEqual(f.imageShape, [32, 20, 20, 1], "2 views of 16, view-major");
        assert.equal(f.metadata.augment, "contrastive");
        assert.equal(f.metadata.generator, "closed-form");
        assert.deepEqual(f.images, images.values.subarray(32 * k * d, 32 * (k + 1) * d));
        assert.deepEqual(f.labels, labels.values.subarray(32 * k, 32 * (k + 1)));
        const positions = Int32Array.from({ length: 16 }, (_, j) => 16 * k + j);
        assert.deepEqual(f.ids, Int32Array.from([...positions, ...positions]));
      });
    } finally {
      await server.stop();
    }
  });
});
