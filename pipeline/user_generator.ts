// A user's own generator stage, from a module named where a generator name goes: "./my_gen.ts",
// "../x/gen.js", "/abs/gen.ts", "file:///...", "https://...". The module exports the contract of
// core/stage.ts GeneratorModule: `params` (an options schema, core/schema.ts fields) and `create`
// (the operator factory), optionally `summary` and `provenance`. It is imported once per process,
// checked, and from then on is a generator like the registry's, under the name as written: its
// options resolve, take --set and appear in experiments the same way. Paths in a config resolve
// against the config file's directory, on the command line against the working directory.
//
// Loading is asynchronous (dynamic import) and config resolution is not, so callers load every
// module a raw config names (loadGeneratorModules) before they resolve it.

import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SiaError } from "../core/errors.ts";
import { checkValue } from "../core/schema.ts";
import type { Field, Section } from "../core/schema.ts";
import { defineGenerator } from "../core/stage.ts";
import type { GeneratorModule, GeneratorStage } from "../core/stage.ts";
import { PROVENANCE_NAMES } from "../core/batch.ts";

const FIELD_TYPES = ["int", "number", "boolean", "string", "enum"];

const loaded = new Map<string, GeneratorStage>();

/** True when a generator name is a module to import rather than a registry name. */
export function isModuleSpec(name: string): boolean {
  return /^(\.{1,2}\/|\/|file:|https?:)/.test(name) || /\.(ts|js|mjs|mts)$/.test(name);
}

/** The stage a module spec loaded to, if it has been loaded. */
export function userGenerator(name: string): GeneratorStage | undefined {
  return loaded.get(name);
}

function moduleError(spec: string, problem: string): SiaError {
  return new SiaError(`generator module ${spec}: ${problem}`);
}

/** Runs fn, naming the module in any SiaError it throws (its options failing their schema). */
export function namingModule<T>(name: string, fn: () => T): T {
  if (!isModuleSpec(name)) return fn();
  try {
    return fn();
  } catch (e) {
    if (e instanceof SiaError) throw new SiaError(`generator module ${name}: ${e.message}`, 2);
    throw e;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The module's options schema, each field checked as core/schema.ts would read it. */
function checkParams(spec: string, params: unknown): Section {
  if (!isRecord(params)) {
    throw moduleError(
      spec,
      "exports no `params` (its options schema: an object of key -> { type, default, doc })",
    );
  }
  for (const [key, field] of Object.entries(params)) {
    const where = `params.${key}`;
    if (!isRecord(field) || !FIELD_TYPES.includes(field.type as string)) {
      throw moduleError(spec, `${where}: type must be one of ${FIELD_TYPES.join(", ")}`);
    }
    if (typeof field.doc !== "string") throw moduleError(spec, `${where}: doc must be a string`);
    if (
      field.type === "enum" &&
      (!Array.isArray(field.values) || !field.values.every((v) => typeof v === "string"))
    ) {
      throw moduleError(spec, `${where}: an enum needs values, an array of strings`);
    }
    if (field.type === "number" && field.default === null) continue;
    try {
      checkValue(`${where}.default`, field as unknown as Field, field.default);
    } catch (e) {
      throw moduleError(spec, e instanceof Error ? e.message : String(e));
    }
  }
  return params as Section;
}

/** Imports `spec` (resolved against `baseDir`) and checks it against the generator contract. */
export async function loadGeneratorModule(spec: string, baseDir: string): Promise<GeneratorStage> {
  const known = loaded.get(spec);
  if (known) return known;
  const url = /^(file:|https?:)/.test(spec) ? spec : pathToFileURL(resolve(baseDir, spec)).href;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw moduleError(spec, `cannot import ${url} (${why})`);
  }
  const params = checkParams(spec, module.params);
  if (typeof module.create !== "function") {
    throw moduleError(
      spec,
      "exports no `create` (its operator factory: (params, { seed, train, report }) => operator)",
    );
  }
  const { summary = `user generator ${url}`, provenance = "generated" } = module;
  if (typeof summary !== "string") throw moduleError(spec, "summary must be a string");
  if (!PROVENANCE_NAMES.includes(provenance as never)) {
    throw moduleError(spec, `provenance must be one of ${PROVENANCE_NAMES.join(", ")}`);
  }
  const create = module.create as GeneratorModule["create"];
  const stage = defineGenerator({
    name: spec,
    summary,
    provenance: provenance as GeneratorModule["provenance"] & string,
    params,
    create(p, context) {
      const operator = namingModule(spec, () => create(p, context));
      if (typeof operator !== "function") {
        throw moduleError(spec, "create() must return an RxJS operator (a function)");
      }
      return operator;
    },
  });
  loaded.set(spec, stage);
  return stage;
}

/** Every module spec a raw config names: generator values at any depth, and generators' keys. */
function specsIn(value: unknown, out: Set<string>, key = ""): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => specsIn(v, out));
  else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === "generator" && typeof v === "string" && isModuleSpec(v)) out.add(v);
      if (key === "generators" && isModuleSpec(k)) out.add(k);
      specsIn(v, out, k);
    }
  }
  return out;
}

/**
 * Loads every generator module a raw config names, paths relative to the config file
 * (`configPath`; the working directory when null). Modules already loaded are kept.
 */
export async function loadGeneratorModules(
  raw: Record<string, unknown>,
  configPath: string | null,
): Promise<void> {
  const base = configPath === null ? Deno.cwd() : dirname(resolve(configPath));
  for (const spec of specsIn(raw, new Set())) await loadGeneratorModule(spec, base);
}
