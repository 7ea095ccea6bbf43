// A tiny schema for config sections and stage options: types, ranges, defaults, help text, and
// "did you mean" for unknown keys. Every option a user can set, from a config file or --set, goes
// through here, so validation and --help never disagree.

import { keyError } from "./errors.ts";

interface FieldBase {
  readonly doc: string;
}
export interface IntField extends FieldBase {
  readonly type: "int";
  readonly default: number;
  readonly min?: number;
  readonly max?: number;
}
export interface NumberField extends FieldBase {
  readonly type: "number";
  /** null: unset unless given (a stage then picks its own default, or rejects the key). */
  readonly default: number | null;
  readonly min?: number;
  readonly max?: number;
  /** Exclusive lower bound, for quantities that must be strictly positive. */
  readonly above?: number;
}
export interface BooleanField extends FieldBase {
  readonly type: "boolean";
  readonly default: boolean;
}
export interface StringField extends FieldBase {
  readonly type: "string";
  readonly default: string;
}
export interface EnumField<V extends string = string> extends FieldBase {
  readonly type: "enum";
  readonly values: readonly V[];
  readonly default: V;
}
export type Field = IntField | NumberField | BooleanField | StringField | EnumField;
export type Section = Readonly<Record<string, Field>>;

type ValueOf<F> = F extends IntField ? number
  : F extends NumberField ? (F["default"] extends null ? number | null : number)
  : F extends BooleanField ? boolean
  : F extends EnumField<infer V> ? V
  : string;
export type Resolved<S extends Section> = { -readonly [K in keyof S]: ValueOf<S[K]> };

/** Levenshtein distance, for suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** " (did you mean "x"?)" for the closest candidate, or the list of valid names. */
export function suggestion(name: string, candidates: readonly string[]): string {
  // Dotted keys also compare by their last part, so "count" finds "generate.count"; the
  // threshold follows that last part's length, so a long shared prefix doesn't excuse a bad tail.
  const last = (key: string) => key.slice(key.lastIndexOf(".") + 1).toLowerCase();
  let best = "";
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = Math.min(
      editDistance(name.toLowerCase(), c.toLowerCase()),
      editDistance(last(name), last(c)),
    );
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  if (best && bestDistance <= Math.max(2, Math.floor(last(name).length / 3))) {
    return ` (did you mean "${best}"?)`;
  }
  return candidates.length ? ` (valid: ${candidates.join(", ")})` : "";
}

function describeType(field: Field): string {
  if (field.type === "enum") return `one of ${field.values.join(", ")}`;
  const bounds: string[] = [];
  if (field.type === "int" || field.type === "number") {
    if (field.min !== undefined) bounds.push(`>= ${field.min}`);
    if (field.type === "number" && field.above !== undefined) bounds.push(`> ${field.above}`);
    if (field.max !== undefined) bounds.push(`<= ${field.max}`);
  }
  const name = field.type === "int"
    ? "an integer"
    : field.type === "number"
    ? "a number"
    : `a ${field.type}`;
  return bounds.length ? `${name} ${bounds.join(" and ")}` : name;
}

/** Checks one value against its field; throws a one-line error naming the key. */
export function checkValue(key: string, field: Field, value: unknown): unknown {
  const bad = () => keyError(key, `expected ${describeType(field)}, got ${JSON.stringify(value)}`);
  switch (field.type) {
    case "int":
    case "number": {
      if (typeof value !== "number" || !Number.isFinite(value)) throw bad();
      if (field.type === "int" && !Number.isInteger(value)) throw bad();
      if (field.min !== undefined && value < field.min) throw bad();
      if (field.max !== undefined && value > field.max) throw bad();
      if (field.type === "number" && field.above !== undefined && value <= field.above) throw bad();
      return value;
    }
    case "boolean":
      if (typeof value !== "boolean") throw bad();
      return value;
    case "string":
      if (typeof value !== "string") throw bad();
      return value;
    case "enum":
      if (typeof value !== "string") throw bad();
      if (!field.values.includes(value)) {
        throw keyError(key, `unknown value "${value}"${suggestion(value, field.values)}`);
      }
      return value;
  }
}

/** Parses a command-line string for a field (--set key=value). */
export function parseValue(key: string, field: Field, raw: string): unknown {
  switch (field.type) {
    case "int":
    case "number": {
      // Plain decimal only: Number() would also take "0x10", and "" as 0.
      const v = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
      return checkValue(key, field, Number.isNaN(v) ? raw : v);
    }
    case "boolean":
      if (raw === "true" || raw === "false") return raw === "true";
      return checkValue(key, field, raw);
    default:
      return checkValue(key, field, raw);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates an object against a section: unknown keys are errors, missing keys take defaults. */
export function resolveSection<S extends Section>(
  section: S,
  value: unknown,
  prefix: string,
): Resolved<S> {
  const where = prefix.replace(/\.$/, "") || "config";
  if (value === undefined) value = {};
  if (!isRecord(value)) throw keyError(where, `expected an object, got ${JSON.stringify(value)}`);
  const names = Object.keys(section);
  for (const key of Object.keys(value)) {
    if (!(key in section)) {
      throw keyError(
        prefix + key,
        `unknown key${suggestion(prefix + key, names.map((n) => prefix + n))}`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const field = section[name];
    out[name] = name in value ? checkValue(prefix + name, field, value[name]) : field.default;
  }
  return out as Resolved<S>;
}

/** Help lines for a section: key, type, default, doc. */
export function describeSection(section: Section, prefix = ""): string[] {
  const keys = Object.keys(section);
  const width = Math.max(0, ...keys.map((k) => (prefix + k).length));
  return keys.map((k) => {
    const f = section[k];
    return `  ${(prefix + k).padEnd(width)}  ${f.doc} [${describeType(f)}; default ${
      JSON.stringify(f.default)
    }]`;
  });
}
