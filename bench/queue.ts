// Experiment cells on the Redis queue (pipeline/queue/): cells per hour for configs/table3.quick.json
// with 1 worker of 2 threads against 2 workers of 1 thread each (pinned with taskset, so each
// worker's onnxruntime and oneDNN pools size themselves to their cores), and the coordination
// overhead per cell: enqueue to start of a worker's first cell (with its data loading), a worker's
// gap between finishing one cell and starting the next, and the last result to the tables
// written. A private redis-server on a loopback port.
//
// Flags: --steps=S (default the config's 200), --learners=a,b (default all four), --size=N
// (data.size, default the config's), --flow-steps=N (the trained flow's steps), --no-record (print only; leave BENCHMARKS.md alone).
// Smoke run: deno task bench queue --steps=2 --learners=simclr --size=1000 --no-record

import { runQueued } from "../pipeline/queue/coordinator.ts";
import type { QueueStats } from "../pipeline/queue/coordinator.ts";
import { table3 } from "../pipeline/experiments/table3.ts";
import { median, writeSection } from "./report.ts";
// The tests' private redis-server (a free loopback port and a temporary directory).
import { startRedis } from "../tests/pipeline/queue/_redis.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

function flag(flags: string[], name: string): string | undefined {
  return flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
}

interface Layout {
  readonly label: string;
  /** The cores each worker is pinned to. */
  readonly workers: string[];
}

const LAYOUTS: Layout[] = [
  { label: "1 worker x 2 threads", workers: ["0,1"] },
  { label: "2 workers x 1 thread", workers: ["0", "1"] },
];

async function runLayout(
  layout: Layout,
  raw: Record<string, unknown>,
  url: string,
): Promise<QueueStats> {
  const dir = await Deno.makeTempDir({ prefix: "sia-bench-queue-" });
  const queue = `bench-${layout.workers.length}`;
  const workers = layout.workers.map((cpus, i) =>
    new Deno.Command("taskset", {
      args: [
        "-c",
        cpus,
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "worker",
        "--redis",
        url,
        "--queue",
        queue,
        "--name",
        `w${i}`,
      ],
      cwd: REPO,
      stdout: "null",
      stderr: "null",
      env: { OMP_NUM_THREADS: String(cpus.split(",").length) },
    }).spawn()
  );
  try {
    const config = { ...raw, out: { dir }, queue: { name: queue } };
    return await runQueued(table3, table3.resolve(config), config, {
      url,
      log: (line) => console.error(line),
      print: () => {},
    });
  } finally {
    for (const w of workers) w.kill("SIGTERM");
    await Promise.all(workers.map((w) => w.status));
    await Deno.remove(dir, { recursive: true });
  }
}

/** Cells per hour from the first start to the last finish, and the overheads in ms. */
function summarize(stats: QueueStats) {
  const start = Math.min(...stats.spans.map((s) => s.started));
  const end = Math.max(...stats.spans.map((s) => s.finished));
  const byWorker = Map.groupBy(stats.spans, (s) => s.worker);
  const firstWaits: number[] = [];
  const gaps: number[] = [];
  for (const spans of byWorker.values()) {
    spans.sort((a, b) => a.started - b.started);
    firstWaits.push(spans[0].started - spans[0].enqueued);
    for (let i = 1; i < spans.length; i++) gaps.push(spans[i].started - spans[i - 1].finished);
  }
  return {
    cells: stats.ran,
    perHour: (3600 * 1000 * stats.ran) / (end - start),
    wall: stats.seconds,
    firstWait: median(firstWaits),
    gap: gaps.length ? median(gaps) : NaN,
    report: stats.reportMs,
  };
}

export async function benchQueue(flags: string[]): Promise<void> {
  const raw = JSON.parse(await Deno.readTextFile(`${REPO}/configs/table3.quick.json`));
  const steps = flag(flags, "steps");
  const learners = flag(flags, "learners");
  const size = flag(flags, "size");
  if (steps) raw.table3.steps = Number(steps);
  if (learners) raw.table3.learners = learners;
  if (size) raw.data.size = Number(size);
  const flowSteps = flag(flags, "flow-steps");
  if (flowSteps) raw.flow.train.steps = Number(flowSteps);
  const server = await startRedis({ appendonly: true });
  const rows: string[] = [];
  const perHour: number[] = [];
  try {
    for (const layout of LAYOUTS) {
      const s = summarize(await runLayout(layout, raw, server.url));
      perHour.push(s.perHour);
      const row =
        `| ${layout.label} | ${s.cells} | ${s.perHour.toFixed(1)} | ${s.wall.toFixed(0)} | ` +
        `${s.firstWait.toFixed(0)} | ${Number.isNaN(s.gap) ? "-" : s.gap.toFixed(0)} | ${
          s.report.toFixed(0)
        } |`;
      console.log(row);
      rows.push(row);
    }
  } finally {
    await server.close();
  }
  // The JSON line every bench prints: the two-worker layout against one worker of two threads
  // (both sia: a queue has no outside peer; the comparison is the layouts').
  const json = JSON.stringify({
    bench: "queue",
    case: `table3.quick-${raw.table3.learners}`,
    sia: Number(perHour[1].toFixed(1)),
    peer: Number(perHour[0].toFixed(1)),
    peerConfig: LAYOUTS[0].label,
    ratio: Number((perHour[1] / perHour[0]).toFixed(2)),
    unit: "cells/hour",
  });
  console.log(json);
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const markdown = `## Experiment cells on the Redis queue

\`deno task bench queue${flags.length ? " " + flags.join(" ") : ""}\`: configs/table3.quick.json
(${raw.table3.learners}, ${raw.table3.steps} steps, data.size ${raw.data.size}, a trained flow of
${raw.flow.train.steps} steps), one redis-server on
loopback (append-only file on), load average ${load} when it ended. Cells per hour from the first
cell's start to the last one's finish; first wait = median enqueue to start of a worker's first
cell (it includes that worker loading the data once it sees the run); gap = median time a worker
spends between storing one result and starting its next cell (the queue's hand-off); report = last
result in to tables written.

| layout | cells | cells/hour | wall s | first wait ms | gap ms | report ms |
| ------ | ----- | ---------- | ------ | ------------- | ------ | --------- |
${rows.join("\n")}

\`\`\`
${json}
\`\`\``;
  if (flags.includes("--no-record")) console.log(markdown);
  else await writeSection("queue", markdown);
}
