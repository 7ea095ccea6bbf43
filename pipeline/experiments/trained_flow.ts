// A flow trained by train-flow as an experiment's generator (Table 3's trained-flow arm, Tables
// 1/2's trained-flow columns): its options (train-flow's, onnx-flow's sampling), and the model
// itself, trained the first time a cell asks and stored content-addressed under
// <out>/flows/<hash of what it depends on>/, so a rerun, a resumed run or another process with
// the same inputs reuses it. On a queue (pipeline/queue/) the model's files are an artifact too:
// a worker on another machine gets the model the first worker trained instead of training its own.

import type { Dataset } from "../../core/batch.ts";
import { keyError } from "../../core/errors.ts";
import { atomicWrite, sha256Hex } from "../../core/files.ts";
import { resolveSection, suggestion } from "../../core/schema.ts";
import type { Field, Resolved, Section } from "../../core/schema.ts";
import { DATA_SECTION, generatorStage } from "../config.ts";
import { FLOW_SECTION, trainFlow } from "../train_flow.ts";
import { configHash } from "./experiment.ts";
import type { CellContext, Codec } from "./experiment.ts";

/** The train-flow options an experiment's flow takes (its seed and data are the experiment's). */
export const FLOW_TRAIN_KEYS = [
  "preset",
  "steps",
  "batch",
  "lr",
  "warmup",
  "ema",
  "clip",
  "target",
  "schedule",
  "gamma",
  "efmExtra",
  "every",
  "evalEvery",
] as const;
export const FLOW_TRAIN_SECTION = Object.fromEntries(
  FLOW_TRAIN_KEYS.map((k) => [k, FLOW_SECTION[k]]),
) as { [K in (typeof FLOW_TRAIN_KEYS)[number]]: (typeof FLOW_SECTION)[K] };

/** The onnx-flow options of a trained flow's pool (its model is the trained one). */
export function flowSampleSection(): Section {
  const { model: _, contract: __, ...rest } = generatorStage("onnx-flow").params;
  return rest;
}

/** A trained flow's options: how it trains and how its pool is sampled. */
export interface FlowSpec {
  readonly train: Resolved<typeof FLOW_TRAIN_SECTION>;
  readonly sample: Resolved<Section>;
}

/** { train: {...}, sample: {...} } under `prefix` ("flow." in Table 3), checked and defaulted. */
export function resolveFlowSpec(raw: unknown, prefix: string): FlowSpec {
  const where = prefix.replace(/\.$/, "");
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw))) {
    throw keyError(where, "expected an object with train and sample");
  }
  const spec = (raw ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(spec)) {
    if (key !== "train" && key !== "sample") {
      throw keyError(`${prefix}${key}`, `unknown key${suggestion(key, ["train", "sample"])}`);
    }
  }
  return {
    train: resolveSection(FLOW_TRAIN_SECTION, spec.train, `${prefix}train.`),
    sample: resolveSection(flowSampleSection(), spec.sample, `${prefix}sample.`),
  };
}

/** The --set fields of a flow spec under `prefix`: <prefix>train.<key>, <prefix>sample.<key>. */
export function flowSpecFields(prefix: string): Record<string, Field> {
  const fields: Record<string, Field> = {};
  for (const [k, f] of Object.entries(FLOW_TRAIN_SECTION)) fields[`${prefix}train.${k}`] = f;
  for (const [k, f] of Object.entries(flowSampleSection())) fields[`${prefix}sample.${k}`] = f;
  return fields;
}

/** The onnx-flow params of a pool from the trained `model`. */
export function flowSampleParams(spec: FlowSpec, model: string, where: string): Resolved<Section> {
  return resolveSection(
    generatorStage("onnx-flow").params,
    // Unset options (null) resolve to their defaults again.
    { ...Object.fromEntries(Object.entries(spec.sample).filter(([, v]) => v !== null)), model },
    where,
  );
}

/** Length-prefixed parts: a little-endian u32 byte count before each. */
export function joinParts(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    new DataView(out.buffer).setUint32(offset, part.length, true);
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

export function splitParts(bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let offset = 0; offset < bytes.length;) {
    const n = view.getUint32(offset, true);
    parts.push(bytes.slice(offset + 4, offset + 4 + n));
    offset += 4 + n;
  }
  return parts;
}

/** A trained flow's two files (flow.onnx, flow.json) as one artifact. */
export const FLOW_CODEC: Codec<{ onnx: Uint8Array; contract: Uint8Array }> = {
  encode: ({ onnx, contract }) => joinParts([onnx, contract]),
  decode(bytes) {
    const [onnx, contract] = splitParts(bytes);
    return { onnx, contract };
  },
};

/** What a trained flow needs: its options, seed and data, and where the experiment writes. */
export interface FlowJob {
  readonly spec: FlowSpec;
  readonly seed: number;
  /** The training images; `test` feeds train-flow's held-out loss (null: none). */
  readonly data: { readonly train: Dataset; readonly test: Dataset | null };
  /** The data config the images came from (train-flow records it). */
  readonly dataConfig: Resolved<typeof DATA_SECTION>;
  /** Everything the model depends on, hashed into its directory's name. */
  readonly identity: unknown;
  readonly outDir: string;
  /** The log line's name of the model ("the table's flow (once per config ...)"). */
  readonly what: string;
}

/**
 * The model of `job`: read from <out>/flows/<hash>/ when it is there, else trained (resumable:
 * an interrupted training continues from its checkpoint) through the cell context's memo, so
 * every cell asking for the same model in this process, or on a queue, shares one training.
 * Returns the model's path and the sha-256 of its bytes.
 */
export async function trainedFlow(
  job: FlowJob,
  context: Pick<CellContext<unknown>, "memo" | "log" | "stop">,
): Promise<{ model: string; sha256: string }> {
  const hash = await configHash(job.identity);
  const dir = `${job.outDir}/flows/${hash}`;
  const model = `${dir}/flow.onnx`;
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  if (!(await exists(model))) {
    const files = await context.memo(`trained-flow|${hash}`, async () => {
      await trainInto(job, context, dir);
      return {
        onnx: await Deno.readFile(model),
        contract: await Deno.readFile(`${dir}/flow.json`),
      };
    }, FLOW_CODEC);
    if (!(await exists(model))) {
      await Deno.mkdir(dir, { recursive: true });
      await atomicWrite(`${dir}/flow.json`, files.contract);
      await atomicWrite(model, files.onnx);
    }
  }
  return { model, sha256: await sha256Hex(await Deno.readFile(model)) };
}

async function trainInto(
  job: FlowJob,
  context: Pick<CellContext<unknown>, "log" | "stop">,
  dir: string,
): Promise<void> {
  const checkpoint = await Deno.stat(`${dir}/flow.ckpt`).then(() => true, () => false);
  context.log(`[sia] training ${job.what} into ${dir}/`);
  const result = await trainFlow(
    {
      ...resolveSection(FLOW_SECTION, {}, ""),
      ...job.spec.train,
      seed: job.seed,
      data: job.dataConfig,
      out: dir,
    },
    {
      resume: checkpoint,
      log: context.log,
      stop: context.stop,
      progress: { tty: false, logEvery: 60, write: (text) => context.log(text.trimEnd()) },
      data: job.data,
    },
  );
  if (result.interrupted) throw new Error("stopped");
}
