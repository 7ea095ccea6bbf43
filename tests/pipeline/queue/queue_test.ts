// Experiment cells on a Redis Streams queue, each test against its own redis-server on a loopback
// port: two workers give the bytes of a local run (each seed's pool made once over both), a worker
// killed mid-cell has its cell finished by the other and counted once, a Redis restart mid-run
// (append-only file on) loses no finished result, a cell that always throws ends in the
// dead-letter stream and the run names it, a wrong password or a queue whose config hash differs
// is refused with one line, and the same holds over TLS with verified clients.

import assert from "node:assert/strict";
import { createClient } from "redis";
import { SiaError } from "../../../core/errors.ts";
import { runExperiment } from "../../../pipeline/experiments/run.ts";
import { runQueued } from "../../../pipeline/queue/coordinator.ts";
import type { QueueStats } from "../../../pipeline/queue/coordinator.ts";
import { redactUrl, TLS_FILES } from "../../../pipeline/queue/redis.ts";
import { makeMeta, resolveQueue, siaVersion } from "../../../pipeline/queue/protocol.ts";
import { EXPERIMENTS } from "../../../pipeline/experiments/registry.ts";
import { POOL_CODEC } from "../../../pipeline/experiments/shared.ts";
import { makeBatch } from "../../../core/batch.ts";
import { assertOneLineError, REPO, runCli, spawnCli, withTempDir } from "../../_cli.ts";
import { listNames } from "../../_shared.ts";
import { startRedis } from "./_redis.ts";
import type { RedisServer } from "./_redis.ts";
import { toy } from "./_toy.ts";
import type { ToyConfig } from "./_toy.ts";

const TOY = `${REPO}/tests/pipeline/queue/_toy.ts`;
const decoder = new TextDecoder();

interface Worker {
  readonly child: Deno.ChildProcess;
  /** Everything the worker wrote on stderr so far. */
  log(): string;
  /** Resolves once its log matches. */
  until(pattern: RegExp): Promise<void>;
  /** Stops it with SIGTERM and resolves to its exit status. */
  stop(): Promise<number>;
}

function startWorker(url: string, name: string): Worker {
  const child = spawnCli(["--redis", url, "--name", name], TOY);
  let text = "";
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(text)) w.resolve();
        else waiters.push(w);
      }
    }
  })();
  return {
    child,
    log: () => text,
    until: (pattern) =>
      pattern.test(text)
        ? Promise.resolve()
        : new Promise((resolve) => waiters.push({ pattern, resolve })),
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      return (await child.status).code;
    },
  };
}

function toyRaw(
  dir: string,
  toy: Partial<ToyConfig["toy"]> = {},
  queue: Record<string, unknown> = {},
) {
  return {
    experiment: "toy",
    out: { dir },
    toy: { seeds: [0, 1], ms: 300, fail: [], offset: 0, pool: 64, ...toy },
    queue: { heartbeat: 0.2, maxDeliveries: 2, ...queue },
  };
}

const quiet = { log: () => {}, print: () => {} };

/** Runs the toy's cells on the queue with the coordinator in this process. */
function coordinate(server: RedisServer, raw: ReturnType<typeof toyRaw>, log: string[] = []) {
  return runQueued(toy, toy.resolve(raw), raw, {
    url: server.url,
    log: (line) => log.push(line),
    print: () => {},
    logEvery: 1,
  });
}

/** The stored cells of a directory without their wall times: what must match a local run. */
async function results(dir: string): Promise<string[]> {
  const names = await listNames(`${dir}/cells`);
  return await Promise.all(names.map(async (name) => {
    const { seconds: _, ...cell } = JSON.parse(await Deno.readTextFile(`${dir}/cells/${name}`));
    return `${name} ${JSON.stringify(cell)}`;
  }));
}

async function withRedis(
  options: Parameters<typeof startRedis>[0],
  fn: (server: RedisServer, dir: string) => Promise<void>,
): Promise<void> {
  const server = await startRedis(options);
  try {
    await withTempDir((dir) => fn(server, dir));
  } finally {
    await server.close();
  }
}

