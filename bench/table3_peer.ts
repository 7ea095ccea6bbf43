// table3-peer: Table 3's SimCLR baseline cell of configs/table3.quick.json in sia and, in the same
// run on the same images, in PyTorch (bench/peers/simclr_knn_torch.py): the same training images,
// the same probe train / test images, small CNN, projection width, strong views, NT-Xent tau 0.5,
// SGD momentum 0.9, the config's steps, batch, lr, warm-up and weight decay, and the three probes
// (logistic regression, ridge, kNN). Seeds 0, 1, 2 by default (--seeds=0,1); the two
// implementations agree when their means differ by less than the seed spread.
// Accuracies, not timings. Flags: --no-record (print only), --seeds=LIST.

import { table3 } from "../pipeline/experiments/table3.ts";
import type { Table3Cell, Table3Config } from "../pipeline/experiments/table3.ts";
import type { CellContext } from "../pipeline/experiments/experiment.ts";
import { readConfigFile } from "../pipeline/config.ts";
import { summarize } from "../core/stats.ts";
import { runPeer, writeSection } from "./report.ts";

interface Scores {
  logistic: number;
  ridge: number;
  knn: number;
}

const CONFIG = new URL("../configs/table3.quick.json", import.meta.url).pathname;

export async function benchTable3Peer(flags: string[]): Promise<void> {
  const seeds = (flags.find((f) => f.startsWith("--seeds="))?.slice(8) ?? "0,1,2")
    .split(",").map(Number);
  const config = table3.resolve({
    ...(await readConfigFile(CONFIG)),
    out: { dir: await Deno.makeTempDir({ prefix: "sia-table3-peer-" }) },
  }) as Table3Config;
  const t = config.table3;
  const shared = await table3.prepare(config, (line) => console.error(line)) as {
    train: import("../core/batch.ts").Dataset;
    probes: { train: import("../core/batch.ts").Dataset; test: import("../core/batch.ts").Dataset };
  };
  const sia: Scores[] = [];
  for (const seed of seeds) {
    const context: CellContext<unknown> = {
      shared,
      tick: () => {},
      stop: new Promise(() => {}),
      log: (line) => console.error(line),
      memo: (_, make) => make(),
    };
    const r = await table3.run(
      config,
      { learner: "simclr", arm: "baseline", seed },
      context,
    ) as Table3Cell;
    sia.push({ logistic: r.logistic, ridge: r.ridge, knn: r.knn });
    console.error(
      `[bench] sia simclr baseline seed ${seed}: logistic ${(100 * r.logistic).toFixed(2)} %`,
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "sia-bench-" });
  let peer: Scores[];
  try {
    const write = (name: string, a: Float32Array | Int32Array) =>
      Deno.writeFile(`${dir}/${name}`, new Uint8Array(a.slice().buffer));
    await write("train_x.f32", shared.train.images);
    await write("train_y.i32", shared.train.labels);
    await write("probe_x.f32", shared.probes.train.images);
    await write("probe_y.i32", shared.probes.train.labels);
    await write("test_x.f32", shared.probes.test.images);
    await write("test_y.i32", shared.probes.test.labels);
    const script = new URL("./peers/simclr_knn_torch.py", import.meta.url).pathname;
    const out = await runPeer([
      "/usr/bin/python3",
      script,
      ...["--data", dir, "--dim", `${t.dim}`, "--steps", `${t.steps}`, "--batch", `${t.batch}`],
      ...["--lr", `${t.lr}`, "--warmup", `${t.warmup}`, "--weight-decay", `${t.weightDecay}`],
      ...["--seeds", seeds.join(",")],
    ]);
    peer = out.trim().split("\n").map((l) => JSON.parse(l))
      .filter((r) => r.step === t.steps)
      .map((r) => ({ logistic: r.logistic, ridge: r.linear, knn: r.knn }));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(config.out.dir, { recursive: true });
  }
  const cell = (rows: Scores[], m: keyof Scores) => {
    const s = summarize(rows.map((r) => 100 * r[m]));
    return `${s.mean.toFixed(2)} ± ${s.sd.toFixed(2)}`;
  };
  const metrics = ["logistic", "ridge", "knn"] as const;
  const gap = (m: keyof Scores) => {
    const [a, b] = [summarize(sia.map((r) => 100 * r[m])), summarize(peer.map((r) => 100 * r[m]))];
    const spread = Math.max(a.sd, b.sd);
    return { gap: a.mean - b.mean, spread, agree: Math.abs(a.mean - b.mean) <= spread };
  };
  const lines = [
    `## Table 3's SimCLR baseline cell in sia and PyTorch (${
      new Date().toISOString().slice(0, 10)
    })`,
    "",
    "`deno task bench table3-peer` (bench/table3_peer.ts; PyTorch: bench/peers/simclr_knn_torch.py,",
    `same images, same run): configs/table3.quick.json's SimCLR baseline cell, ${
      shared.train.shape[0]
    }`,
    `training images, ${t.steps} steps of ${t.batch}, lr ${t.lr}, warm-up ${t.warmup}, small CNN,`,
    `projection ${t.dim}, strong views; probes on ${shared.probes.train.shape[0]} / ${
      shared.probes.test.shape[0]
    } real images. Mean ± sd over seeds ${seeds.join(", ")}.`,
    "",
    "| implementation | linear probe % (logistic) | ridge % | kNN % |",
    "| --- | --- | --- | --- |",
    `| sia | ${metrics.map((m) => cell(sia, m)).join(" | ")} |`,
    `| PyTorch | ${metrics.map((m) => cell(peer, m)).join(" | ")} |`,
    "",
    `Reading: ${
      metrics.map((m) => {
        const g = gap(m);
        return `${m} sia - PyTorch ${g.gap >= 0 ? "+" : ""}${g.gap.toFixed(2)} points (${
          g.agree ? "within" : "outside"
        } the larger seed sd, ${g.spread.toFixed(2)})`;
      }).join("; ")
    }.`,
  ];
  // One JSON line per probe, as every bench prints (accuracies: no timing, so nothing to
  // interleave and no GEMM health to check).
  const json = metrics.map((m) => {
    const [a, b] = [summarize(sia.map((r) => 100 * r[m])), summarize(peer.map((r) => 100 * r[m]))];
    return JSON.stringify({
      bench: "table3-peer",
      case: `simclr-baseline-${m}`,
      sia: Number(a.mean.toFixed(2)),
      peer: Number(b.mean.toFixed(2)),
      peerConfig: "torch 1.13 (bench/peers/simclr_knn_torch.py)",
      ratio: Number((a.mean / b.mean).toFixed(3)),
      unit: "accuracy %",
    });
  });
  for (const line of json) console.log(line);
  lines.push("", "```", ...json, "```");
  const markdown = lines.join("\n");
  console.log(markdown);
  if (!flags.includes("--no-record")) await writeSection("table3-peer", markdown);
}
