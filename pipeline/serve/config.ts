// A serve config is a pipeline config (data, generate, augment: what each batch is made of) plus
// a "serve" section: the jobs it serves, the largest batch a consumer may ask for, and the rule
// for each epoch's last short share. It writes no files, so out.dir is not needed.

import { keyError, SiaError } from "../../core/errors.ts";
import { resolveSection } from "../../core/schema.ts";
import type { Resolved } from "../../core/schema.ts";
import { resolveConfig } from "../config.ts";
import type { PipelineConfig } from "../config.ts";
import { LAST_RULES } from "./shares.ts";

export const SERVE_SECTION = {
  maxBatch: {
    type: "int",
    min: 1,
    default: 4096,
    doc: "largest batch= a consumer may ask for (images per frame before augmentation views)",
  },
  last: {
    type: "enum",
    values: LAST_RULES,
    default: "pad",
    doc: "each epoch's last short share: pad (wrap to the epoch's start) or drop",
  },
} as const;

export interface ServeConfig {
  readonly pipeline: PipelineConfig;
  readonly serve: Resolved<typeof SERVE_SECTION>;
  /** Declared jobs and their seeds; null: any job name, all on the config's seed. */
  readonly jobs: ReadonlyMap<string, number> | null;
}

export const JOB_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** serve.jobs: {"name": {"seed": S}, ...}; a job without a seed takes the config's. */
function resolveJobs(value: unknown, seed: number): Map<string, number> | null {
  if (value === undefined) return null;
  if (!isRecord(value)) throw keyError("serve.jobs", 'expected an object {"name": {"seed": S}}');
  const jobs = new Map<string, number>();
  for (const [name, job] of Object.entries(value)) {
    if (!JOB_NAME.test(name)) {
      throw keyError(`serve.jobs.${name}`, "a job name is 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    const fields = resolveSection(
      { seed: { type: "int", min: 0, default: seed, doc: "this job's seed" } },
      job,
      `serve.jobs.${name}.`,
    );
    jobs.set(name, fields.seed);
  }
  if (jobs.size === 0) throw keyError("serve.jobs", "declares no job (leave it out to allow any)");
  return jobs;
}

export function resolveServeConfig(raw: Record<string, unknown>): ServeConfig {
  const { serve, ...rest } = raw;
  const out = isRecord(rest.out) ? rest.out : {};
  const pipeline = resolveConfig({ ...rest, out: { ...out, dir: out.dir || "-" } });
  const section = isRecord(serve) ? { ...serve } : serve;
  const jobs = isRecord(section) ? section.jobs : undefined;
  if (isRecord(section)) delete section.jobs;
  return {
    pipeline,
    serve: resolveSection(SERVE_SECTION, section, "serve."),
    jobs: resolveJobs(jobs, pipeline.seed),
  };
}

/** The bearer token in a file: one word, surrounding whitespace ignored. */
export async function readTokenFile(path: string): Promise<string> {
  let token: string;
  try {
    token = (await Deno.readTextFile(path)).trim();
  } catch (e) {
    throw new SiaError(
      `${path}: cannot read the token file (${e instanceof Error ? e.message : e})`,
    );
  }
  if (!token || /\s/.test(token)) {
    throw new SiaError(`${path}: the token file must hold one token (one word, no spaces)`);
  }
  return token;
}