Deno.test("two workers give the bytes of a local run; each pool is made once over both", async () => {
  await withRedis({}, async (server, dir) => {
    const shared = `${dir}/shared`;
    await Deno.mkdir(shared);
    // Each pool (2 KiB) is over inlineBytes: it goes through the shared directory.
    const raw = toyRaw(`${dir}/queued`, { seeds: [0, 1, 2], pool: 512 }, {
      inlineBytes: 1024,
      shared,
    });
    await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
    const workers = [startWorker(server.url, "w1"), startWorker(server.url, "w2")];
    let stats: QueueStats;
    try {
      stats = await coordinate(server, raw);
    } finally {
      assert.deepEqual(await Promise.all(workers.map((w) => w.stop())), [130, 130]);
    }
    assert.equal(stats.ran, 6);
    assert.equal(
      await Deno.readTextFile(`${dir}/queued/toy.json`),
      await Deno.readTextFile(`${dir}/local/toy.json`),
    );
    assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
    const logs = workers.map((w) => w.log()).join("");
    for (const seed of [0, 1, 2]) {
      assert.equal(logs.split(`[toy] making pool ${seed}\n`).length - 1, 1, logs);
    }
    assert.ok(workers.every((w) => /\(stored\)/.test(w.log())), "both workers ran cells");
    assert.equal((await listNames(shared)).length, 3);
  });
});

