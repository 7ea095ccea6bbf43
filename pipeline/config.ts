// The run configuration: a JSON file, overridden by flags and --set key=value. Every key has a
// type, a default and a line of help; unknown keys are errors that suggest the closest valid one.

import { keyError, SiaError } from "../core/errors.ts";
import { AUGMENTERS, GENERATORS } from "./registry.ts";
import { isModuleSpec, namingModule, userGenerator } from "./user_generator.ts";
import { describeSection, parseValue, resolveSection, suggestion } from "../core/schema.ts";
import type { Field, Resolved, Section } from "../core/schema.ts";

export const TOP_SECTION = {
  seed: { type: "int", min: 0, default: 0, doc: "seed of every random draw in the run" },
  description: { type: "string", default: "", doc: "free text, copied to the manifest" },
} as const satisfies Section;

export const DATA_SECTION = {
  source: {
    type: "string",
    default: "mnist",
    doc:
      "mnist (embedded), fashion-mnist (Debian path), or a path: IDX (.gz or raw), CIFAR-10 .bin, .npy, or a directory of them",
  },
  labels: {
    type: "string",
    default: "",
    doc: "labels file for a single images file (default: a sibling)",
  },
  size: {
    type: "int",
    min: 0,
    default: 0,
    doc: "training images to keep, a seeded subset (0 = all)",
  },
  balanced: { type: "boolean", default: true, doc: "subset with equal counts per class" },
  testFraction: {
    type: "number",
    min: 0,
    max: 0.9,
    default: 0.2,
    doc: "per-class fraction held out as test when the source has no test split",
  },
  splitSeed: {
    type: "int",
    min: 0,
    default: 0,
    doc: "seed of that train/test split (kept apart from seed)",
  },
} as const satisfies Section;

export const GENERATE_SECTION = {
  generator: {
    type: "string",
    default: "noise",
    doc: `generator stage: ${Object.keys(GENERATORS).join(", ")}`,
  },
  count: { type: "int", min: 1, default: 1000, doc: "images to generate" },
  batchSize: { type: "int", min: 1, default: 256, doc: "images per batch through the graph" },
} as const satisfies Section;

export const OUT_SECTION = {
  dir: {
    type: "string",
    default: "",
    doc: "output directory for shards, manifest and summary (required)",
  },
  shardSize: { type: "int", min: 1, default: 10000, doc: "images per .npy shard" },
  summary: { type: "boolean", default: true, doc: "write summary.md and print it" },
  nnSample: {
    type: "int",
    min: 0,
    default: 1000,
    doc: "generated (and held-out) images whose nearest-neighbour distances the summary reports",
  },
} as const satisfies Section;

export const AUGMENT_SECTION = {
  stage: {
    type: "string",
    default: "",
    doc: `augmentation stage after the generator: ${
      Object.keys(AUGMENTERS).join(", ")
    } (empty: none)`,
  },
} as const satisfies Section;

const SECTIONS = {
  data: DATA_SECTION,
  generate: GENERATE_SECTION,
  augment: AUGMENT_SECTION,
  out: OUT_SECTION,
} as const;
type SectionName = keyof typeof SECTIONS;

export interface PipelineConfig extends Resolved<typeof TOP_SECTION> {
  data: Resolved<typeof DATA_SECTION>;
  generate: Resolved<typeof GENERATE_SECTION> & { params: Resolved<Section> };
  augment: Resolved<typeof AUGMENT_SECTION> & { params: Resolved<Section> };
  out: Resolved<typeof OUT_SECTION>;
}

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function augmentStage(name: string) {
  const stage = AUGMENTERS[name];
  if (!stage) {
    throw keyError(
      "augment.stage",
      `unknown augmentation stage "${name}"${suggestion(name, Object.keys(AUGMENTERS))}`,
    );
  }
  return stage;
}

export function generatorStage(name: string) {
  const stage = GENERATORS[name] ?? userGenerator(name);
  if (!stage && isModuleSpec(name)) {
    throw keyError("generate.generator", `generator module ${name} was not loaded`);
  }
  if (!stage) {
    throw keyError(
      "generate.generator",
      `unknown generator "${name}"${suggestion(name, Object.keys(GENERATORS))}`,
    );
  }
  return stage;
}

/** A section that carries a stage's own options under "params": the section, and those raw options. */
function withParams<S extends Section>(
  section: S,
  value: unknown,
  prefix: string,
): [Resolved<S>, unknown] {
  const rest = isRecord(value) ? { ...value } : value;
  const params = isRecord(rest) ? rest.params : undefined;
  if (isRecord(rest)) delete rest.params;
  return [resolveSection(section, rest, prefix), params];
}

