// The stream server: training loops pull batches over HTTP, each batch one safetensors frame
// (core/frames.ts). A batch is a pure function of its key (config, job, rank, world, epoch, index):
// its samples' positions follow the share rule (shares.ts), its anchors are drawn at those
// positions (AnchorDraw) and every random draw of the generator and the augmentation is keyed by
// (seed, stream, sample position). So the server keeps no state a consumer needs: resuming is
// asking again from the next index, and any number of servers give the same bytes.
//
// Backpressure: a consumer's response body is a pull stream with room for 2 frames; the next
// frame is generated only when the connection has taken one, so a slow reader holds at most 2
// frames and the generator's time goes to the readers that read. Each job runs one generator
// pipeline that takes one batch at a time, first come first served; a disconnected consumer's
// request that has not started is dropped, and its stream generates nothing more.

import { Subject } from "rxjs";
import type { OperatorFunction } from "rxjs";
import type { Batch, Dataset } from "../../core/batch.ts";
import { encodeFrame, LAYOUTS } from "../../core/frames.ts";
import type { Layout } from "../../core/frames.ts";
import { subset } from "../../stages/load/dataset.ts";
import { loadSplits } from "../../stages/load/resolve.ts";
import { AnchorDraw } from "../../stages/load/source.ts";
import { augmentStage, generatorStage } from "../config.ts";
import { JOB_NAME } from "./config.ts";
import { checkHost, jsonResponse, listen, textResponse } from "./http.ts";
import type { ListenOptions } from "./http.ts";
import type { ServeConfig } from "./config.ts";
import { batchesPerRank, lastEpoch, positionsOf } from "./shares.ts";
import type { Share } from "./shares.ts";

/** Frames a consumer's stream holds beyond the one its connection is writing. */
export const QUEUE_FRAMES = 2;

const MAX_INT = 2 ** 31 - 1;
/** Without declared jobs, each job name gets its own pipeline, up to this many. */
const MAX_UNDECLARED_JOBS = 64;

/** A 4xx: the status and one line saying what was wrong. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** One job's generator pipeline: anchors in, batches out, one batch at a time. */
class Job {
  readonly name: string;
  readonly seed: number;
  readonly draw: AnchorDraw;
  framesServed = 0;
  bytesServed = 0;
  framesGenerated = 0;
  generateSeconds = 0;
  readonly #build: () => OperatorFunction<Batch, Batch>;
  #input: Subject<Batch> | null = null;
  #waiting: { resolve: (b: Batch) => void; reject: (e: unknown) => void } | null = null;
  #tasks: Promise<void> = Promise.resolve();

  constructor(
    name: string,
    seed: number,
    train: Dataset,
    build: () => OperatorFunction<Batch, Batch>,
  ) {
    this.name = name;
    this.seed = seed;
    this.draw = new AnchorDraw(train, seed);
    this.#build = build;
  }

  /** The pipeline, built again after a stage failed (a failed operator is finished for good). */
  #pipeline(): Subject<Batch> {
    if (this.#input) return this.#input;
    const input = new Subject<Batch>();
    input.pipe(this.#build()).subscribe({
      next: (batch) => {
        const waiting = this.#waiting;
        this.#waiting = null;
        waiting?.resolve(batch);
      },
      error: (e) => {
        this.#input = null;
        const waiting = this.#waiting;
        this.#waiting = null;
        waiting?.reject(e);
      },
    });
    return (this.#input = input);
  }

  /** The batch of these positions, after the job's earlier requests; null if `cancelled` by then. */
  generate(positions: Int32Array, cancelled: () => boolean): Promise<Batch | null> {
    const task = this.#tasks.then(async (): Promise<Batch | null> => {
      // A macrotask between batches lets the event loop answer health checks and write frames.
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (cancelled()) return null;
      const t0 = performance.now();
      const batch = await new Promise<Batch>((resolve, reject) => {
        this.#waiting = { resolve, reject };
        this.#pipeline().next(this.draw.at(positions));
      });
      this.generateSeconds += (performance.now() - t0) / 1000;
      this.framesGenerated++;
      return batch;
    });
    this.#tasks = task.then(() => {}, () => {});
    return task;
  }
}

/** What a request asks for, checked. */
interface Key {
  readonly job: Job;
  readonly rank: number;
  readonly world: number;
  readonly epoch: number;
  readonly batch: number;
  readonly layout: Layout;
  /** The share's length in batches. */
  readonly batches: number;
  readonly share: Share;
}

