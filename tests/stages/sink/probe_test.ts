// The probe sink: learner events pass through in order, a probe event follows each encoder
// event, its scores are the three probes on that snapshot's frozen features (the same numbers as
// composing extractFeatures, knnAccuracy, linearProbeAccuracy and logisticProbeAccuracy by
// hand), and the encoder's tensors are not written.

import assert from "node:assert/strict";
import { from, lastValueFrom, toArray } from "rxjs";
import { initParams } from "../../../stages/learn/blocks/init.ts";
import { paramSpecs, smallCnn } from "../../../stages/learn/blocks/model.ts";
import type { LearnEvent } from "../../../stages/learn/stage.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadEmbeddedMnist } from "../../../stages/load/mnist.ts";
import { probeEncoder, probeSink } from "../../../stages/sink/probe.ts";
import type { ProbeEvent, ProbeSinkOptions } from "../../../stages/sink/probe.ts";
import { extractFeatures } from "../../../stages/sink/probe/features.ts";
import { knnAccuracy } from "../../../stages/sink/probe/knn.ts";
import { linearProbeAccuracy } from "../../../stages/sink/probe/linear.ts";
import { logisticProbeAccuracy } from "../../../stages/sink/probe/logistic.ts";

const mnist = loadEmbeddedMnist();
const encoder = smallCnn();
const OPTIONS: ProbeSinkOptions = {
  encoder,
  input: [28, 28, 1],
  train: subset(mnist, 300, true, 0),
  test: subset(mnist, 120, false, 1),
};

Deno.test("probeSink: events pass through; a probe event with both scores follows each encoder event", async () => {
  const a = initParams(paramSpecs(encoder, [1, 28, 28]), 1);
  const b = initParams(paramSpecs(encoder, [1, 28, 28]), 2);
  const before = [...a.values(), ...b.values()].map((v) => v.slice());
  const step = (n: number): LearnEvent => ({
    kind: "step",
    learner: "x",
    step: n,
    lr: 0.1,
    loss: 1,
    featureStd: 0.1,
  });
  const events = await lastValueFrom(
    from<LearnEvent[]>([
      step(1),
      { kind: "encoder", learner: "x", step: 1, params: a, path: null },
      step(2),
      { kind: "encoder", learner: "x", step: 2, params: b, path: null },
    ]).pipe(probeSink(OPTIONS), toArray()),
  );
  assert.deepEqual(
    events.map((e) => `${e.kind}${e.step}`),
    ["step1", "encoder1", "probe1", "step2", "encoder2", "probe2"],
  );
  for (const [i, params] of [[2, a], [5, b]] as const) {
    const probe = events[i];
    assert.equal(probe.kind, "probe");
    if (probe.kind !== "probe") continue;
    const train = await extractFeatures(encoder, [28, 28, 1], params, OPTIONS.train);
    const test = await extractFeatures(encoder, [28, 28, 1], params, OPTIONS.test);
    const width = train.length / 300;
    const knn = await knnAccuracy(train, OPTIONS.train.labels, test, OPTIONS.test.labels, width, {
      k: 200,
      temperature: 0.1,
    });
    const linear = linearProbeAccuracy(
      train,
      OPTIONS.train.labels,
      test,
      OPTIONS.test.labels,
      width,
      { classes: 10, seed: 0 },
    );
    const logistic = logisticProbeAccuracy(
      train,
      OPTIONS.train.labels,
      test,
      OPTIONS.test.labels,
      width,
      { classes: 10, seed: 0 },
    );
    assert.equal(probe.knn, knn.accuracy);
    assert.equal(probe.linear, linear.accuracy);
    assert.equal(probe.logistic, logistic.accuracy);
    assert.equal(probe.trainImages, 300);
    assert.equal(probe.testImages, 120);
    // A random encoder on real digits is far above chance on both probes.
    assert.ok(
      probe.knn > 0.3 && probe.linear > 0.5 && probe.logistic > 0.5,
      `${probe.knn} ${probe.linear} ${probe.logistic}`,
    );
  }
  // Probing read the encoders' tensors and wrote none of them.
  assert.deepEqual([...a.values(), ...b.values()], before);
  // probeEncoder, called directly, gives the sink's numbers.
  const { kind: _kind, learner: _learner, step: _step, ...scores } = events[2] as ProbeEvent;
  assert.deepEqual(await probeEncoder(a, OPTIONS), scores);
});