/** Validates a raw config object, filling defaults. */
export function resolveConfig(raw: unknown): PipelineConfig {
  if (!isRecord(raw)) throw keyError("config", "expected a JSON object");
  const sectionNames = Object.keys(SECTIONS);
  const topNames = [...Object.keys(TOP_SECTION), ...sectionNames];
  for (const key of Object.keys(raw)) {
    if (!topNames.includes(key)) throw keyError(key, `unknown key${suggestion(key, topNames)}`);
  }
  const top = resolveSection(
    TOP_SECTION,
    Object.fromEntries(
      Object.entries(raw).filter(([k]) => k in TOP_SECTION),
    ),
    "",
  );
  const data = resolveSection(DATA_SECTION, raw.data, "data.");
  const [generate, generateParams] = withParams(GENERATE_SECTION, raw.generate, "generate.");
  const stage = generatorStage(generate.generator);
  const [augment, augmentParams] = withParams(AUGMENT_SECTION, raw.augment, "augment.");
  const out = resolveSection(OUT_SECTION, raw.out, "out.");
  if (!out.dir) {
    throw keyError("out.dir", "no output directory given (set out.dir or pass --out DIR)");
  }
  return {
    ...top,
    data,
    generate: {
      ...generate,
      params: namingModule(
        generate.generator,
        () => resolveSection(stage.params, generateParams, "generate.params."),
      ),
    },
    augment: {
      ...augment,
      params: augment.stage
        ? resolveSection(augmentStage(augment.stage).params, augmentParams, "augment.params.")
        : {},
    },
    out,
  };
}

/** Reads a JSON config file; problems name the file. */
export async function readConfigFile(path: string): Promise<Raw> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Error
      ? e.message
      : String(e);
    throw new SiaError(`${path}: cannot read config (${why})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SiaError(`${path}: not valid JSON (${e instanceof Error ? e.message : e})`);
  }
  if (!isRecord(raw)) throw new SiaError(`${path}: a config must be a JSON object`);
  return raw;
}

/** The field behind a dotted key, for --set; the generator's params need its name. */
function fieldFor(key: string, generator: string, augmenter: string): Field {
  const parts = key.split(".");
  const all = allKeys(generator);
  const unknown = () => keyError(key, `unknown key${suggestion(key, all)}`);
  if (parts.length === 1) {
    if (!(key in TOP_SECTION)) throw unknown();
    return TOP_SECTION[key as keyof typeof TOP_SECTION];
  }
  const [section, name, ...rest] = parts;
  if (section === "generate" && name === "params" && rest.length === 1) {
    const params = generatorStage(generator).params;
    if (!(rest[0] in params)) throw unknown();
    return params[rest[0]];
  }
  if (section === "augment" && name === "params" && rest.length === 1) {
    const params = augmentStage(augmenter || Object.keys(AUGMENTERS)[0]).params;
    if (!(rest[0] in params)) throw unknown();
    return params[rest[0]];
  }
  if (rest.length || !(section in SECTIONS)) throw unknown();
  const fields: Section = SECTIONS[section as SectionName];
  if (!(name in fields)) throw unknown();
  return fields[name];
}

/** Every settable dotted key, for suggestions and help. */
export function allKeys(generator: string): string[] {
  const keys = Object.keys(TOP_SECTION);
  for (const [section, fields] of Object.entries(SECTIONS)) {
    for (const name of Object.keys(fields)) keys.push(`${section}.${name}`);
  }
  const stage = GENERATORS[generator] ?? userGenerator(generator);
  if (stage) { for (const name of Object.keys(stage.params)) keys.push(`generate.params.${name}`); }
  for (const a of Object.values(AUGMENTERS)) {
    for (const name of Object.keys(a.params)) keys.push(`augment.params.${name}`);
  }
  return keys;
}

/** Applies `key=value` to a raw config, parsing the value by the key's type. */
export function applySet(raw: Raw, assignment: string): void {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw keyError("--set", `expected key=value, got "${assignment}"`);
  const key = assignment.slice(0, eq).trim();
  const generate = isRecord(raw.generate) ? raw.generate : {};
  const generator = typeof generate.generator === "string"
    ? generate.generator
    : GENERATE_SECTION.generator.default;
  const augment = isRecord(raw.augment) ? raw.augment : {};
  const augmenter = typeof augment.stage === "string" ? augment.stage : "";
  const parse = () =>
    parseValue(key, fieldFor(key, generator, augmenter), assignment.slice(eq + 1));
  const value = key.startsWith("generate.params.") ? namingModule(generator, parse) : parse();
  const parts = key.split(".");
  let node = raw;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(node[part])) node[part] = {};
    node = node[part] as Raw;
  }
  node[parts[parts.length - 1]] = value;
}

/** The help text of every config key, the generator's own keys included. */
export function describeConfig(): string[] {
  const lines = [...describeSection(TOP_SECTION)];
  for (const [name, fields] of Object.entries(SECTIONS)) {
    lines.push(...describeSection(fields, `${name}.`));
  }
  for (const stage of Object.values(GENERATORS)) {
    lines.push(`  generate.params for "${stage.name}" (${stage.summary}):`);
    lines.push(...describeSection(stage.params, "  generate.params."));
  }
  for (const stage of Object.values(AUGMENTERS)) {
    lines.push(`  augment.params for "${stage.name}" (${stage.summary}):`);
    lines.push(...describeSection(stage.params, "  augment.params."));
  }
  return lines;
}
