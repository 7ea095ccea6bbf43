// Benchmarks write their figures into BENCHMARKS.md, each in its own marked section, so one
// benchmark's rerun leaves the others' figures alone.

import { outputShape, walk } from "../stages/learn/blocks/model.ts";
import type { Block } from "../stages/learn/blocks/model.ts";

const FILE = new URL("../BENCHMARKS.md", import.meta.url);

export async function writeSection(name: string, markdown: string): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(FILE);
  } catch {
    text =
      "# Benchmarks\n\nEvery figure here was measured on this project's 2-core machine by the command shown " +
      "with it; peers run in the same process tree, minutes apart, since these machines drift 15 to 30 % " +
      "between passes. Only side-by-side ratios are meaningful.\n";
  }
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i
    ? text.slice(0, i) + section + text.slice(j + end.length)
    : `${text.trimEnd()}\n\n${section}\n`;
  const temp = `${FILE.pathname}.tmp`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, FILE);
  // Tables padded as `deno task check` wants them, so a bench run leaves the tree clean.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", FILE.pathname] }).output();
}

/** Runs a peer script and returns its stdout; throws with its stderr when it fails. */
export async function runPeer(args: string[], env: Record<string, string> = {}): Promise<string> {
  const command = new Deno.Command("env", {
    args: ["-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const out = await command.output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`peer ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return stdout;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const PEERS = new URL("../../shared/peers/", import.meta.url).pathname;

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export const spread = (values: number[]): Spread => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
});

/** "median (min-max)". */
export const formatSpread = (s: Spread, digits = 2): string =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;

/**
 * The machine's GEMM ceiling right now: torch's 2048^3 matmul on 2 threads, GFLOP/s. Measured in
 * the same run as the peer, so the peer's share of it says whether the peer ran healthy.
 */
export async function gemmCeiling(): Promise<number> {
  const out = await runPeer([
    "/usr/bin/python3",
    `${PEERS}matmul_peak.py`,
    "--backend",
    "torch",
    "--threads",
    "2",
    "--repeats",
    "3",
  ], { OMP_WAIT_POLICY: "PASSIVE" });
  const m = /([\d.]+) GFLOP\/s/.exec(out);
  if (!m) throw new Error(`matmul_peak.py printed no GFLOP/s:\n${out}`);
  return Number(m[1]);
}

/** Multiply-adds of one forward pass of one image (convs and dense layers). */
export function forwardMacs(blocks: readonly Block[], chw: readonly number[]): number {
  let macs = 0;
  walk(blocks, chw, (block, _name, shape) => {
    if (block.kind === "conv") {
      const [, h, w] = outputShape(block, shape);
      macs += block.out * h * w * shape[0] * block.kernel * block.kernel;
    } else if (block.kind === "dense") macs += shape[0] * block.out;
  });
  return macs;
}

/**
 * Each peer configuration's best share of the GEMM ceiling on record, per bench and case. Seeded
 * with the quiet 2026-12-02 run the training-substrate issue records (small CNN 841 / 1,246
 * images/s default / channels-last, ResNet-18 24.3, GEMM 391 GFLOP/s); every healthier run raises it.
 */
const HEALTH = new URL("./peer_health.json", import.meta.url);

/**
 * A peer run is healthy when its share of the GEMM ceiling is at least HEALTHY_SHARE of the best
 * share it has reached on record. Last round a peer ran at a fifth of its own best (236 vs 1,246
 * images/s) and made a 0.5x substrate read as 2x; a ratio against a run like that is not printed.
 */
const HEALTHY_SHARE = 0.7;

export interface Comparison {
  bench: string;
  case: string;
  sia: Spread;
  /** The best peer configuration by median. */
  peer: Spread;
  peerConfig: string;
  unit: string;
  /** Floating-point work of one unit (one image, one step, ...), for the peer's GFLOP/s. */
  flopsPerUnit: number;
  ceiling: number;
}

/**
 * Prints the comparison's JSON line (bench, case, sia, peer, peerConfig, ratio, unit, and the
 * peer's health) and records the peer's best share of the ceiling in bench/peer_health.json.
 * The ratio is null when the peer ran far below its recorded best share.
 */
export async function reportComparison(c: Comparison): Promise<Record<string, unknown>> {
  const key = `${c.bench}/${c.case}/${c.peerConfig}`;
  let record: Record<string, number> = {};
  try {
    record = JSON.parse(await Deno.readTextFile(HEALTH));
  } catch {
    // First run on record.
  }
  const peerGflops = (c.peer.median * c.flopsPerUnit) / 1e9;
  const share = peerGflops / c.ceiling;
  const best = Math.max(record[key] ?? 0, share);
  const healthy = share >= HEALTHY_SHARE * best;
  if (share > (record[key] ?? 0)) {
    record[key] = Number(share.toFixed(4));
    const temp = `${HEALTH.pathname}.tmp`;
    await Deno.writeTextFile(temp, JSON.stringify(record, null, 2) + "\n");
    await Deno.rename(temp, HEALTH);
  }
  const line = {
    bench: c.bench,
    case: c.case,
    sia: Number(c.sia.median.toPrecision(5)),
    peer: Number(c.peer.median.toPrecision(5)),
    peerConfig: c.peerConfig,
    ratio: healthy ? Number((c.sia.median / c.peer.median).toFixed(2)) : null,
    unit: c.unit,
    siaRange: [c.sia.min, c.sia.max].map((v) => Number(v.toPrecision(5))),
    peerRange: [c.peer.min, c.peer.max].map((v) => Number(v.toPrecision(5))),
    peerGflops: Number(peerGflops.toFixed(1)),
    ceilingGflops: Number(c.ceiling.toFixed(1)),
    peerShare: Number(share.toFixed(3)),
    peerBestShare: Number(best.toFixed(3)),
    peerHealthy: healthy,
  };
  console.log(JSON.stringify(line));
  if (!healthy) {
    console.error(
      `bench ${c.bench} ${c.case}: the peer (${c.peerConfig}) ran at ${
        (100 * share).toFixed(0)
      } % ` +
        `of the GEMM ceiling, below ${HEALTHY_SHARE} x its best ${(100 * best).toFixed(0)} %: ` +
        `no ratio printed; rerun on a quiet machine`,
    );
  }
  return line;
}

/** A sentence for BENCHMARKS.md naming the comparisons whose peer ran unhealthy (no ratio). */
export function healthNote(lines: string[]): string {
  const low = lines.map((l) => JSON.parse(l)).filter((l) => !l.peerHealthy);
  if (!low.length) {
    return "Every peer run was healthy (share of the GEMM ceiling at least 0.7 of its best on record).";
  }
  return `**No ratio for ${
    low.map((l) =>
      `${l.case} (peer at ${(100 * l.peerShare).toFixed(0)} % of the GEMM ceiling, best on record ${
        (100 * l.peerBestShare).toFixed(0)
      } %)`
    ).join(", ")
  }**: the peer ran far below its own best, so a ratio would measure the machine, not sia.`;
}
