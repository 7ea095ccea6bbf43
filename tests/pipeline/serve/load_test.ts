// A bounded load test of the stream server on 127.0.0.1 (it stops by itself): 8 concurrent
// consumers over 2 jobs (4 ranks each) read 1 epoch, then 5 more, of 4 frames of 64 MNIST-sized
// images (200 KB) per rank; one of them pauses after each frame 10x the server's time to generate
// one, one disconnects in the middle of a frame and resumes from the token of its last whole
// frame. Every consumer's data is complete, in order, and the ranks of a job cover each epoch
// exactly once; the cut stream is dropped by the server at once; the slow reader slows neither
// its job's other ranks nor the other job; no queue holds more than 2 frames; the server's peak
// RSS after 6x the batches is what it was after the first epoch, within a margin below what the
// extra frames weigh. A second test stalls a reader and sees its generation stop.

import assert from "node:assert/strict";
import { decodeFrame, FrameError, readFrames } from "../../../core/frames.ts";
import type { Frame } from "../../../core/frames.ts";
import { withTempDir } from "../../_cli.ts";
import { memory, startServer } from "./_server.ts";
import type { Server } from "./_server.ts";

const COUNT = 1024;
const BATCH = 64;
const WORLD = 4;
const PER_RANK = COUNT / (BATCH * WORLD);
/** The slow reader pauses this many times the server's time to generate a frame, per frame. */
const SLOWER = 10;
const JOBS = ["a", "b"];
/** Peak RSS may grow this much (MiB) between the first epoch and the sixth. */
const RSS_MARGIN = 24;

interface Read {
  frames: Frame[];
  /** Bytes of a frame that was cut off, when the reader disconnected. */
  cut: number;
}

