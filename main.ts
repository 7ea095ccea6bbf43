// sia's command line: parse flags, build the config, call the pipeline. Nothing else lives here.

import { parseArgs } from "node:util";
import {
  applySet,
  describeConfig,
  GENERATE_SECTION,
  readConfigFile,
  resolveConfig,
  TOP_SECTION,
} from "./pipeline/config.ts";
import { keyError, SiaError } from "./core/errors.ts";
import { GENERATORS } from "./pipeline/registry.ts";
import { runPipeline } from "./pipeline/run.ts";
import {
  isModuleSpec,
  loadGeneratorModule,
  loadGeneratorModules,
} from "./pipeline/user_generator.ts";
import { EXPERIMENTS } from "./pipeline/experiments/registry.ts";
import type { Experiment } from "./pipeline/experiments/experiment.ts";
import { runExperiment } from "./pipeline/experiments/run.ts";
import { applyExperimentSet } from "./pipeline/experiments/shared.ts";
import type { PipelineConfig } from "./pipeline/config.ts";
import { describeSection, parseValue, suggestion } from "./core/schema.ts";
import { FLOW_SECTION, resolveFlowConfig, trainFlow } from "./pipeline/train_flow.ts";
import { readTokenFile, resolveServeConfig, SERVE_SECTION } from "./pipeline/serve/config.ts";
import { serve } from "./pipeline/serve/stream.ts";
import { listenForStop } from "./pipeline/signals.ts";
import { startView } from "./pipeline/view/server.ts";
import { runQueued } from "./pipeline/queue/coordinator.ts";
import { defaultWorkerName, runWorker } from "./pipeline/queue/worker.ts";
import { QUEUE_SECTION } from "./pipeline/queue/protocol.ts";

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"] & object;

