// The stream server against one `generate` process writing .npy shards to disk, per generator,
// interleaved in one run: how many images (frames, MB) per second `serve` hands to 1 and to 4
// concurrent consumers on 127.0.0.1 (each reading its rank's share of a fresh epoch, frames
// decoded by the reader), beside the images per second `generate` writes (its manifest's
// generateSeconds: loading excluded, as the server's start is). Peak RSS of both processes.
//
// Flags: --images=N per timed run (default 4096; closed-form N/4), --repeats=R (default 3),
// --no-record (print only; leave BENCHMARKS.md alone).

import { decodeFrame, readFrames } from "../core/frames.ts";
import { median, writeSection } from "./report.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;
const BATCH = 256;
const CONSUMERS = [1, 4];

function flag(flags: string[], name: string, fallback: number): number {
  const hit = flags.find((f) => f.startsWith(`--${name}=`));
  if (!hit) return fallback;
  const v = Number(hit.slice(name.length + 3));
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench stream: bad --${name}`);
  return v;
}

interface Case {
  readonly generator: string;
  readonly params: Record<string, unknown>;
  readonly images: number;
}

function config(c: Case) {
  return {
    seed: 0,
    data: { source: "mnist", size: 1000 },
    generate: { generator: c.generator, count: c.images, batchSize: BATCH, params: c.params },
  };
}

/** `generate` once: images/s from its manifest, and its peak RSS (MiB) from /usr/bin/time. */
async function timeGenerate(c: Case, dir: string): Promise<{ rate: number; peak: number }> {
  const sets = Object.entries(c.params).map(([k, v]) => `--set=${k}=${v}`);
  const out = await new Deno.Command("/usr/bin/time", {
    args: [
      "-f",
      "peak-kb %M",
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "generate",
      "--data",
      "mnist",
      "--set",
      "data.size=1000",
      "--set",
      `generate.batchSize=${BATCH}`,
      "--generator",
      c.generator,
      "--count",
      String(c.images),
      "--out",
      dir,
      ...sets,
    ],
    cwd: REPO,
    stdout: "null",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`bench stream: generate failed:\n${stderr}`);
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  return {
    rate: manifest.timings.imagesPerSecond,
    peak: Number(/peak-kb (\d+)/.exec(stderr)![1]) / 1024,
  };
}

interface Served {
  readonly images: number;
  readonly bytes: number;
  readonly seconds: number;
}

/** `consumers` readers, ranks of one world, each reading its share of `epoch` concurrently. */
async function timeServe(url: string, consumers: number, epoch: number): Promise<Served> {
  const t0 = performance.now();
  const parts = await Promise.all(
    [...Array(consumers).keys()].map(async (rank) => {
      const response = await fetch(
        `${url}/v1/stream?rank=${rank}&world=${consumers}&epoch=${epoch}&batch=${BATCH}`,
      );
      let images = 0, bytes = 0;
      for await (const frame of readFrames(response.body!)) {
        images += decodeFrame(frame).ids.length;
        bytes += frame.length;
      }
      return { images, bytes };
    }),
  );
  return {
    images: parts.reduce((s, p) => s + p.images, 0),
    bytes: parts.reduce((s, p) => s + p.bytes, 0),
    seconds: (performance.now() - t0) / 1000,
  };
}

async function startServer(
  configPath: string,
): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "serve", "--config", configPath, "--port", "0"],
    cwd: REPO,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reader = child.stderr.getReader();
  while (!/serving on (http:\/\/[^/]+)\//.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`bench stream: serve exited:\n${text}`);
    text += new TextDecoder().decode(value);
  }
  const drained = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe empty */ }
  })();
  return {
    url: /serving on (http:\/\/[^/]+)\//.exec(text)![1],
    pid: child.pid,
    async stop() {
      child.kill("SIGINT");
      await child.status;
      await drained;
    },
  };
}

async function peakRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Median (min-max), with one decimal below 100. */
function spread(values: number[]): string {
  const f = (v: number) => v.toFixed(median(values) < 100 ? 1 : 0);
  return `${f(median(values))} (${f(Math.min(...values))}-${f(Math.max(...values))})`;
}

export async function benchStream(flags: string[]): Promise<void> {
  const images = flag(flags, "images", 4096);
  const repeats = flag(flags, "repeats", 3);
  const record = !flags.includes("--no-record");
  const cases: Case[] = [
    { generator: "noise", params: {}, images },
    { generator: "closed-form", params: { steps: 20 }, images: Math.max(BATCH, images / 4) },
  ];
  const rows: string[] = [];
  // This machine is shared: the load when the bench starts says how much the figures can be trusted.
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
  const tmp = await Deno.makeTempDir({ prefix: "sia-bench-stream-" });
  try {
    for (const c of cases) {
      const path = `${tmp}/${c.generator}.json`;
      await Deno.writeTextFile(path, JSON.stringify(config(c)));
      const server = await startServer(path);
      const generated: number[] = [];
      const generatePeaks: number[] = [];
      const served = new Map<number, Served[]>(CONSUMERS.map((n) => [n, []]));
      try {
        await timeServe(server.url, 1, 0); // warm-up (JIT, the generator's tables)
        let epoch = 1;
        for (let r = 0; r < repeats; r++) {
          const g = await timeGenerate(c, `${tmp}/out`);
          generated.push(g.rate);
          generatePeaks.push(g.peak);
          for (const n of CONSUMERS) served.get(n)!.push(await timeServe(server.url, n, epoch++));
        }
        const servePeak = await peakRss(server.pid);
        const peer = median(generated);
        const bytesPerImage = served.get(1)![0].bytes / served.get(1)![0].images;
        for (const n of CONSUMERS) {
          const runs = served.get(n)!;
          const rates = runs.map((s) => s.images / s.seconds);
          const frames = runs.map((s) => s.images / BATCH / s.seconds);
          const mbs = runs.map((s) => s.bytes / 2 ** 20 / s.seconds);
          const sia = median(rates);
          console.log(JSON.stringify({
            bench: "stream",
            case: `${c.generator}, ${n} consumer${n > 1 ? "s" : ""}, batch ${BATCH}`,
            sia,
            peer,
            peerConfig: `one sia generate process writing .npy to disk, ${c.images} images`,
            ratio: sia / peer,
            unit: "images/s",
          }));
          rows.push(
            `| ${c.generator} | ${n} | ${spread(frames)} | ${spread(mbs)} | ${spread(rates)} | ${
              spread(generated)
            } | ${(sia / peer).toFixed(2)}x | ${servePeak.toFixed(0)} | ${
              median(generatePeaks).toFixed(0)
            } |`,
          );
        }
        console.error(
          `[bench] stream ${c.generator}: ${
            (bytesPerImage / 1024).toFixed(1)
          } KiB per image on the wire`,
        );
      } finally {
        await server.stop();
      }
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  if (!record) {
    console.log("stream: --no-record, BENCHMARKS.md left alone");
    return;
  }
  await writeSection(
    "stream",
    `## Streaming to training jobs vs generate to disk (${new Date().toISOString().slice(0, 10)})

\`deno task bench stream\` (\`--images=${images} --repeats=${repeats}\`). One \`serve\` process (MNIST, 1,000
training images, batches of ${BATCH}) feeds 1 or 4 concurrent consumers on 127.0.0.1, each reading its
rank's share of a fresh epoch and decoding every frame; beside it, in the same run and alternating
with it, one \`generate\` process writes the same number of images as .npy shards (its manifest's
imagesPerSecond, load time excluded, but its first batch builds the closed-form fields, which the
server built during its warm-up epoch). closed-form runs ${cases[1].images} images with 20 steps.
Medians (min-max) of ${repeats} runs; peak RSS in MiB (serve: its VmHWM after all runs; generate:
/usr/bin/time). Load average when the bench started: ${load} (2 cores).

| generator | consumers | frames/s | MB/s | images/s served | images/s generate writes | serve / generate | serve peak RSS | generate peak RSS |
|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}
`,
  );
}