/** Reads a stream; with `cutAfter` bytes, disconnects there, mid-frame. */
async function read(
  server: Server,
  path: string,
  options: { pauseMs?: number; cutAfter?: number } = {},
): Promise<Read> {
  const response = await fetch(`${server.url}${path}`);
  assert.equal(response.status, 200);
  const frames: Frame[] = [];
  let received = 0;
  async function* body() {
    for await (const chunk of response.body!) {
      if (options.cutAfter !== undefined && received + chunk.length >= options.cutAfter) {
        yield chunk.subarray(0, options.cutAfter - received);
        received = options.cutAfter;
        // Leaving the loop cancels the body, which closes the connection mid-frame.
        return;
      }
      received += chunk.length;
      yield chunk;
    }
  }
  try {
    for await (const bytes of readFrames(body())) {
      frames.push(decodeFrame(bytes));
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  } catch (e) {
    if (!(e instanceof FrameError && options.cutAfter !== undefined)) throw e;
    return { frames, cut: received - frames.length * FRAME_BYTES };
  }
  return { frames, cut: 0 };
}

/** The encoded size of a frame (all frames here have the same size): set by the test. */
let FRAME_BYTES = 0;

async function metrics(server: Server): Promise<string> {
  return await (await fetch(`${server.url}/metrics`)).text();
}

Deno.test("serve under load: 8 consumers, 2 jobs, one slow, one cut mid-frame; complete, disjoint, bounded", async () => {
  await withTempDir(async (tmp) => {
    await Deno.writeTextFile(
      `${tmp}/serve.json`,
      JSON.stringify({
        seed: 3,
        data: { source: "mnist", size: 200 },
        generate: { generator: "noise", count: COUNT, batchSize: BATCH },
        serve: { jobs: { a: {}, b: { seed: 4 } }, last: "drop" },
      }),
    );
    const server = await startServer(`${tmp}/serve.json`);
    let sampling = true;
    let sampler: Promise<void> = Promise.resolve();
    try {
      const first = await fetch(`${server.url}/v1/batch?job=b&rank=2&world=4&index=0`);
      FRAME_BYTES = (await first.arrayBuffer()).byteLength;
      // Queue depths, sampled all along.
      let deepest = 0;
      sampler = (async () => {
        while (sampling) {
          for (const m of (await metrics(server)).matchAll(/^sia_queue_frames\{.*\} (\d+)$/gm)) {
            deepest = Math.max(deepest, Number(m[1]));
          }
          await new Promise((r) => setTimeout(r, 25));
        }
      })();

      const got = new Map<string, Frame[][]>(); // "job/rank" -> frames per epoch
      const finished = new Map<string, number>();
      let dropped = false;
      let pauseMs = 0;
      const consumer = async (job: string, rank: number, epochs: number[]): Promise<void> => {
        const name = `${job}/${rank}`;
        const slow = name === "a/1";
        for (const epoch of epochs) {
          const path = `/v1/stream?job=${job}&rank=${rank}&world=${WORLD}&epoch=${epoch}`;
          let frames: Frame[];
          if (name === "b/2" && epoch === 0) {
            // Two whole frames and half of the third, then gone; the server must let go at once.
            const cut = await read(server, path, { cutAfter: Math.floor(2.5 * FRAME_BYTES) });
            assert.equal(cut.frames.length, 2);
            assert.ok(cut.cut > 0 && cut.cut < FRAME_BYTES, "cut inside a frame");
            const t0 = performance.now();
            for (;;) {
              const status = await (await fetch(`${server.url}/v1/status`)).json();
              const open = status.consumers.filter((
                c: { job: string; rank: number; epoch: number },
              ) => c.job === "b" && c.rank === 2 && c.epoch === 0);
              if (open.length === 0) break;
              assert.ok(performance.now() - t0 < 2000, "the cut stream is dropped within 2 s");
              await new Promise((r) => setTimeout(r, 10));
            }
            dropped = true;
            const rest = await read(server, `/v1/stream?${cut.frames[1].metadata.resume}`);
            frames = [...cut.frames, ...rest.frames];
          } else {
            frames = (await read(server, path, { pauseMs: slow ? pauseMs : 0 })).frames;
          }
          const list = got.get(name) ?? [];
          list[epoch] = frames;
          got.set(name, list);
        }
        finished.set(name, performance.now());
      };
      const everyone = (epochs: number[]) =>
        Promise.all(JOBS.flatMap((job) => [0, 1, 2, 3].map((rank) => consumer(job, rank, epochs))));

      await everyone([0]);
      const afterOne = await memory(server.pid);
      // From here on a/1 reads 10x slower than the server generates frames.
      const text = await metrics(server);
      const total = (name: string) =>
        [...text.matchAll(new RegExp(`^${name}\\{job="\\w+"\\} ([\\d.e+-]+)$`, "gm"))]
          .reduce((s, m) => s + Number(m[1]), 0);
      pauseMs = SLOWER * 1000 * total("sia_generate_seconds_total") /
        total("sia_frames_generated_total");
      const start = performance.now();
      await everyone([1, 2, 3, 4, 5]);
      const afterSix = await memory(server.pid);

      sampling = false;
      await sampler;

      assert.ok(dropped);
      for (const job of JOBS) {
        for (let epoch = 0; epoch < 6; epoch++) {
          const ids = new Set<number>();
          for (let rank = 0; rank < WORLD; rank++) {
            const frames = got.get(`${job}/${rank}`)![epoch];
            assert.deepEqual(
              frames.map((f) => f.metadata.index),
              [...Array(PER_RANK).keys()].map(String),
              `${job}/${rank} epoch ${epoch}: complete and in order`,
            );
            for (const f of frames) {
              assert.equal(f.ids.length, BATCH);
              for (const id of f.ids) ids.add(id);
            }
          }
          assert.equal(ids.size, COUNT, `${job} epoch ${epoch}: ranks disjoint`);
          assert.equal(Math.min(...ids), epoch * COUNT);
          assert.equal(Math.max(...ids), (epoch + 1) * COUNT - 1);
        }
      }
      // The resumed stream is the uncut one, byte for byte.
      const whole = await fetch(`${server.url}/v1/stream?job=b&rank=2&world=4&epoch=0`);
      const reference: Frame[] = [];
      for await (const bytes of readFrames(whole.body!)) reference.push(decodeFrame(bytes));
      assert.deepEqual(got.get("b/2")![0], reference);

      // The slow reader slowed nobody: job a's other ranks finished before it, and no later than
      // job b's ranks, which had no slow reader.
      const span = (name: string) => finished.get(name)! - start;
      const mean = (names: string[]) => names.reduce((s, n) => s + span(n), 0) / names.length;
      const fastA = mean(["a/0", "a/2", "a/3"]);
      const fastB = mean(["b/0", "b/1", "b/3"]);
      for (const rank of [0, 2, 3]) assert.ok(span(`a/${rank}`) < span("a/1"), "a/1 last");
      assert.ok(span("a/1") >= 5 * PER_RANK * pauseMs);
      assert.ok(fastA < 1.5 * fastB, `job a's fast ranks ${fastA} ms, job b's ${fastB} ms`);
      assert.ok(deepest <= 2, `deepest queue ${deepest} frames`);
      const served = 8 * 5 * PER_RANK * FRAME_BYTES / 2 ** 20;
      console.log(
        `slow reader paused ${pauseMs.toFixed(1)} ms per frame; a/1 ${
          span("a/1").toFixed(0)
        } ms, ` +
          `a/0,2,3 ${fastA.toFixed(0)} ms, b/0,1,3 ${fastB.toFixed(0)} ms; peak RSS ${
            afterOne.peak.toFixed(0)
          } MiB after 1 epoch, ${afterSix.peak.toFixed(0)} MiB after 6 (${
            served.toFixed(0)
          } MiB more served); deepest queue ${deepest}`,
      );
      assert.ok(
        afterSix.peak - afterOne.peak < RSS_MARGIN,
        `peak RSS grew ${afterSix.peak - afterOne.peak} MiB while ${served} MiB more were served`,
      );
    } finally {
      sampling = false;
      await sampler.catch(() => {});
      await server.stop();
    }
  });
});

Deno.test("serve: a reader that stops reading stops its generation at a full 2-frame queue", async () => {
  await withTempDir(async (tmp) => {
    // 128 frames of 200 KB: far more than the kernel's socket buffers (4 MiB here) take.
    await Deno.writeTextFile(
      `${tmp}/serve.json`,
      JSON.stringify({
        seed: 3,
        data: { source: "mnist", size: 200 },
        generate: { generator: "noise", count: 128 * BATCH, batchSize: BATCH },
      }),
    );
    const server = await startServer(`${tmp}/serve.json`);
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: Number(new URL(server.url).port),
    });
    try {
      await conn.write(new TextEncoder().encode(`GET /v1/stream HTTP/1.1\r\nHost: sia\r\n\r\n`));
      const position = async () => {
        const status = await (await fetch(`${server.url}/v1/status`)).json();
        return status.consumers[0] ?? null;
      };
      let early = await position();
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 300));
        const now = await position();
        if (now.next === early.next && now.queued === 2) break;
        early = now;
      }
      await new Promise((r) => setTimeout(r, 500));
      const late = await position();
      assert.equal(late.next, early.next, "no frame generated for a reader that does not read");
      assert.ok(late.next < late.batches / 2, `stopped at ${late.next} of ${late.batches}`);
      assert.equal(late.queued, 2, "its queue is full: 2 frames");
      const text = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(text, /^sia_queue_frames\{consumer="\d+",job="default",rank="0"\} 2$/m);
      conn.close();
      for (const t0 = performance.now(); await position();) {
        assert.ok(performance.now() - t0 < 2000, "the closed stream is dropped within 2 s");
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      try {
        conn.close();
      } catch {
        // Closed above.
      }
      await server.stop();
    }
  });
});