const COMMON: Options = {
  set: { type: "string", multiple: true },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

/** Where a server listens (serve, view, pipeline --view). */
const LISTEN: Options = {
  port: { type: "string" },
  host: { type: "string" },
  "token-file": { type: "string" },
};

const COMMANDS = {
  pipeline: {
    options: {
      ...COMMON,
      config: { type: "string" },
      generator: { type: "string" },
      out: { type: "string" },
      ...LISTEN,
      view: { type: "boolean" },
      redis: { type: "string" },
    } as Options,
    usage:
      `Usage: deno task run pipeline --config FILE [--generator NAME] [--out DIR] [--redis URL] [--set key=value ...] [--view [--port P] [--host H] [--token-file F]]

Runs the whole graph a config file describes: load -> generate -> .npy shards + summary.

  --config FILE       JSON config (see configs/ and the README's "Config" section)
  --generator NAME    overrides generate.generator (${Object.keys(GENERATORS).join(", ")}),
                      or a generator module: ./my_generator.ts, file: or https: URL
  --out DIR           overrides out.dir
  --redis URL         an experiment config only: enqueue its cells on Redis for workers
                      (deno task run worker) instead of running them here; writes the same tables
                      when the last result arrives. redis://[:PASSWORD@]HOST[:PORT] or rediss://
  --set key=value     overrides any config key by its dotted path, e.g. --set data.size=1000,
                      --set generate.params.r=0.5 (repeatable; applied after --generator)
  --view              serve the results page of the output directory while the run goes (as
                      "view" does; --port default 8471, --host, --token-file as there); it stays
                      up after the run until Ctrl-C
  --debug             stack traces on errors
  -h, --help          this help

Config keys (dotted path, meaning, type, default):
${describeConfig().join("\n")}

A config with "experiment": NAME runs that experiment instead (configs/table3.quick.json,
configs/tables12.quick.json); --set then takes the experiment's keys, typed by their schema:
${
        Object.values(EXPERIMENTS).map((e) =>
          `  "${e.name}": ${e.summary}\n${e.describe().join("\n")}`
        )
          .join("\n")
      }
With --redis, an experiment config's optional "queue" section (README, "Many machines"):
${describeSection(QUEUE_SECTION, "queue.").join("\n")}`,
  },
  worker: {
    options: {
      ...COMMON,
      redis: { type: "string" },
      name: { type: "string" },
      queue: { type: "string" },
    } as Options,
    usage: `Usage: deno task run worker --redis URL [--name N] [--queue Q]

Joins a Redis queue that "deno task run pipeline --config FILE --redis URL" fills and runs its
experiment cells one at a time, with the same code as a local run; any number of workers on any
number of machines may join. A worker refuses a queue whose run has another sia version or config
hash. Ctrl-C or SIGTERM hands the cell in flight back to the queue and exits 130.

  --redis URL         redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://... (TLS); the password is
                      never printed
  --name N            this worker's name in the consumer group (default HOST-PID-random)
  --queue Q           the queue's name, the config's queue.name (default sia)
  --debug             stack traces on errors
  -h, --help          this help`,
  },
  generate: {
    options: {
      ...COMMON,
      data: { type: "string" },
      generator: { type: "string" },
      count: { type: "string" },
      seed: { type: "string" },
      out: { type: "string" },
    } as Options,
    usage:
      `Usage: deno task run generate --data NAME_OR_PATH --generator NAME --count N --seed S --out DIR [--set key=value ...]

Runs loader + generator only and writes DIR/images-00000.npy (float32 [n, H, W, C]),
DIR/labels-00000.npy (int32 [n], -1 where unlabeled), more shards as needed, and DIR/manifest.json.
A rerun into the same DIR replaces the shards, manifest and summary a previous run left there.

  --data NAME_OR_PATH mnist (embedded, the default), fashion-mnist (Debian dataset-fashion-mnist),
                      or a path: IDX images (.gz or raw; labels found beside them), CIFAR-10 .bin
                      or a directory of data_batch_*.bin, or .npy (uint8 or float32 [N,H,W(,C)];
                      labels from X.labels.npy or labels-*.npy beside images-*.npy)
  --generator NAME    ${Object.keys(GENERATORS).join(", ")} (default noise), or a generator
                      module: ./my_generator.ts (relative to the working directory), file:, https:
  --count N           images to generate (default 1000)
  --seed S            seed (default 0); the same seed gives the same bytes
  --out DIR           output directory (required)
  --set key=value     a generator option (below), or any config key by dotted path
                      (data.size=1000, data.testFraction=0.1, out.shardSize=5000, ...); repeatable
  --debug             stack traces on errors
  -h, --help          this help

Generator options (--set key=value):
${
        Object.values(GENERATORS).map((g) =>
          `  ${g.name}: ${g.summary}\n${describeSection(g.params, "  ").join("\n")}`
        ).join("\n")
      }`,
  },
  "train-flow": {
    options: {
      ...COMMON,
      data: { type: "string" },
      out: { type: "string" },
      resume: { type: "boolean" },
    } as Options,
    usage:
      `Usage: deno task run train-flow --data NAME_OR_PATH --out DIR [--resume] [--set key=value ...]

Trains a velocity U-Net on the training images by the stochastic-interpolant regression (Adam, on
sia's compiled ONNX training graphs), then exports DIR/flow.onnx and its contract DIR/flow.json
(the onnx-flow generator loads them). Writes DIR/flow.ckpt every "every" steps (atomically),
DIR/log.csv and DIR/delta.svg/.png (train loss, held-out loss and the estimation error delta(t)
against the exact closed-form b*, per time bin), and DIR/train.json. Ctrl-C keeps the last
checkpoint and exits 130; --resume continues from DIR/flow.ckpt bit for bit.

  --data NAME_OR_PATH as for generate (default mnist); images need sides divisible by 4
  --out DIR           output directory (required)
  --resume            continue from DIR/flow.ckpt (same options; steps may grow)
  --set key=value     a flow option below, or data.size=N (default 1024), data.* as in configs
  --debug             stack traces on errors
  -h, --help          this help

Flow options (--set key=value):
${describeSection(FLOW_SECTION, "  ").join("\n")}`,
  },
  serve: {
    options: {
      ...COMMON,
      config: { type: "string" },
      ...LISTEN,
    } as Options,
    usage:
      `Usage: deno task run serve --config FILE [--port P] [--host H] [--token-file F] [--set key=value ...]

Streams generated (and augmented) batches to training jobs over HTTP, one safetensors frame per
batch; a batch is a pure function of (config, job, rank, world, epoch, index). See the README's
"Streaming to training jobs" section for the endpoints, the share rule and the frame format.

  --config FILE       a pipeline config (data, generate, augment) with an optional "serve" section
  --port P            TCP port (default 8470; 0 picks a free one, printed on stderr)
  --host H            address to bind (default 127.0.0.1); any non-loopback host needs --token-file
  --token-file F      a file holding a bearer token; every request must then send
                      "Authorization: Bearer TOKEN" or gets 401
  --set key=value     overrides a pipeline config key by its dotted path (repeatable)
  --debug             stack traces on errors
  -h, --help          this help

The "serve" section (key, meaning, type, default):
${describeSection(SERVE_SECTION, "serve.").join("\n")}
  serve.jobs          {"name": {"seed": S}, ...}: the jobs served and their seeds (default: any job
                      name, all on the config's seed)`,
  },
  view: {
    options: { debug: COMMON.debug, help: COMMON.help, ...LISTEN } as Options,
    usage: `Usage: deno task run view DIR [--port P] [--host H] [--token-file F]

Serves a live page of a results directory (an experiment's or a pipeline run's out.dir): the
grid of cells (pending, running with step and loss, done with scores), the table with paired
intervals (CSV download), the chart, each cell's training curves, a sample grid per shard
directory with each sample's nearest training image and NN1/NN2 ratio, and the memorization
summary, at /grid, /table, /chart, /curves, /samples, /memorization. It updates as files change.

  DIR                 the results directory (it may not exist yet: the page fills in once it does)
  --port P            TCP port (default 8471; 0 picks a free one, printed on stderr)
  --host H            address to bind (default 127.0.0.1); any non-loopback host needs --token-file
  --token-file F      a file holding a token; requests need "Authorization: Bearer TOKEN" or the
                      cookie a browser gets by opening any page with ?token=TOKEN once
  --debug             stack traces on errors
  -h, --help          this help`,
  },
} as const;

type CommandName = keyof typeof COMMANDS;

const MAIN_USAGE = `sia: stochastic-interpolant augmentation

Usage:
  deno task run pipeline --config configs/quick.json [--generator NAME] [--set key=value ...]
  deno task run generate --data mnist --generator noise --count N --seed S --out DIR [--set key=value ...]
  deno task run serve --config FILE [--port P] [--host H] [--token-file F]
  deno task run view DIR [--port P] [--host H] [--token-file F]
  deno task run worker --redis URL [--name N]
  deno task run help COMMAND

Commands:
  pipeline   run the whole graph from a config file
  generate   loader + generator only: .npy shards and a manifest
  train-flow train a velocity U-Net and export it as flow.onnx + flow.json
  serve      stream batches to training jobs over HTTP (safetensors frames)
  view       a live results page for a results directory (browser)
  worker     run experiment cells from a Redis queue (pipeline --redis fills it)
  help       help for a command (or pass --help to it)

Exit status: 0 done, 1 bad input, 2 bad flags or config keys, 130 stopped by Ctrl-C.`;

function parse(command: CommandName, args: string[]) {
  const { options } = COMMANDS[command];
  // "--count -3" would read as a flag named 3; join a negative number to its flag so the value
  // reaches validation and gets the same one-line error as "--count=-3".
  args = args.flatMap((
    arg,
    i,
  ) => (/^-\d/.test(arg) && /^--[a-z-]+$/.test(args[i - 1] ?? "") ? [] : [
    /^--[a-z-]+$/.test(arg) && /^-\d/.test(args[i + 1] ?? "") ? `${arg}=${args[i + 1]}` : arg,
  ]));
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | string[] | boolean | undefined
    >;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(message)?.[1];
    if (unknown) {
      const names = Object.keys(options).map((o) => `--${o}`);
      throw keyError(unknown, `unknown flag for "${command}"${suggestion(unknown, names)}`);
    }
    const positional = /Unexpected argument '([^']+)'/.exec(message)?.[1];
    if (positional) {
      throw keyError(
        positional,
        `unexpected argument for "${command}" (flags take the form --name value)`,
      );
    }
    throw new SiaError(`${command}: ${message.split(". ")[0]}`, 2);
  }
}

