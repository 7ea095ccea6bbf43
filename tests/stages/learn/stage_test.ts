// The learner stage: one step event per batch with the schedule's learning rate, encoder events
// at the cadence and once at the end (never twice for the same step), checkpoints that hold the
// trainer's exact state, frozen encoder copies, one-line errors for wrong views, and Adam driven
// through the same step (its bias corrections fed per step).

import assert from "node:assert/strict";
import { cnnOptions } from "./_options.ts";
import { from, lastValueFrom, toArray } from "rxjs";
import { makeBatch } from "../../../core/batch.ts";
import type { Batch } from "../../../core/batch.ts";
import { SiaError } from "../../../core/errors.ts";
import { Rng } from "../../../core/rng.ts";
import { loadCheckpoint } from "../../../stages/learn/graph/checkpoint.ts";
import { stepScalars } from "../../../stages/learn/learner.ts";
import { simclr } from "../../../stages/learn/simclr.ts";
import { learnStage } from "../../../stages/learn/stage.ts";
import type { EncoderEvent, LearnEvent, StepEvent } from "../../../stages/learn/stage.ts";
import { withTempDir } from "../../_shared.ts";

const B = 4;
const OPTIONS = cnnOptions(B, 8, 3);

function viewBatches(count: number, rows = 2 * B): Batch[] {
  return Array.from({ length: count }, (_, s) => {
    const rng = new Rng(0, "views", s);
    const images = new Float32Array(rows * 28 * 28);
    for (let i = 0; i < images.length; i++) images[i] = rng.uniform();
    return makeBatch({
      images,
      shape: [rows, 28, 28, 1],
      labels: new Int32Array(rows),
      ids: Int32Array.from({ length: rows }, (_, i) => i % B),
      provenance: new Uint8Array(rows),
      generator: new Array<string>(rows).fill(""),
    });
  });
}

Deno.test("learnStage: a step event per batch, snapshots at the cadence and at the end, once each", async () => {
  await withTempDir(async (dir) => {
    const learner = await simclr(OPTIONS);
    const lr = (s: number) => 0.01 * (s + 1);
    const events = await lastValueFrom(
      from(viewBatches(5)).pipe(learnStage(learner, { lr, every: 2, dir }), toArray()),
    );
    assert.deepEqual(
      events.map((e) => `${e.kind}${e.step}`),
      ["step1", "step2", "encoder2", "step3", "step4", "encoder4", "step5", "encoder5"],
    );
    const steps = events.filter((e): e is StepEvent => e.kind === "step");
    assert.deepEqual(steps.map((e) => e.lr), [0.01, 0.02, 0.03, 0.04, 0.05]);
    for (const e of steps) assert.ok(Number.isFinite(e.loss) && e.featureStd > 0);
    const snaps = events.filter((e): e is EncoderEvent => e.kind === "encoder");
    // Each snapshot is a frozen copy: the step-2 copy differs from the step-4 one.
    assert.notDeepEqual(snaps[0].params.get("0.weight"), snaps[1].params.get("0.weight"));
    // The checkpoint holds the trainer's state at the last snapshot, exactly.
    const last = snaps[2];
    assert.equal(last.path, `${dir}/simclr.ckpt`);
    const checkpoint = await loadCheckpoint(last.path!);
    assert.equal(checkpoint.header.step, 5);
    assert.equal(checkpoint.header.meta.learner, "simclr");
    for (const name of learner.trainer.names()) {
      assert.deepEqual(checkpoint.values.get(name), learner.trainer.value(name), name);
    }
    for (const [name, v] of last.params) assert.deepEqual(v, learner.trainer.value(name), name);
    await learner.release();
  });
});

Deno.test("learnStage: no checkpoint directory, no file; a final snapshot only without cadence", async () => {
  const learner = await simclr(OPTIONS);
  const events: LearnEvent[] = await lastValueFrom(
    from(viewBatches(2)).pipe(learnStage(learner, { lr: () => 0.01 }), toArray()),
  );
  assert.deepEqual(events.map((e) => `${e.kind}${e.step}`), ["step1", "step2", "encoder2"]);
  assert.equal((events[2] as EncoderEvent).path, null);
  await learner.release();
});

Deno.test("learnStage: views of the wrong shape are a one-line error naming the learner", async () => {
  const learner = await simclr(OPTIONS);
  await assert.rejects(
    lastValueFrom(from(viewBatches(1, B)).pipe(learnStage(learner, { lr: () => 0.01 }))),
    (e) =>
      e instanceof SiaError && !e.message.includes("\n") &&
      /^simclr: a batch of views has shape \[4,28,28,1\], the learner takes \[8,28,28,1\]/.test(
        e.message,
      ),
  );
  await learner.release();
});

Deno.test("learnStage: a diverging loss stops the stream with a one-line error", async () => {
  const learner = await simclr(OPTIONS);
  const [bad] = viewBatches(1);
  bad.images.fill(NaN);
  await assert.rejects(
    lastValueFrom(from([bad]).pipe(learnStage(learner, { lr: () => 0.01 }))),
    (e) => e instanceof SiaError && /^simclr: the loss diverged at step 1 \(NaN\)$/.test(e.message),
  );
  await learner.release();
});

Deno.test("stepScalars: Adam's bias corrections per step; an Adam learner trains", async () => {
  const adam = { kind: "adam", beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 } as const;
  const c = stepScalars(adam, 0.5, 1);
  assert.equal(c.lr, 0.5);
  assert.ok(Math.abs(c.adam_c1 - 10) < 1e-9 && Math.abs(c.adam_c2 - 1000) < 1e-6);
  assert.deepEqual(stepScalars(OPTIONS.optimizer, 0.5, 7), { lr: 0.5 });
  const learner = await simclr({ ...OPTIONS, optimizer: adam });
  const events = await lastValueFrom(
    from(viewBatches(3)).pipe(learnStage(learner, { lr: () => 1e-3 }), toArray()),
  );
  const losses = events.filter((e): e is StepEvent => e.kind === "step").map((e) => e.loss);
  assert.equal(losses.length, 3);
  assert.ok(losses.every(Number.isFinite));
  await learner.release();
});
