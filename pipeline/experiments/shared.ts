// What the experiment definitions share: the seeds axis ("0,1,2" or a count "3x"), the
// generators map of a config, a pool of images from any generator stage, the data with its test
// split, and --set on an experiment config typed by the experiment's schema.

import { from, lastValueFrom, toArray } from "rxjs";
import { loadSplits } from "../../stages/load/resolve.ts";
import { anchorBatches } from "../../stages/load/source.ts";
import type { Batch, Dataset } from "../../core/batch.ts";
import { concatBatches, imageSize, makeBatch } from "../../core/batch.ts";
import { keyError, SiaError } from "../../core/errors.ts";
import { parseValue, resolveSection, suggestion } from "../../core/schema.ts";
import type { Field, Resolved, Section } from "../../core/schema.ts";
import { DATA_SECTION, generatorStage, TOP_SECTION } from "../config.ts";
import type { Codec } from "./experiment.ts";
import { namingModule } from "../user_generator.ts";
import { flowSpecFields } from "./trained_flow.ts";

/** Top-level keys every experiment config has ("queue": pipeline/queue/, read with --redis). */
export const TOP_KEYS = ["experiment", "seed", "description", "data", "out", "queue"];

/** "0,1,2" -> [0, 1, 2]; "3x" -> [0, 1, 2] (a count). */
export function parseSeeds(text: string, key: string): number[] {
  const count = /^\s*(\d+)x\s*$/.exec(text);
  if (count) {
    const n = Number(count[1]);
    if (n < 1) throw keyError(key, `a count of seeds must be >= 1, got "${text}"`);
    return Array.from({ length: n }, (_, i) => i);
  }
  const seeds = text.split(",").map((s) => s.trim());
  if (!seeds.every((s) => /^\d+$/.test(s))) {
    throw keyError(key, `expected a comma list of seeds (0,1,2) or a count (3x), got "${text}"`);
  }
  const values = seeds.map(Number);
  if (new Set(values).size !== values.length) {
    throw keyError(key, `a seed is listed twice in "${text}"`);
  }
  return values;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface GeneratorEntry {
  /** The generator stage (registry name). */
  readonly stage: string;
  readonly params: Resolved<Section>;
}

/**
 * A config's generators. Plain (Table 3): { "<stage>": params }. Labelled (Tables 1 and 2):
 * { "<label>": { "generator": "<stage>", "params": {...} } }, the stage defaulting to the label,
 * so one stage can appear under several labels (closed-form as "ode" and "sde").
 */
export function resolveGenerators(
  raw: unknown,
  labelled: boolean,
): Record<string, GeneratorEntry> {
  if (!isRecord(raw)) {
    throw keyError("generators", "expected an object of generator name -> params");
  }
  const out: Record<string, GeneratorEntry> = {};
  for (const [label, value] of Object.entries(raw)) {
    if (!labelled) {
      out[label] = {
        stage: label,
        params: resolveSection(generatorStage(label).params, value, `generators.${label}.`),
      };
      continue;
    }
    const entry = value ?? {};
    if (!isRecord(entry)) throw keyError(`generators.${label}`, "expected an object");
    for (const k of Object.keys(entry)) {
      if (k !== "generator" && k !== "params") {
        throw keyError(
          `generators.${label}.${k}`,
          `unknown key${suggestion(k, ["generator", "params"])}`,
        );
      }
    }
    const stage = entry.generator ?? label;
    if (typeof stage !== "string") {
      throw keyError(`generators.${label}.generator`, "expected a generator name");
    }
    if (!/^[a-z0-9-]+$/i.test(label)) {
      throw keyError(`generators.${label}`, "a label is letters, digits and dashes");
    }
    const params = namingModule(
      stage,
      () =>
        resolveSection(generatorStage(stage).params, entry.params, `generators.${label}.params.`),
    );
    out[label] = { stage, params };
  }
  return out;
}

/**
 * A pool as bytes (an artifact on a queue): a little-endian u32 header length, the JSON header
 * (shape, generator names), padding to 4 bytes, then images, labels, ids and provenance raw.
 */
export const POOL_CODEC: Codec<Batch> = {
  encode(pool) {
    const header = new TextEncoder().encode(
      JSON.stringify({ shape: pool.shape, generator: pool.generator }),
    );
    const start = Math.ceil((4 + header.length) / 4) * 4;
    const arrays = [pool.images, pool.labels, pool.ids, pool.provenance];
    const bytes = new Uint8Array(start + arrays.reduce((sum, a) => sum + a.byteLength, 0));
    new DataView(bytes.buffer).setUint32(0, header.length, true);
    bytes.set(header, 4);
    let offset = start;
    for (const a of arrays) {
      bytes.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
      offset += a.byteLength;
    }
    return bytes;
  },
  decode(bytes) {
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length)));
    const n = header.shape[0];
    const copy = bytes.slice(Math.ceil((4 + length) / 4) * 4).buffer;
    const size = imageSize(header.shape);
    return makeBatch({
      images: new Float32Array(copy, 0, n * size),
      shape: header.shape,
      labels: new Int32Array(copy, 4 * n * size, n),
      ids: new Int32Array(copy, 4 * n * (size + 1), n),
      provenance: new Uint8Array(copy, 4 * n * (size + 2), n),
      generator: header.generator,
    });
  },
};