function asList(value: string | string[] | boolean | undefined): string[] {
  return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
}

type Resolved =
  | { experiment: Experiment; config: unknown; raw: Record<string, unknown> }
  | { pipeline: PipelineConfig };

async function pipelineConfig(flags: Record<string, unknown>): Promise<Resolved> {
  if (typeof flags.config !== "string") {
    throw keyError("--config", "missing (pass --config configs/quick.json)");
  }
  const raw = await readConfigFile(flags.config);
  if (typeof flags.out === "string") ((raw.out ??= {}) as Record<string, unknown>).dir = flags.out;
  try {
    // Generator modules load before anything resolves: --generator's path against the working
    // directory, the config's against the config file's.
    if (typeof flags.generator === "string" && isModuleSpec(flags.generator)) {
      await loadGeneratorModule(flags.generator, Deno.cwd());
    }
    await loadGeneratorModules(raw, flags.config);
    if (raw.experiment !== undefined) {
      const experiment = EXPERIMENTS[String(raw.experiment)];
      if (!experiment) {
        throw keyError(
          "experiment",
          `unknown experiment ${JSON.stringify(raw.experiment)}${
            suggestion(String(raw.experiment), Object.keys(EXPERIMENTS))
          }`,
        );
      }
      for (const assignment of asList(flags.set as string[])) {
        applyExperimentSet(raw, assignment, experiment.fields(raw));
      }
      return { experiment, config: experiment.resolve(raw), raw };
    }
    const generate = (raw.generate ??= {}) as Record<string, unknown>;
    if (typeof flags.generator === "string") {
      // Another generator's params would not fit the new one's schema.
      if (generate.generator !== flags.generator) delete generate.params;
      generate.generator = flags.generator;
    }
    for (const assignment of asList(flags.set as string[])) applySet(raw, assignment);
    return { pipeline: resolveConfig(raw) };
  } catch (e) {
    // Keys set by flags were checked as they were applied: what fails here is in the file.
    if (e instanceof SiaError && !e.message.startsWith("--")) {
      throw new SiaError(`${flags.config}: ${e.message}`, e.exitCode);
    }
    throw e;
  }
}

