// deno task bench [NAME ...]: runs the named benchmarks (all by default) and records their
// figures in BENCHMARKS.md. Run nothing else on the machine meanwhile.

import { benchAugment } from "./augment.ts";
import { benchClosedForm } from "./closed_form.ts";
import { benchFlow } from "./flow.ts";
import { benchLearners } from "./learners.ts";
import { benchQueue } from "./queue.ts";
import { benchStream } from "./stream.ts";
import { benchTable3Peer } from "./table3_peer.ts";
import { benchTrainStep } from "./train_step.ts";

const BENCHES: Record<string, (args: string[]) => Promise<void>> = {
  "closed-form": benchClosedForm,
  augment: benchAugment,
  "train-step": benchTrainStep,
  learners: benchLearners,
  flow: benchFlow,
  stream: benchStream,
  queue: benchQueue,
  "table3-peer": benchTable3Peer,
};

const names = Deno.args.filter((a) => !a.startsWith("--"));
const flags = Deno.args.filter((a) => a.startsWith("--"));
for (const name of names.length ? names : Object.keys(BENCHES)) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`bench: unknown benchmark "${name}" (have: ${Object.keys(BENCHES).join(", ")})`);
    Deno.exit(2);
  }
  await bench(flags);
}