Deno.test("a worker killed mid-cell has its cell finished by the other, each cell counted once", async () => {
  await withRedis({}, async (server, dir) => {
    const raw = toyRaw(`${dir}/queued`, { ms: 1500 });
    await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
    const first = startWorker(server.url, "w1");
    const run = coordinate(server, raw);
    await first.until(/(a \/ seed 0): running/);
    const second = startWorker(server.url, "w2");
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.child.kill("SIGKILL");
    assert.equal((await first.child.status).signal, "SIGKILL");
    let stats: QueueStats;
    try {
      stats = await run;
    } finally {
      assert.equal(await second.stop(), 130);
    }
    assert.equal(stats.ran, 4);
    assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
    assert.match(second.log(), /a \/ seed 0: running \(delivery 2,/);
    const client = await createClient({ url: server.url }).connect();
    try {
      // One done entry per cell: the killed worker's delivery never counted.
      const done = await client.xRange("sia:sia:done", "-", "+");
      assert.deepEqual(done.map((m) => m.message.key).sort(), [
        '{"arm":"a","seed":0}',
        '{"arm":"a","seed":1}',
        '{"arm":"b","seed":0}',
        '{"arm":"b","seed":1}',
      ]);
      assert.equal(await client.xLen("sia:sia:cells"), 0);
    } finally {
      await client.close();
    }
  });
});

Deno.test("a worker paused past the visibility timeout finishes a cell run twice: it counts once", async () => {
  await withRedis({}, async (server, dir) => {
    const raw = toyRaw(`${dir}/queued`, { ms: 1500 });
    await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
    const first = startWorker(server.url, "w1");
    const second = startWorker(server.url, "w2");
    const run = coordinate(server, raw);
    let stats: QueueStats;
    try {
      await first.until(/(a|b) \/ seed \d: running \(delivery 1/);
      const label = /(\w \/ seed \d): running/.exec(first.log())![1];
      Deno.kill(first.child.pid, "SIGSTOP");
      await second.until(new RegExp(`${label}: running \\(delivery 2`));
      Deno.kill(first.child.pid, "SIGCONT");
      stats = await run;
      // Both finish it: the paused worker too, once it runs again.
      await first.until(new RegExp(`${label}: [0-9.]+ \\(stored\\)`));
      await second.until(new RegExp(`${label}: [0-9.]+ \\(stored\\)`));
    } finally {
      assert.deepEqual(await Promise.all([first.stop(), second.stop()]), [130, 130]);
    }
    assert.equal(stats.ran, 4);
    assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
    const client = await createClient({ url: server.url }).connect();
    try {
      assert.equal(await client.xLen("sia:sia:done"), 5);
      assert.equal((await client.keys("sia:sia:result:*")).length, 4);
    } finally {
      await client.close();
    }
  });
});

Deno.test("SIGTERM mid-cell hands the cell back at once and exits 130; another worker runs it", async () => {
  await withRedis({}, async (server, dir) => {
    // A long heartbeat: the takeover must come from the hand-back, not the visibility timeout.
    const raw = toyRaw(`${dir}/queued`, { seeds: [0], ms: 1000 }, { heartbeat: 30 });
    const first = startWorker(server.url, "w1");
    const run = coordinate(server, raw);
    await first.until(/: running/);
    assert.equal(await first.stop(), 130);
    assert.match(first.log(), /: handed back \(stopped\)\n/);
    assert.doesNotMatch(first.log(), /\(stored\)/);
    const second = startWorker(server.url, "w2");
    try {
      const stats = await run;
      assert.equal(stats.ran, 2);
    } finally {
      assert.equal(await second.stop(), 130);
    }
    assert.match(second.log(), /running \(delivery 2,/);
  });
});

Deno.test("a Redis restart mid-run (append-only file on) loses no finished result", async () => {
  await withRedis({ appendonly: true }, async (server, dir) => {
    const raw = toyRaw(`${dir}/queued`, { ms: 400 });
    await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
    const worker = startWorker(server.url, "w1");
    const log: string[] = [];
    const run = coordinate(server, raw, log);
    let stats: QueueStats;
    try {
      await worker.until(/\(stored\)[^]*\(stored\)/);
      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await server.start();
      const client = await createClient({ url: server.url }).connect();
      try {
        const stored = await client.keys("sia:sia:result:*");
        assert.ok(stored.length >= 2, `results kept over the restart: ${stored}`);
      } finally {
        await client.close();
      }
      stats = await run;
    } finally {
      assert.equal(await worker.stop(), 130);
    }
    assert.equal(stats.cells.length, 4);
    assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
    assert.match(worker.log(), /connection lost, reconnecting/);
  });
});

Deno.test("a cell that always throws ends in the dead-letter stream; the run names it", async () => {
  const password = "pa55-w0rd";
  await withRedis({ password }, async (server, dir) => {
    const raw = toyRaw(`${dir}/queued`, { ms: 50, fail: [1] });
    const worker = startWorker(server.url, "w1");
    const log: string[] = [];
    try {
      await assert.rejects(
        () => coordinate(server, raw, log),
        (e) =>
          e instanceof SiaError && e.exitCode === 1 &&
          /^1 of 4 cells failed on every delivery \(dead-letter stream sia:sia:dead\): b \/ seed 1: toy cell b \/ seed 1: seed 1 always fails; rerun/
            .test(e.message),
      );
    } finally {
      assert.equal(await worker.stop(), 130);
    }
    // The other cells are stored; the failed one is not.
    assert.deepEqual(await listNames(`${dir}/queued/cells`), [
      "a__seed0.json",
      "a__seed1.json",
      "b__seed0.json",
    ]);
    const client = await createClient({ url: server.url }).connect();
    try {
      const dead = await client.xRange("sia:sia:dead", "-", "+");
      assert.equal(dead.length, 1);
      assert.equal(dead[0].message.key, '{"arm":"b","seed":1}');
      assert.equal(dead[0].message.deliveries, "2");
    } finally {
      await client.close();
    }
    assert.match(worker.log(), /b \/ seed 1: failed \(delivery 1 of 2\)/);
    // The password is in no line either process wrote.
    assert.ok(![...log, worker.log()].some((line) => line.includes(password)));
    assert.ok(log.some((line) => line.includes(redactUrl(server.url))));
  });
});

Deno.test("a wrong password is one line and exit 1, and the password is not in it", async () => {
  await withRedis({ password: "right-one" }, async (server, dir) => {
    const url = `redis://:not-the-one@127.0.0.1:${server.port}`;
    const worker = await runCli(["worker", "--redis", url]);
    assertOneLineError(worker, 1, `redis://***@127.0.0.1:${server.port}: authentication failed`);
    assert.ok(!worker.stderr.includes("not-the-one"));
    const pipeline = await runCli([
      "pipeline",
      "--config",
      "configs/table3.quick.json",
      "--out",
      `${dir}/out`,
      "--redis",
      url,
    ]);
    assertOneLineError(pipeline, 1, "authentication failed");
    assert.ok(!pipeline.stderr.includes("not-the-one"));
    const noPassword = await runCli(["worker", "--redis", `redis://127.0.0.1:${server.port}`]);
    assertOneLineError(noPassword, 1, "authentication failed (wrong or missing password)");
    assertOneLineError(await runCli(["worker", "--redis", "http://x"]), 2, "--redis: expected");
    assertOneLineError(await runCli(["worker"]), 2, "--redis: missing");
    const help = await runCli(["worker", "--help"]);
    assert.equal(help.code, 0);
    for (const flag of ["--redis", "--name", "--queue", "--help"]) {
      assert.ok(help.stdout.includes(flag), flag);
    }
  });
});

Deno.test("over TLS with clients verified: a local run's bytes; an untrusted or plain link is one line", async () => {
  const password = "tls-pa55";
  await withRedis({ password, tls: true }, async (server, dir) => {
    const { ca, cert, key } = server.tls!;
    const untrusted = await runCli(["worker", "--redis", server.url]);
    assertOneLineError(untrusted, 1, `(a private CA: set ${TLS_FILES.ca}=CA.pem)`);
    assert.match(
      untrusted.stderr,
      /rediss:\/\/\*\*\*@127\.0\.0\.1:\d+: cannot connect \(.*certificate/,
    );
    try {
      // Deno's process-wide DENO_CERT trusts the CA too (README): past the server's certificate,
      // the client's is what is missing.
      Deno.env.set("DENO_CERT", ca);
      const viaDenoCert = await runCli(["worker", "--redis", server.url]);
      Deno.env.delete("DENO_CERT");
      assertOneLineError(viaDenoCert, 1, "(the server verifies clients:");
      Deno.env.set(TLS_FILES.ca, ca);
      // The server verifies clients (tls-auth-clients yes): no certificate, no connection.
      assertOneLineError(
        await runCli(["worker", "--redis", server.url]),
        1,
        `(the server verifies clients: set ${TLS_FILES.cert} and ${TLS_FILES.key})`,
      );
      Deno.env.set(TLS_FILES.cert, cert);
      assertOneLineError(
        await runCli(["worker", "--redis", server.url]),
        1,
        `${TLS_FILES.cert} and ${TLS_FILES.key} go together`,
      );
      Deno.env.set(TLS_FILES.key, key);
      const raw = toyRaw(`${dir}/queued`);
      await runExperiment(toy, toy.resolve({ ...raw, out: { dir: `${dir}/local` } }), quiet);
      const worker = startWorker(server.url, "w1");
      const log: string[] = [];
      try {
        await coordinate(server, raw, log);
      } finally {
        assert.equal(await worker.stop(), 130);
      }
      assert.deepEqual(await results(`${dir}/queued`), await results(`${dir}/local`));
      assert.ok(![...log, worker.log()].some((line) => line.includes(password)));
      // Plain text to the TLS port fails in one line instead of hanging.
      const plain = await runCli(["worker", "--redis", server.url.replace("rediss:", "redis:")]);
      assertOneLineError(plain, 1, "cannot connect");
      assert.ok(!plain.stderr.includes(password));
    } finally {
      for (const variable of Object.values(TLS_FILES)) Deno.env.delete(variable);
    }
  });
});

Deno.test("a queue whose config hash or sia version differs is refused with one line", async () => {
  await withRedis({}, async (server, dir) => {
    const raw = JSON.parse(await Deno.readTextFile(`${REPO}/configs/table3.quick.json`));
    const client = await createClient({ url: server.url }).connect();
    try {
      const meta = makeMeta(EXPERIMENTS.table3, raw, "0123456789abcdef", resolveQueue(raw));
      await client.hSet("sia:sia:meta", { ...meta });
      assertOneLineError(
        await runCli(["worker", "--redis", server.url]),
        1,
        /^sia: queue sia: config hash 0123456789abcdef, but its config resolves to [0-9a-f]{16} in this worker's code; this worker refuses it$/,
      );
      await client.hSet("sia:sia:meta", { sia: "0.0.0-other" });
      assertOneLineError(
        await runCli(["worker", "--redis", server.url]),
        1,
        `queue sia: its run is sia 0.0.0-other, this worker is sia ${siaVersion()}`,
      );
      // A coordinator does not take over a queue another config's cells are still on.
      await client.xAdd("sia:sia:cells", "*", { run: "0123456789abcdef", key: "{}" });
      await assert.rejects(
        () => coordinate(server, toyRaw(`${dir}/queued`)),
        (e) =>
          e instanceof SiaError &&
          /^queue sia on redis:\/\/127\.0\.0\.1:\d+ is running another config \(run 0123456789abcdef, 1 cells left/
            .test(e.message),
      );
    } finally {
      await client.close();
    }
  });
});

Deno.test("table3 on the queue through the CLI: two workers write the tables of a local run", async () => {
  await withRedis({}, async (server, dir) => {
    // table3.quick.json cut to seconds a cell: one learner, 3 steps, small sets, a 4-step flow.
    const tiny = [
      "--config",
      "configs/table3.quick.json",
      ...[
        "data.size=300",
        "table3.learners=simclr",
        "table3.steps=3",
        "table3.batch=8",
        "table3.dim=16",
        "table3.pool=32",
        "table3.probeTrain=250",
        "table3.probeTest=100",
        "generators.closed-form.steps=5",
        "flow.train.steps=4",
        "flow.train.batch=8",
        "flow.train.evalEvery=4",
        "flow.train.every=4",
        "flow.sample.steps=2",
      ].flatMap((assignment) => ["--set", assignment]),
    ];
    const local = await runCli(["pipeline", ...tiny, "--out", `${dir}/local`]);
    assert.equal(local.code, 0, local.stderr);
    const workers = [1, 2].map((i) =>
      spawnCli(["worker", "--redis", server.url, "--name", `w${i}`])
    );
    const queued = await runCli([
      "pipeline",
      ...tiny,
      "--out",
      `${dir}/queued`,
      "--redis",
      server.url,
    ]);
    for (const w of workers) w.kill("SIGTERM");
    const ends = await Promise.all(workers.map((w) => w.output()));
    assert.equal(queued.code, 0, queued.stderr);
    assert.deepEqual(ends.map((e) => e.code), [130, 130]);
    assert.equal(queued.stdout, local.stdout);
    for (const file of ["table3.md", "table3.csv", "table3.json", "table3.svg", "table3.png"]) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/queued/${file}`),
        await Deno.readFile(`${dir}/local/${file}`),
        file,
      );
    }
    assert.match(queued.stderr, /5 of 5 cells to run/);
    // The three mixed arms' pools and the trained flow were made once each, by whichever worker
    // needed them first: the other worker got the flow's files from the queue, not by training.
    const logs = ends.map((e) => new TextDecoder().decode(e.stderr)).join("");
    assert.equal(logs.match(/artifact [^ ]+: stored/g)?.length, 4, logs);
    assert.equal(logs.match(/training the table's flow/g)?.length, 1, logs);
  });
});

Deno.test("a pool survives its artifact codec exactly, whatever its header's length", () => {
  for (const generator of ["noise", "closed-form"]) {
    const n = 3;
    const pool = makeBatch({
      images: Float32Array.from({ length: n * 4 }, (_, i) => Math.fround(i / 7 - 0.3)),
      shape: [n, 2, 2, 1],
      labels: Int32Array.from([4, -1, 9]),
      ids: Int32Array.from([7, 8, 2 ** 30]),
      provenance: Uint8Array.from([1, 2, 1]),
      generator,
    });
    const bytes = POOL_CODEC.encode(pool);
    assert.deepEqual(POOL_CODEC.decode(bytes), pool);
    // A copy at an odd offset decodes the same (the arrays are realigned, not viewed in place).
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    assert.deepEqual(POOL_CODEC.decode(shifted.subarray(1)), pool);
  }
});