interface Consumer {
  readonly id: number;
  readonly key: Key;
  readonly since: string;
  /** Index of the next frame to generate. */
  next: number;
  readonly step: number;
  queued: () => number;
  readonly close: () => void;
}

export interface ServeOptions extends ListenOptions {
  readonly log: (line: string) => void;
  /** Resolves to stop the server (Ctrl-C in the CLI). */
  readonly stop: Promise<void>;
}

const STREAM_PARAMS = ["job", "rank", "world", "epoch", "from", "batch", "layout", "step"];
const BATCH_PARAMS = ["job", "rank", "world", "epoch", "index", "batch", "layout"];

/** Serves until `options.stop` resolves; returns when the server has closed. */
export async function serve(config: ServeConfig, options: ServeOptions): Promise<void> {
  const { pipeline } = config;
  checkHost(options);
  const generator = generatorStage(pipeline.generate.generator);
  const augmenter = pipeline.augment.stage ? augmentStage(pipeline.augment.stage) : null;
  const splits = await loadSplits(pipeline.data.source, pipeline.data);
  const started = performance.now();
  const jobs = new Map<string, Job>();
  const trains = new Map<number, Dataset>();
  const jobFor = (name: string, seed: number): Job => {
    let job = jobs.get(name);
    if (!job) {
      let train = trains.get(seed);
      if (!train) {
        train = subset(splits.train, pipeline.data.size, pipeline.data.balanced, seed);
        trains.set(seed, train);
      }
      const data = train;
      job = new Job(name, seed, data, () => {
        const generate = generator.create(pipeline.generate.params, {
          seed,
          train: data,
          report: () => {},
        });
        if (!augmenter) return generate;
        const augment = augmenter.create(pipeline.augment.params, { seed });
        return (source) => source.pipe(generate, augment);
      });
      jobs.set(name, job);
    }
    return job;
  };
  // Declared jobs exist from the start (their stages' options are checked now, not on first use).
  for (const [name, seed] of config.jobs ?? []) jobFor(name, seed);
  if (!config.jobs) jobFor("default", pipeline.seed);
  // A probe batch through each job: a stage that rejects its options fails here, not mid-stream.
  for (const job of jobs.values()) {
    await job.generate(Int32Array.of(0), () => false);
    job.framesGenerated = 0;
    job.generateSeconds = 0;
  }

  const consumers = new Map<number, Consumer>();
  let nextConsumer = 1;
  const views = augmenter ? Number(pipeline.augment.params.views ?? 1) : 1;

  function int(params: URLSearchParams, name: string, fallback: number, min = 0): number {
    const text = params.get(name);
    if (text === null) return fallback;
    if (!/^\d{1,10}$/.test(text) || Number(text) > MAX_INT || Number(text) < min) {
      throw new HttpError(
        400,
        `${name}: expected an integer ${min ? `>= ${min}` : ">= 0"}, got ${JSON.stringify(text)}`,
      );
    }
    return Number(text);
  }

  function parseKey(url: URL, allowed: readonly string[]): Key {
    const params = url.searchParams;
    for (const name of new Set(params.keys())) {
      if (!allowed.includes(name)) {
        throw new HttpError(400, `${name}: unknown parameter (valid: ${allowed.join(", ")})`);
      }
      if (params.getAll(name).length > 1) throw new HttpError(400, `${name}: given twice`);
    }
    const name = params.get("job") ?? (config.jobs ? null : "default");
    if (name === null) {
      throw new HttpError(400, `job: missing (declared: ${[...config.jobs!.keys()].join(", ")})`);
    }
    let job: Job;
    if (config.jobs) {
      const seed = config.jobs.get(name);
      if (seed === undefined) {
        throw new HttpError(
          404,
          `job: unknown job ${JSON.stringify(name)} (declared: ${
            [...config.jobs.keys()].join(", ")
          })`,
        );
      }
      job = jobFor(name, seed);
    } else {
      if (!JOB_NAME.test(name)) {
        throw new HttpError(400, `job: a job name is 1 to 64 of A-Z a-z 0-9 _ . -`);
      }
      if (!jobs.has(name) && jobs.size >= MAX_UNDECLARED_JOBS) {
        throw new HttpError(
          429,
          `job: ${MAX_UNDECLARED_JOBS} jobs already (declare the jobs in serve.jobs)`,
        );
      }
      // Undeclared jobs all take the config's seed: they differ in name, metrics and status only.
      job = jobFor(name, pipeline.seed);
    }
    const world = int(params, "world", 1, 1);
    const rank = int(params, "rank", 0);
    if (rank >= world) throw new HttpError(400, `rank: ${rank} is not below world=${world}`);
    const epoch = int(params, "epoch", 0);
    if (epoch > lastEpoch(pipeline.generate.count)) {
      throw new HttpError(
        400,
        `epoch: ${epoch} is past the last epoch whose sample ids fit int32 (${
          lastEpoch(pipeline.generate.count)
        })`,
      );
    }
    const batch = int(params, "batch", pipeline.generate.batchSize, 1);
    if (batch > config.serve.maxBatch) {
      throw new HttpError(
        400,
        `batch: ${batch} is above the limit serve.maxBatch=${config.serve.maxBatch}`,
      );
    }
    const layout = (params.get("layout") ?? "nhwc") as Layout;
    if (!LAYOUTS.includes(layout)) {
      throw new HttpError(400, `layout: expected nhwc or nchw, got ${JSON.stringify(layout)}`);
    }
    const share: Share = { count: pipeline.generate.count, batch, world, last: config.serve.last };
    return { job, rank, world, epoch, batch, layout, share, batches: batchesPerRank(share) };
  }

  /** The query that continues a share at `next`: a frame's resume token. */
  function token(key: Key, next: number): string {
    const q = new URLSearchParams({
      job: key.job.name,
      rank: String(key.rank),
      world: String(key.world),
      epoch: String(key.epoch),
      from: String(next),
      batch: String(key.batch),
      layout: key.layout,
    });
    return q.toString();
  }

  async function frame(
    key: Key,
    index: number,
    cancelled: () => boolean,
  ): Promise<Uint8Array<ArrayBuffer> | null> {
    const positions = positionsOf(key.share, key.epoch, key.rank, index);
    const batch = await key.job.generate(positions, cancelled);
    if (!batch) return null;
    return encodeFrame(batch, {
      format: "sia-frame/1",
      job: key.job.name,
      rank: String(key.rank),
      world: String(key.world),
      epoch: String(key.epoch),
      index: String(index),
      batches: String(key.batches),
      batch: String(key.batch),
      views: String(views),
      count: String(pipeline.generate.count),
      last: config.serve.last,
      seed: String(key.job.seed),
      generator: generator.name,
      augment: augmenter?.name ?? "",
      layout: key.layout,
      resume: token(key, index + 1),
    }, key.layout);
  }

  function stream(url: URL): Response {
    const key = parseKey(url, STREAM_PARAMS);
    // From the end of the share or past it, the body is empty: a DataLoader worker that starts
    // at from + worker id may begin after the last batch.
    const from = int(url.searchParams, "from", 0);
    const step = int(url.searchParams, "step", 1, 1);
    let closed = false;
    const id = nextConsumer++;
    let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
    const consumer: Consumer = {
      id,
      key,
      step,
      since: new Date().toISOString(),
      next: from,
      queued: () => controller ? QUEUE_FRAMES - (controller.desiredSize ?? 0) : 0,
      close: () => {
        if (closed) return;
        closed = true;
        consumers.delete(id);
        try {
          controller?.close();
        } catch {
          // Already closed or errored.
        }
      },
    };
    const release = () => {
      closed = true;
      consumers.delete(id);
    };
    consumers.set(id, consumer);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      async pull(c) {
        if (closed) return;
        if (consumer.next >= key.batches) {
          consumer.close();
          return;
        }
        try {
          const bytes = await frame(key, consumer.next, () => closed);
          if (!bytes || closed) return;
          consumer.next += step;
          key.job.framesServed++;
          key.job.bytesServed += bytes.length;
          c.enqueue(bytes);
          if (consumer.next >= key.batches) consumer.close();
        } catch (e) {
          options.log(`[sia] serve: job ${key.job.name}: ${e instanceof Error ? e.message : e}`);
          release();
          c.error(e);
        }
      },
      // The connection cancels the body when the consumer goes away: nothing more is generated.
      cancel: release,
    }, { highWaterMark: QUEUE_FRAMES, size: () => 1 });
    return new Response(body, {
      headers: {
        "content-type": "application/vnd.sia.frames",
        "x-sia-batches": String(key.batches),
      },
    });
  }

  async function oneBatch(url: URL): Promise<Response> {
    const key = parseKey(url, BATCH_PARAMS);
    if (url.searchParams.get("index") === null) throw new HttpError(400, "index: missing");
    const index = int(url.searchParams, "index", 0);
    if (index >= key.batches) {
      throw new HttpError(404, `index: ${index} is past the share's ${key.batches} batches`);
    }
    const bytes = (await frame(key, index, () => false))!;
    key.job.framesServed++;
    key.job.bytesServed += bytes.length;
    return new Response(bytes, {
      headers: {
        "content-type": "application/vnd.sia.frame",
        "x-sia-batches": String(key.batches),
      },
    });
  }

  function metrics(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, rows: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of rows) lines.push(`${name}${labels} ${value}`);
    };
    const perJob = (f: (j: Job) => number): [string, number][] =>
      [...jobs.values()].map((j) => [`{job="${j.name}"}`, f(j)]);
    metric(
      "sia_frames_served_total",
      "counter",
      "Frames handed to consumers.",
      perJob((j) => j.framesServed),
    );
    metric(
      "sia_bytes_served_total",
      "counter",
      "Frame bytes handed to consumers.",
      perJob((j) => j.bytesServed),
    );
    metric(
      "sia_frames_generated_total",
      "counter",
      "Batches generated.",
      perJob((j) => j.framesGenerated),
    );
    metric(
      "sia_generate_seconds_total",
      "counter",
      "Seconds spent generating batches.",
      perJob((j) => j.generateSeconds),
    );
    metric(
      "sia_generation_rate_frames_per_second",
      "gauge",
      "Batches generated per second of generation time.",
      perJob((j) => j.generateSeconds > 0 ? j.framesGenerated / j.generateSeconds : 0),
    );
    const active = new Map<string, number>([...jobs.keys()].map((name) => [name, 0]));
    for (const c of consumers.values()) {
      active.set(c.key.job.name, (active.get(c.key.job.name) ?? 0) + 1);
    }
    metric(
      "sia_consumers_active",
      "gauge",
      "Open streams.",
      [...active].map(([name, n]) => [`{job="${name}"}`, n]),
    );
    metric(
      "sia_queue_frames",
      "gauge",
      `Frames waiting in a consumer's queue (at most ${QUEUE_FRAMES}).`,
      [...consumers.values()].map((c) => [
        `{consumer="${c.id}",job="${c.key.job.name}",rank="${c.key.rank}"}`,
        c.queued(),
      ]),
    );
    metric("sia_uptime_seconds", "gauge", "Seconds since the server started.", [[
      "",
      (performance.now() - started) / 1000,
    ]]);
    return lines.join("\n") + "\n";
  }

  function status(): unknown {
    const { out: _out, ...rest } = pipeline;
    return {
      config: rest,
      serve: { ...config.serve, queueFrames: QUEUE_FRAMES, jobsDeclared: config.jobs !== null },
      jobs: [...jobs.values()].map((j) => ({
        name: j.name,
        seed: j.seed,
        framesServed: j.framesServed,
        bytesServed: j.bytesServed,
        framesGenerated: j.framesGenerated,
      })),
      consumers: [...consumers.values()].map((c) => ({
        id: c.id,
        job: c.key.job.name,
        rank: c.key.rank,
        world: c.key.world,
        epoch: c.key.epoch,
        batch: c.key.batch,
        step: c.step,
        next: c.next,
        batches: c.key.batches,
        queued: c.queued(),
        since: c.since,
      })),
    };
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const routes: Record<string, () => Response | Promise<Response>> = {
      "/v1/stream": () => stream(url),
      "/v1/batch": () => oneBatch(url),
      "/v1/health": () =>
        jsonResponse({
          ok: true,
          uptimeSeconds: (performance.now() - started) / 1000,
          consumers: consumers.size,
        }),
      "/v1/status": () => jsonResponse(status()),
      "/metrics": () =>
        new Response(metrics(), { headers: { "content-type": "text/plain; version=0.0.4" } }),
    };
    const route = routes[url.pathname];
    if (!route) {
      return textResponse(
        404,
        `${url.pathname}: no such endpoint (have: ${Object.keys(routes).join(", ")})`,
      );
    }
    if (request.method !== "GET") {
      return textResponse(405, `${request.method} ${url.pathname}: only GET`, { allow: "GET" });
    }
    try {
      return await route();
    } catch (e) {
      if (e instanceof HttpError) return textResponse(e.status, e.message);
      options.log(`[sia] serve: ${url.pathname}: ${e instanceof Error ? e.message : e}`);
      return textResponse(500, `internal error: ${e instanceof Error ? e.message : e}`);
    }
  }

  const server = listen(options, handle);
  await options.stop;
  // Open streams would keep shutdown waiting: end them first.
  for (const c of [...consumers.values()]) c.close();
  await server.shutdown();
}