async function generateConfig(flags: Record<string, unknown>) {
  const value = (flag: string) =>
    typeof flags[flag] === "string" ? flags[flag] as string : undefined;
  if (!value("out")) throw keyError("--out", "missing (pass --out DIR)");
  const count = value("count");
  const seed = value("seed");
  const raw: Record<string, unknown> = {
    seed: seed === undefined ? 0 : parseValue("--seed", TOP_SECTION.seed, seed),
    data: { source: value("data") ?? "mnist" },
    generate: {
      generator: value("generator") ?? "noise",
      count: count === undefined ? 1000 : parseValue("--count", GENERATE_SECTION.count, count),
    },
    out: { dir: value("out"), summary: false },
  };
  await loadGeneratorModules(raw, null);
  for (const assignment of asList(flags.set as string[])) {
    // A bare key is a generator option; a dotted one is a config path.
    const key = assignment.slice(0, Math.max(0, assignment.indexOf("=")));
    applySet(
      raw,
      key.includes(".") || key === "seed" ? assignment : `generate.params.${assignment}`,
    );
  }
  return resolveConfig(raw);
}

/** --port, --host, --token-file: loopback unless told otherwise. */
async function listenOptions(flags: Record<string, unknown>, defaultPort: number) {
  const port = typeof flags.port === "string"
    ? parseValue("--port", { type: "int", min: 0, max: 65535, default: 0, doc: "" }, flags.port)
    : defaultPort;
  return {
    hostname: typeof flags.host === "string" ? flags.host : "127.0.0.1",
    port: port as number,
    token: typeof flags["token-file"] === "string"
      ? await readTokenFile(flags["token-file"])
      : null,
  };
}

async function viewCommand(dir: string | undefined, flags: Record<string, unknown>) {
  if (dir === undefined) throw keyError("DIR", "missing (pass a results directory: view DIR)");
  const signal = listenForStop();
  try {
    const view = await startView(dir, {
      ...await listenOptions(flags, 8471),
      log: (line) => console.error(line),
      stop: signal.stop,
    });
    console.error(`[sia] view of ${dir} on ${view.url}/ (Ctrl-C stops)`);
    await view.closed;
  } finally {
    signal.dispose();
  }
  return signal.stopped() ? 130 : 0;
}

async function serveCommand(flags: Record<string, unknown>): Promise<number> {
  if (typeof flags.config !== "string") throw keyError("--config", "missing (pass --config FILE)");
  const raw = await readConfigFile(flags.config);
  for (const assignment of asList(flags.set as string[])) applySet(raw, assignment);
  let config;
  try {
    config = resolveServeConfig(raw);
  } catch (e) {
    if (e instanceof SiaError) throw new SiaError(`${flags.config}: ${e.message}`, e.exitCode);
    throw e;
  }
  const signal = listenForStop();
  await serve(config, {
    ...await listenOptions(flags, 8470),
    log: (line) => console.error(line),
    stop: signal.stop,
    onListen: (url) =>
      console.error(
        `[sia] serving on ${url}/ (GET /v1/stream, /v1/batch, /v1/health, /v1/status, /metrics)`,
      ),
  });
  signal.dispose();
  return signal.stopped() ? 130 : 0;
}

