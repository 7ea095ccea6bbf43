// The config schema: edit distance, "did you mean" suggestions, per-type value checks, parsing of
// command-line strings, and section resolution with defaults and unknown-key errors.

import assert from "node:assert/strict";
import { SiaError } from "../../core/errors.ts";
import {
  checkValue,
  describeSection,
  editDistance,
  parseValue,
  resolveSection,
  suggestion,
} from "../../core/schema.ts";
import type { Field, Section } from "../../core/schema.ts";

/** Asserts `f` throws a usage SiaError (exit code 2) whose message matches every pattern. */
function usageError(f: () => unknown, ...patterns: (RegExp | string)[]): SiaError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SiaError, `expected a SiaError, got ${caught}`);
  assert.equal(caught.exitCode, 2, caught.message);
  for (const p of patterns) {
    if (typeof p === "string") assert.ok(caught.message.includes(p), `${caught.message} ∌ ${p}`);
    else assert.match(caught.message, p);
  }
  return caught;
}

// ---------------------------------------------------------------------------------------------
// editDistance and suggestion

Deno.test("editDistance gives Levenshtein distances", () => {
  const cases: [string, string, number][] = [
    ["", "", 0],
    ["", "abc", 3],
    ["abc", "", 3],
    ["abc", "abc", 0],
    ["sise", "size", 1],
    ["kitten", "sitting", 3],
    ["flaw", "lawn", 2],
    ["intention", "execution", 5],
    ["radius", "r", 5],
    ["ab", "ba", 2],
    ["nosie", "noise", 2],
  ];
  for (const [a, b, d] of cases) {
    assert.equal(editDistance(a, b), d, `${a} -> ${b}`);
    assert.equal(editDistance(b, a), d, `${b} -> ${a} (symmetry)`);
  }
});

Deno.test("editDistance obeys the triangle inequality on a few words", () => {
  const words = ["size", "sise", "seed", "source", "labels", "balanced", "", "s"];
  for (const a of words) {
    for (const b of words) {
      for (const c of words) {
        assert.ok(editDistance(a, c) <= editDistance(a, b) + editDistance(b, c), `${a} ${b} ${c}`);
      }
    }
  }
});

Deno.test("suggestion names the closest candidate", () => {
  const keys = ["source", "labels", "size", "balanced", "testFraction", "splitSeed"];
  assert.equal(suggestion("sise", keys), ' (did you mean "size"?)');
  assert.equal(suggestion("labls", keys), ' (did you mean "labels"?)');
  // Case-insensitive comparison, original spelling in the message.
  assert.equal(suggestion("TESTFRACTION", keys), ' (did you mean "testFraction"?)');
  assert.equal(suggestion("splitseed", keys), ' (did you mean "splitSeed"?)');
});

Deno.test("suggestion lists the valid names when nothing is close", () => {
  const keys = ["r", "s", "k", "clip"];
  assert.equal(suggestion("radius", keys), " (valid: r, s, k, clip)");
  assert.equal(suggestion("zzzzzzzzzz", ["size", "seed"]), " (valid: size, seed)");
  assert.equal(suggestion("anything", []), "");
});

// ---------------------------------------------------------------------------------------------
// checkValue

const INT: Field = { type: "int", min: 0, max: 10, default: 0, doc: "" };
const NUMBER: Field = { type: "number", min: 0, max: 1, default: 0.5, doc: "" };
const POSITIVE: Field = { type: "number", above: 0, default: 1, doc: "" };
const BOOL: Field = { type: "boolean", default: true, doc: "" };
const STRING: Field = { type: "string", default: "", doc: "" };
const ENUM: Field = { type: "enum", values: ["noise", "copy", "mix"], default: "noise", doc: "" };

Deno.test("checkValue accepts valid values unchanged", () => {
  assert.equal(checkValue("a.int", INT, 0), 0);
  assert.equal(checkValue("a.int", INT, 10), 10);
  assert.equal(checkValue("a.number", NUMBER, 0.25), 0.25);
  assert.equal(checkValue("a.number", NUMBER, 1), 1);
  assert.equal(checkValue("a.positive", POSITIVE, 1e-9), 1e-9);
  assert.equal(checkValue("a.bool", BOOL, false), false);
  assert.equal(checkValue("a.string", STRING, ""), "");
  assert.equal(checkValue("a.enum", ENUM, "copy"), "copy");
});

Deno.test("checkValue rejects non-integers for int fields", () => {
  usageError(() => checkValue("data.size", INT, 1.5), "data.size:", "an integer", "1.5");
  usageError(() => checkValue("data.size", INT, NaN), "data.size:");
  usageError(() => checkValue("data.size", INT, Infinity), "data.size:");
});

Deno.test("checkValue rejects out-of-range numbers, naming the bound", () => {
  usageError(() => checkValue("data.size", INT, -1), "data.size:", ">= 0", "-1");
  usageError(() => checkValue("data.size", INT, 11), "data.size:", "<= 10", "11");
  usageError(() => checkValue("x.frac", NUMBER, 1.0001), "x.frac:", "<= 1");
  usageError(() => checkValue("x.frac", NUMBER, -0.1), "x.frac:", ">= 0");
  // `above` is exclusive.
  usageError(() => checkValue("x.pos", POSITIVE, 0), "x.pos:", "> 0");
  usageError(() => checkValue("x.pos", POSITIVE, -Infinity), "x.pos:");
});

