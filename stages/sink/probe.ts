// The probe sink: after the learner stage, every encoder snapshot is scored on real data by the
// probes of the field, on frozen, detached features (probe/features.ts): the standard linear probe,
// multinomial logistic regression (probe/logistic.ts), the closed-form ridge probe
// (probe/linear.ts) and the weighted kNN monitor (probe/knn.ts, cosine, k 200, T 0.1), all fitted
// on the real training split and scored on the real test split. Learner events pass through, so
// sinks chain (a metrics log after it sees every step), and a "probe" event follows each encoder
// event.

import { concatMap, from } from "rxjs";
import type { OperatorFunction } from "rxjs";
import type { Dataset } from "../../core/batch.ts";
import type { Block } from "../learn/blocks/model.ts";
import type { LearnEvent } from "../learn/stage.ts";
import { extractFeatures } from "./probe/features.ts";
import { classCount, knnAccuracy } from "./probe/knn.ts";
import { linearProbeAccuracy } from "./probe/linear.ts";
import { logisticProbeAccuracy } from "./probe/logistic.ts";

export interface ProbeSinkOptions {
  readonly encoder: readonly Block[];
  /** One image, [H, W, C]. */
  readonly input: readonly [number, number, number];
  /** Real, labelled images the probes fit. */
  readonly train: Dataset;
  /** Real, labelled images the probes score. */
  readonly test: Dataset;
  readonly k?: number;
  readonly temperature?: number;
}

export interface ProbeScores {
  /** Accuracies on [0, 1]: logistic regression (the standard linear probe), ridge, kNN. */
  readonly logistic: number;
  readonly linear: number;
  readonly knn: number;
  readonly trainImages: number;
  readonly testImages: number;
}

export interface ProbeEvent extends ProbeScores {
  readonly kind: "probe";
  readonly learner: string;
  readonly step: number;
}

/** Both probes on an encoder's tensors (only read: the features come from a snapshot copy). */
export async function probeEncoder(
  params: ReadonlyMap<string, Float32Array>,
  options: ProbeSinkOptions,
): Promise<ProbeScores> {
  const { encoder, input, train, test } = options;
  const a = await extractFeatures(encoder, input, params, train);
  const b = await extractFeatures(encoder, input, params, test);
  const width = a.length / train.shape[0];
  const classes = classCount(train.labels, test.labels);
  const knn = await knnAccuracy(a, train.labels, b, test.labels, width, {
    k: options.k ?? 200,
    temperature: options.temperature ?? 0.1,
    classes,
  });
  const linear = linearProbeAccuracy(a, train.labels, b, test.labels, width, { classes, seed: 0 });
  const logistic = logisticProbeAccuracy(a, train.labels, b, test.labels, width, {
    classes,
    seed: 0,
  });
  return {
    logistic: logistic.accuracy,
    linear: linear.accuracy,
    knn: knn.accuracy,
    trainImages: train.shape[0],
    testImages: test.shape[0],
  };
}

export function probeSink(
  options: ProbeSinkOptions,
): OperatorFunction<LearnEvent, LearnEvent | ProbeEvent> {
  return (source) =>
    source.pipe(
      concatMap(async (event): Promise<(LearnEvent | ProbeEvent)[]> => {
        if (event.kind !== "encoder") return [event];
        const scores = await probeEncoder(event.params, options);
        return [event, { kind: "probe", learner: event.learner, step: event.step, ...scores }];
      }),
      concatMap((events) => from(events)),
    );
}
