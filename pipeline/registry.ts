// Name -> stage. A new generator is one file under stages/generate/ plus one line here.

import { contrastive } from "../stages/augment/contrastive.ts";
import { closedForm } from "../stages/generate/closed_form.ts";
import { kernel } from "../stages/generate/kernel.ts";
import { mosaic } from "../stages/generate/mosaic.ts";
import { noise } from "../stages/generate/noise.ts";
import { onnxFlow } from "../stages/generate/onnx_flow.ts";
import { smoothed } from "../stages/generate/smoothed.ts";
import type { AugmentStage, GeneratorStage } from "../core/stage.ts";

export const GENERATORS: Readonly<Record<string, GeneratorStage>> = {
  noise,
  "closed-form": closedForm,
  "onnx-flow": onnxFlow,
  smoothed,
  kernel,
  mosaic,
};

export const AUGMENTERS: Readonly<Record<string, AugmentStage>> = { contrastive };