Deno.test("checkValue rejects wrong types", () => {
  usageError(() => checkValue("k", INT, "3"), "k:", '"3"');
  usageError(() => checkValue("k", NUMBER, null), "k:", "null");
  usageError(() => checkValue("k", NUMBER, true), "k:", "a number");
  usageError(() => checkValue("k", BOOL, "true"), "k:", "a boolean");
  usageError(() => checkValue("k", BOOL, 1), "k:", "a boolean");
  usageError(() => checkValue("k", STRING, 5), "k:", "a string");
  usageError(() => checkValue("k", ENUM, 5), "k:", "one of noise, copy, mix");
  usageError(() => checkValue("k", STRING, { a: 1 }), "k:");
});

Deno.test("checkValue rejects an unknown enum value with a suggestion", () => {
  usageError(() => checkValue("gen", ENUM, "nosie"), "gen:", 'unknown value "nosie"', '"noise"');
  usageError(() => checkValue("gen", ENUM, "zzzzzzzzz"), "valid: noise, copy, mix");
});

// ---------------------------------------------------------------------------------------------
// parseValue

Deno.test("parseValue parses numbers and booleans from strings", () => {
  assert.equal(parseValue("n", INT, "7"), 7);
  assert.equal(parseValue("n", INT, " 7 "), 7);
  assert.equal(parseValue("n", NUMBER, "0.5"), 0.5);
  assert.equal(parseValue("n", NUMBER, "1e-1"), 0.1);
  assert.equal(parseValue("n", POSITIVE, "2.5"), 2.5);
  assert.equal(parseValue("b", BOOL, "true"), true);
  assert.equal(parseValue("b", BOOL, "false"), false);
  assert.equal(parseValue("s", STRING, "runs/x"), "runs/x");
  assert.equal(parseValue("e", ENUM, "mix"), "mix");
  assert.equal(typeof parseValue("n", NUMBER, "0.5"), "number");
  assert.equal(typeof parseValue("b", BOOL, "false"), "boolean");
});

Deno.test("parseValue rejects strings that are not values of the field", () => {
  usageError(() => parseValue("x.n", NUMBER, "abc"), "x.n:", '"abc"', "a number");
  usageError(() => parseValue("x.n", INT, ""), "x.n:");
  usageError(() => parseValue("x.n", INT, "   "), "x.n:");
  usageError(() => parseValue("x.n", INT, "2.5"), "x.n:", "an integer");
  usageError(() => parseValue("x.n", INT, "11"), "x.n:", "<= 10");
  usageError(() => parseValue("x.n", NUMBER, "Infinity"), "x.n:");
  usageError(() => parseValue("x.b", BOOL, "yes"), "x.b:", '"yes"');
  usageError(() => parseValue("x.b", BOOL, "True"), "x.b:");
  usageError(() => parseValue("x.e", ENUM, "nosie"), '"noise"');
});

// ---------------------------------------------------------------------------------------------
// resolveSection

const SECTION = {
  size: { type: "int", min: 0, default: 0, doc: "how many" },
  balanced: { type: "boolean", default: true, doc: "equal counts" },
  source: { type: "string", default: "mnist", doc: "where" },
  frac: { type: "number", min: 0, max: 0.9, default: 0.2, doc: "fraction" },
} as const satisfies Section;

Deno.test("resolveSection fills defaults for missing keys", () => {
  assert.deepEqual(resolveSection(SECTION, undefined, "data."), {
    size: 0,
    balanced: true,
    source: "mnist",
    frac: 0.2,
  });
  assert.deepEqual(resolveSection(SECTION, { size: 12, balanced: false }, "data."), {
    size: 12,
    balanced: false,
    source: "mnist",
    frac: 0.2,
  });
});

Deno.test("resolveSection rejects unknown keys, naming the full dotted key", () => {
  const e = usageError(
    () => resolveSection(SECTION, { sise: 3 }, "data."),
    /^data\.sise: unknown key \(did you mean "data\.size"\?\)$/,
  );
  assert.equal(e.name, "SiaError");
  usageError(
    () => resolveSection(SECTION, { qqqqqqqqqq: 1 }, "data."),
    "data.qqqqqqqqqq:",
    "valid: data.size, data.balanced, data.source, data.frac",
  );
  // Top level: no prefix.
  usageError(() => resolveSection(SECTION, { sourc: "x" }, ""), /^sourc: unknown key/, '"source"');
});

Deno.test("resolveSection checks each value under its dotted key", () => {
  usageError(() => resolveSection(SECTION, { size: -2 }, "data."), /^data\.size: /, ">= 0");
  usageError(() => resolveSection(SECTION, { frac: 0.95 }, "data."), /^data\.frac: /, "<= 0.9");
  usageError(() => resolveSection(SECTION, { balanced: "no" }, "data."), /^data\.balanced: /);
});

Deno.test("resolveSection rejects a section that is not an object", () => {
  usageError(() => resolveSection(SECTION, 5, "data."), /^data: expected an object, got 5$/);
  usageError(() => resolveSection(SECTION, [1], "data."), /^data: expected an object/);
  usageError(() => resolveSection(SECTION, null, "data."), /^data: expected an object/);
  usageError(() => resolveSection(SECTION, "x", ""), /^config: expected an object/);
});

Deno.test("describeSection gives one line per key with type and default", () => {
  const lines = describeSection(SECTION, "data.");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /data\.size\s+how many \[an integer >= 0; default 0\]/);
  assert.match(lines[1], /data\.balanced\s+equal counts \[a boolean; default true\]/);
  assert.match(lines[2], /data\.source\s+where \[a string; default "mnist"\]/);
  assert.match(lines[3], /data\.frac\s+fraction \[a number >= 0 and <= 0\.9; default 0\.2\]/);
});
