// What a stage is. A generator stage is a function from its options (and the real training set it
// may condition on) to an RxJS operator that turns each batch of real anchor images into one
// batch of new images. Stages map batch to batch one for one: the pipeline's backpressure counts
// batches at the end of the graph, so a stage that swallowed batches would stall its source.

import type { OperatorFunction } from "rxjs";
import type { Batch, Dataset, ProvenanceName } from "./batch.ts";
import type { Resolved, Section } from "./schema.ts";

export interface GeneratorContext {
  /** The run's seed; a generator keys every per-sample random stream on it. */
  readonly seed: number;
  /** The real training set (after subsetting): what the generator imitates or perturbs. */
  readonly train: Dataset;
  /** Adds facts to the manifest's generator section (NFE, engine, timings). */
  readonly report: (facts: Record<string, unknown>) => void;
}

/**
 * What every configurable stage has: a name, a line of help, an options schema (the keys of its
 * `params` in a config and of --set), and a factory from resolved options and a context to the
 * operator. The factory throws a SiaError for option combinations the schema can't express.
 */
export interface StageDefinition<C, S extends Section = Section> {
  readonly name: string;
  readonly summary: string;
  readonly params: S;
  create(params: Resolved<S>, context: C): OperatorFunction<Batch, Batch>;
}

export interface GeneratorStage<S extends Section = Section>
  extends StageDefinition<GeneratorContext, S> {
  /** What its images are, for the provenance of every output. */
  readonly provenance: ProvenanceName;
  /** Generators built on a denoiser expose it, so experiments can score it on held-out data. */
  denoiser?(params: Resolved<S>, context: GeneratorContext): DenoiserProbe;
}

/** A generator's estimate m~(t, x) of E[x1 | x_t = x], where x_t = beta(t) x1 + sigma(t) z. */
export interface DenoiserProbe {
  /** beta(t) and sigma(t)^2 of the generator's own interpolant. */
  coefficients(t: number): { beta: number; sigma2: number };
  /** m~ at time t for the n queries x ([n * d]); labels pick the class of a conditional one. */
  denoise(t: number, x: Float64Array, labels: Int32Array): Promise<Float64Array>;
}

/** A generator's operator factory, typed by its options schema. */
export type GeneratorFactory<S extends Section> = GeneratorStage<S>["create"];

/**
 * What a user's own generator module exports (loaded by pipeline/user_generator.ts from a path or
 * URL named as the generator): `params`, its options schema, and `create`, the operator factory;
 * optionally a `summary` line and a `provenance` (default "generated").
 */
export interface GeneratorModule<S extends Section = Section> {
  readonly params: S;
  readonly create: GeneratorFactory<S>;
  readonly summary?: string;
  readonly provenance?: ProvenanceName;
}

/** Typed helper so each stage file gets its params' types checked against its schema. */
export function defineGenerator<S extends Section>(stage: GeneratorStage<S>): GeneratorStage {
  return stage as unknown as GeneratorStage;
}

/** A sink passes batches through (so sinks chain) and finishes once, on completion or Ctrl-C. */
export interface Sink {
  readonly name: string;
  readonly operator: OperatorFunction<Batch, Batch>;
  /** Flushes what is buffered and returns what goes into the manifest. Called exactly once. */
  finish(interrupted: boolean): Promise<Record<string, unknown>>;
}

export interface AugmentContext {
  /** The run's seed; every view's random stream is keyed on it. */
  readonly seed: number;
}

/** An augmentation stage: one batch in, one batch of views out (layout documented per stage). */
export type AugmentStage<S extends Section = Section> = StageDefinition<AugmentContext, S>;

/** Typed helper, as defineGenerator. */
export function defineAugment<S extends Section>(stage: AugmentStage<S>): AugmentStage {
  return stage as unknown as AugmentStage;
}
