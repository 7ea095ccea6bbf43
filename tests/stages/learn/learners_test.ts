// The four learners run on augmented views of embedded MNIST: finite losses and collapse
// indicators, MoCo's key encoder is exactly the EMA of the query encoder, SwAV's prototypes stay
// unit-norm and its codes are distributions, and the probes' parameter copies are frozen.

import assert from "node:assert/strict";
import { lastValueFrom, of } from "rxjs";
import { drawBatch } from "../../../pipeline/table3/mix.ts";
import { augmentViews } from "../../../stages/augment/contrastive.ts";
import { PRESETS } from "../../../stages/augment/recipes.ts";
import { smallCnn } from "../../../stages/learn/blocks/model.ts";
import type { Learner, LearnerOptions } from "../../../stages/learn/learner.ts";
import { moco } from "../../../stages/learn/moco.ts";
import { simclr } from "../../../stages/learn/simclr.ts";
import { simsiam } from "../../../stages/learn/simsiam.ts";
import { swav } from "../../../stages/learn/swav.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";

const train = subset(loadEmbeddedMnist(), 200, true, 0);
const B = 16;
const OPTIONS: LearnerOptions = {
  encoder: smallCnn(),
  input: [28, 28, 1],
  batch: B,
  optimizer: { kind: "sgd", momentum: 0.9, weightDecay: 1e-5 },
  seed: 1,
  dim: 32,
};
const augment = augmentViews(PRESETS.strong, 0);

async function views(step: number): Promise<Float32Array> {
  const batch = drawBatch({ real: train, extra: null, dup: 1 }, B, 0, step);
  return (await lastValueFrom(of(batch).pipe(augment))).images;
}

const LEARNERS: [string, () => Promise<Learner>][] = [
  ["simclr", () => simclr(OPTIONS)],
  ["moco", () => moco(OPTIONS, { tau: 0.2, queue: 64, momentum: 0.99 })],
  ["simsiam", () => simsiam(OPTIONS)],
  ["swav", () => swav(OPTIONS, { prototypes: 10, temperature: 0.1, eps: 0.05 })],
];

for (const [name, make] of LEARNERS) {
  Deno.test(`${name}: 5 steps on augmented MNIST views give finite losses and a non-zero feature spread`, async () => {
    const learner = await make();
    const frozen = learner.encoderParams();
    const before = new Map([...frozen].map(([k, v]) => [k, v.slice()]));
    for (let s = 0; s < 5; s++) {
      const report = await learner.step(await views(s), 0.05);
      assert.ok(Number.isFinite(report.loss), `${name} step ${s}: loss ${report.loss}`);
      assert.ok(
        report.featureStd > 0 && report.featureStd <= 1,
        `${name}: feature std ${report.featureStd}`,
      );
    }
    // The copy handed to probes is frozen: training does not write it.
    for (const [k, v] of frozen) assert.deepEqual(v, before.get(k), k);
    // ... while the encoder itself did move.
    assert.notDeepEqual(learner.encoderParams().get("0.weight"), before.get("0.weight"));
    await learner.release();
  });
}

Deno.test("moco: the key encoder is exactly the EMA of the query encoder", async () => {
  const learner = await moco(OPTIONS, { tau: 0.2, queue: 64, momentum: 0.9 }) as Learner & {
    keyParams: Map<string, Float32Array>;
  };
  // Before any step the key encoder is a copy of the query encoder.
  for (const [name, key] of learner.keyParams) {
    assert.deepEqual(key, learner.trainer.value(name), name);
  }
  await learner.step(await views(0), 0.05);
  const key = new Map([...learner.keyParams].map(([k, v]) => [k, v.slice()]));
  const query = new Map(
    [...learner.keyParams.keys()].map((k) => [k, learner.trainer.value(k).slice()]),
  );
  await learner.step(await views(1), 0.05);
  for (const [name, k] of learner.keyParams) {
    const want = key.get(name)!.map((v, i) => 0.9 * v + (1 - 0.9) * query.get(name)![i]);
    assert.deepEqual(k, want, name);
  }
  await learner.release();
});

Deno.test("swav: prototypes are unit-norm after every step; code entropy within [0, ln K]", async () => {
  const learner = await swav(OPTIONS, { prototypes: 10, temperature: 0.1, eps: 0.05 });
  // Head: dense, relu, dense, l2norm, prototypes.
  const prototypes = `${OPTIONS.encoder.length + 5 - 1}.weight`;
  for (let s = 0; s < 3; s++) {
    const report = await learner.step(await views(s), 0.05);
    assert.ok(report.codeEntropy! >= 0 && report.codeEntropy! <= Math.log(10) + 1e-9);
    const w = learner.trainer.value(prototypes);
    for (let j = 0; j < 10; j++) {
      let n = 0;
      for (let i = 0; i < OPTIONS.dim; i++) n += w[i * 10 + j] ** 2;
      assert.ok(Math.abs(Math.sqrt(n) - 1) < 1e-5, `prototype ${j}: norm ${Math.sqrt(n)}`);
    }
  }
  await learner.release();
});
