// The learner stage: batches of views in (the augment stage's layout, view 1 of image i at row i
// and view 2 at row B + i), one compiled training step per batch, events out. Every batch gives a
// "step" event (learning rate, loss, collapse indicators); every `every` steps, and once when the
// input completes, an "encoder" event carries a frozen copy of the encoder's tensors for the probe
// sink, after writing the whole training state (encoder, head, optimizer state, step count) to a
// checkpoint file when a directory is given, so a consumer of the file resumes or probes it.
// One batch is in a step at a time (concatMap): a slow step slows the source through the
// pipeline's credits instead of queueing views.

import { concat, concatMap, defer, from } from "rxjs";
import type { Observable, OperatorFunction } from "rxjs";
import type { Batch } from "../../core/batch.ts";
import { SiaError } from "../../core/errors.ts";
import type { Learner } from "./learner.ts";

export interface StepEvent {
  readonly kind: "step";
  readonly learner: string;
  /** Steps taken after this one (1-based). */
  readonly step: number;
  readonly lr: number;
  readonly loss: number;
  readonly featureStd: number;
  readonly codeEntropy?: number;
}

export interface EncoderEvent {
  readonly kind: "encoder";
  readonly learner: string;
  readonly step: number;
  /** A copy of the encoder's parameters and running statistics; training never writes it. */
  readonly params: Map<string, Float32Array>;
  /** The checkpoint written for this snapshot, or null without a directory. */
  readonly path: string | null;
}

export type LearnEvent = StepEvent | EncoderEvent;

export interface LearnStageOptions {
  /** Learning rate of 0-based step s (a schedule; cosineWithWarmup in graph/schedules.ts). */
  readonly lr: (step: number) => number;
  /** Encoder snapshot cadence in steps; 0: only when the input completes. */
  readonly every?: number;
  /** Where checkpoints go: `<dir>/<learner>.ckpt`, replaced atomically at every snapshot. */
  readonly dir?: string;
}

export function learnStage(
  learner: Learner,
  options: LearnStageOptions,
): OperatorFunction<Batch, LearnEvent> {
  const { batch, input } = learner.options;
  const every = options.every ?? 0;
  const want = [2 * batch, ...input].join(",");
  return (source) =>
    defer(() => {
      let snapshotAt = -1;
      const snapshot = async (): Promise<EncoderEvent> => {
        const step = learner.trainer.steps;
        snapshotAt = step;
        let path: string | null = null;
        if (options.dir) {
          path = `${options.dir}/${learner.name}.ckpt`;
          await learner.trainer.save(path, { blocks: learner.options.encoder, input }, {
            learner: learner.name,
            seed: learner.options.seed,
            optimizer: learner.options.optimizer,
          });
        }
        return {
          kind: "encoder",
          learner: learner.name,
          step,
          params: learner.encoderParams(),
          path,
        };
      };
      const steps: Observable<LearnEvent> = source.pipe(
        concatMap(async (views) => {
          if (views.shape.join(",") !== want) {
            throw new SiaError(
              `${learner.name}: a batch of views has shape [${views.shape}], the learner takes [${want}] (2 x ${batch} views)`,
            );
          }
          const lr = options.lr(learner.trainer.steps);
          const report = await learner.step(views.images, lr);
          const step = learner.trainer.steps;
          if (!Number.isFinite(report.loss)) {
            throw new SiaError(
              `${learner.name}: the loss diverged at step ${step} (${report.loss})`,
            );
          }
          const events: LearnEvent[] = [{
            kind: "step",
            learner: learner.name,
            step,
            lr,
            ...report,
          }];
          if (every > 0 && step % every === 0) events.push(await snapshot());
          return events;
        }),
        concatMap((events) => from(events)),
      );
      const last = defer(async () => snapshotAt === learner.trainer.steps ? [] : [await snapshot()])
        .pipe(concatMap((events) => from(events)));
      return concat(steps, last);
    });
}
