// Name -> stage. A new generator is one file under stages/generate/ plus one line here.

import { closedForm } from "../stages/generate/closed_form.ts";
import { noise } from "../stages/generate/noise.ts";
import type { GeneratorStage } from "./stage.ts";

export const GENERATORS: Readonly<Record<string, GeneratorStage>> = {
  noise,
  "closed-form": closedForm,
};