async function main(args: string[]): Promise<number> {
  const debug = args.includes("--debug");
  try {
    const [command, ...rest] = args;
    if (command === undefined || command === "help" || command === "--help" || command === "-h") {
      const topic = rest[0];
      if (topic !== undefined && !(topic in COMMANDS)) {
        throw keyError(topic, `unknown command${suggestion(topic, Object.keys(COMMANDS))}`);
      }
      console.log(topic ? COMMANDS[topic as CommandName].usage : MAIN_USAGE);
      return 0;
    }
    if (!(command in COMMANDS)) {
      throw keyError(
        command,
        `unknown command${suggestion(command, [...Object.keys(COMMANDS), "help"])}`,
      );
    }
    const name = command as CommandName;
    // view's one positional argument, the results directory.
    const dir = name === "view" && rest[0] !== undefined && !rest[0].startsWith("-")
      ? rest.shift()
      : undefined;
    const flags = parse(name, rest);
    if (flags.help) {
      console.log(COMMANDS[name].usage);
      return 0;
    }
    if (name === "view") return await viewCommand(dir, flags);
    if (
      name === "pipeline" && !flags.view &&
      ["port", "host", "token-file"].some((f) => flags[f] !== undefined)
    ) {
      throw keyError("--port", "--port, --host and --token-file go with --view");
    }
    if (name === "train-flow") return await trainFlowCommand(flags);
    if (name === "serve") return await serveCommand(flags);
    if (name === "worker") return await workerCommand(flags);
    const resolved = name === "pipeline"
      ? await pipelineConfig(flags)
      : { pipeline: await generateConfig(flags) };
    if (typeof flags.redis === "string" && !("experiment" in resolved)) {
      throw keyError("--redis", 'queues the cells of an experiment config ("experiment": NAME)');
    }
    const signal = listenForStop();
    const stop = signal.stop;
    try {
      const view = flags.view
        ? await startView(
          "experiment" in resolved
            ? resolved.experiment.outDir(resolved.config)
            : resolved.pipeline.out.dir,
          {
            ...await listenOptions(flags, 8471),
            log: (line) => console.error(line),
            stop,
            besideRun: true,
          },
        )
        : null;
      if (view) console.error(`[sia] view on ${view.url}/`);
      // The run is over: the page stays up for reading until Ctrl-C.
      const linger = async (code: number) => {
        if (!view || signal.stopped()) return code;
        console.error(`[sia] run finished; the view stays on ${view.url}/ until Ctrl-C`);
        await view.closed;
        return code;
      };
      if ("experiment" in resolved && typeof flags.redis === "string") {
        await runQueued(resolved.experiment, resolved.config, resolved.raw, {
          url: flags.redis,
          log: (line) => console.error(line),
          print: (text) => console.log(text),
          stop,
        });
        return await linger(0);
      }
      if ("experiment" in resolved) {
        await runExperiment(resolved.experiment, resolved.config, {
          log: (line) => console.error(line),
          print: (text) => console.log(text),
          // A run takes minutes to hours: a plain log line a minute is enough off a terminal.
          progress: { logEvery: 60 },
          stop,
        });
        return await linger(0);
      }
      const config = resolved.pipeline;
      const result = await runPipeline(config, {
        command: ["sia", ...args].join(" "),
        print: (text) => console.log(text),
        log: (line) => console.error(line),
        stop,
      });
      console.error(`[sia] wrote ${result.count} images to ${result.dir}/ (manifest.json)`);
      return await linger(result.interrupted ? 130 : 0);
    } finally {
      signal.dispose();
    }
  } catch (e) {
    if (e instanceof SiaError) {
      console.error(`sia: ${e.message}`);
      if (debug) console.error(e.stack);
      return e.exitCode;
    }
    console.error(`sia: internal error: ${e instanceof Error ? e.message : e}`);
    if (debug) console.error(e instanceof Error ? e.stack : e);
    else console.error("sia: rerun with --debug for the stack trace");
    return 1;
  }
}

async function workerCommand(flags: Record<string, unknown>): Promise<number> {
  if (typeof flags.redis !== "string") throw keyError("--redis", "missing (pass --redis URL)");
  const signal = listenForStop();
  try {
    return await runWorker({
      url: flags.redis,
      queue: typeof flags.queue === "string" ? flags.queue : QUEUE_SECTION.name.default,
      name: typeof flags.name === "string" ? flags.name : defaultWorkerName(),
      experiments: EXPERIMENTS,
      log: (line) => console.error(line),
      stop: signal.stop,
    });
  } finally {
    signal.dispose();
  }
}

async function trainFlowCommand(flags: Record<string, unknown>): Promise<number> {
  if (typeof flags.out !== "string") throw keyError("--out", "missing (pass --out DIR)");
  const config = resolveFlowConfig(
    typeof flags.data === "string" ? flags.data : "mnist",
    flags.out,
    asList(flags.set as string[]),
  );
  const signal = listenForStop();
  try {
    const result = await trainFlow(config, {
      resume: flags.resume === true,
      log: (line) => console.error(line),
      stop: signal.stop,
    });
    return result.interrupted ? 130 : 0;
  } finally {
    signal.dispose();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