/** `count` images from a generator stage anchored on `train` (seeded): a pool for a cell. */
export async function makePool(
  name: string,
  params: Resolved<Section>,
  train: Dataset,
  count: number,
  seed: number,
  where: string,
  // The stage's facts (NFE, precompute time), for experiments that report cost.
  report: (facts: Record<string, unknown>) => void = () => {},
): Promise<Batch> {
  const stage = generatorStage(name);
  const operator = stage.create(params, { seed, train, report });
  const batches = await lastValueFrom(
    from(anchorBatches(train, count, 256, seed)).pipe(operator, toArray()),
  );
  const [, h, w, c] = train.shape;
  const pool = concatBatches(batches, [h, w, c]);
  // Finite pixels only: a diverging sampler must fail loudly, not train on Infinity.
  if (!pool.images.every(Number.isFinite)) {
    throw new SiaError(`${where}: the pool has non-finite pixels`);
  }
  return pool;
}

/** Train and test splits; Fashion-MNIST falls back to the embedded MNIST when it is absent. */
export async function loadData(
  data: Resolved<typeof DATA_SECTION>,
  log: (line: string) => void,
  what: string,
  fallback = true,
): Promise<{ train: Dataset; test: Dataset }> {
  let splits;
  try {
    splits = await loadSplits(data.source, data);
  } catch (e) {
    if (!(e instanceof SiaError) || data.source !== "fashion-mnist" || !fallback) throw e;
    log(`[sia] WARNING: ${e.message}; falling back to the embedded MNIST`);
    splits = await loadSplits("mnist", data);
  }
  if (!splits.test) throw keyError("data.testFraction", `${what} needs a test split to score on`);
  return { train: splits.train, test: splits.test };
}

/** The fields every experiment config shares, by dotted key. */
export function commonFields(): Record<string, Field> {
  const fields: Record<string, Field> = { ...TOP_SECTION };
  for (const [k, f] of Object.entries(DATA_SECTION)) fields[`data.${k}`] = f;
  fields["out.dir"] = { type: "string", default: "", doc: "output directory" };
  return fields;
}

/** `key=value` on an experiment config, the value typed by the key's field (a string stays one). */
export function applyExperimentSet(
  raw: Record<string, unknown>,
  assignment: string,
  fields: Record<string, Field>,
): void {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw keyError("--set", `expected key=value, got "${assignment}"`);
  const key = assignment.slice(0, eq).trim();
  const field = fields[key];
  if (!field) throw keyError(key, `unknown key${suggestion(key, Object.keys(fields))}`);
  const value = parseValue(key, field, assignment.slice(eq + 1));
  const parts = key.split(".");
  let node = raw;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * --set fields of a labelled generators map: generators.<label>.params.<key>, by the stage's
 * schema; an entry whose generator is `flowStage` (a trained flow) takes its train and sample keys.
 */
export function labelledGeneratorFields(
  raw: unknown,
  fallback: Record<string, { generator?: unknown }>,
  flowStage?: string,
): Record<string, Field> {
  const fields: Record<string, Field> = {};
  const entries = isRecord(raw) ? raw as Record<string, { generator?: unknown }> : fallback;
  for (const [label, entry] of Object.entries(entries)) {
    const stage = typeof entry?.generator === "string" ? entry.generator : label;
    fields[`generators.${label}.generator`] = { type: "string", default: label, doc: "stage" };
    if (stage === flowStage) {
      Object.assign(fields, flowSpecFields(`generators.${label}.params.`));
      continue;
    }
    for (const [k, f] of Object.entries(generatorStage(stage).params)) {
      fields[`generators.${label}.params.${k}`] = f;
    }
  }
  return fields;
}
