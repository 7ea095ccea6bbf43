// Name -> experiment, the value of a config's "experiment" key. A new experiment is one file in
// this folder plus one line here.

import type { Experiment } from "./experiment.ts";
import { generators } from "./generators.ts";
import { memorization } from "./memorization.ts";
import { table3 } from "./table3.ts";
import { tables12 } from "./tables12.ts";

export const EXPERIMENTS: Readonly<Record<string, Experiment>> = {
  table3,
  memorization,
  tables12,
  generators,
};
