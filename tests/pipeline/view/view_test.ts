// The results view in a real headless Chromium (playwright-core driving Debian's chromium) against
// a tiny live Table 3 run started with `pipeline --view`: cells turn from pending to done without
// a reload, the table's numbers are table3.json's and a paired difference is the hand computation
// from the cell files, the sample grid's canvases hold the shard's pixels and each neighbour is the
// brute-force nearest training image, no console errors; a screenshot of each view goes to
// docs/view/. Bad input (a missing directory, a corrupt cell file, a corrupt shard) is a line on
// the page and on stderr while the server keeps serving; the memorization experiment's points
// join the page as its cells finish; a plain `pipeline --view` run serves its shard's own bytes and
// its summary; a token guards other hosts.

import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { decodeNpy } from "../../../core/npy.ts";
import { subset } from "../../../stages/load/dataset.ts";
import { loadSplits } from "../../../stages/load/resolve.ts";
import { serveView } from "../../../pipeline/view/server.ts";
import { assertOneLineError, exists, REPO, runCli, spawnServer, withTempDir } from "../../_cli.ts";

const CHROMIUM = "/usr/bin/chromium";
const HAS_CHROMIUM = await exists(CHROMIUM);
const VIEW_LINE = /view (?:of \S+ )?on (http:\/\/127\.0\.0\.1:\d+)\//;

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--no-first-run",
    ],
  });
}

/** A page that records console errors and uncaught exceptions. */
async function open(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}

/** Goes to a view by its nav link, as a user would: history.pushState, no reload. */
async function show(page: Page, view: string): Promise<void> {
  await page.click(`nav a[data-view="${view}"]`);
  await page.waitForFunction(`document.getElementById("view")?.dataset.view === "${view}"`);
}

/** Waits (up to a minute) for `done`; the assertion shows `context()` if it never comes. */
async function until(done: () => boolean | Promise<boolean>, context: () => string) {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    assert.ok(Date.now() < deadline, context());
    await new Promise((r) => setTimeout(r, 100));
  }
}

const pixel = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
const signed = (v: number) => (v > 0 ? "+" : "") + v.toFixed(2);

Deno.test({
  name: "view: a live table3 run in Chromium, pending to done without reload; numbers and pixels",
  ignore: !HAS_CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await withTempDir(async (tmp) => {
    const out = `${tmp}/out`;
    const samples = `${out}/samples/closed-form`;
    const generated = await runCli([
      "generate",
      "--generator",
      "closed-form",
      "--count",
      "16",
      "--out",
      samples,
      "--set",
      "data.size=300",
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    const config = `${tmp}/table3.json`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        experiment: "table3",
        data: { source: "mnist", size: 300 },
        table3: {
          learners: "simclr",
          seeds: "0,1",
          steps: 20,
          batch: 8,
          dim: 16,
          pool: 32,
          probeTrain: 250,
          probeTest: 100,
        },
        generators: { "closed-form": { sampler: "sde", steps: 5 } },
        out: { dir: out },
      }),
    );
    const run = await spawnServer(
      ["pipeline", "--config", config, "--view", "--port", "0"],
      VIEW_LINE,
    );
    const browser = await launch();
    try {
      const { page, errors } = await open(browser, `${run.url}/grid`);
      await page.evaluate(() => ((globalThis as Record<string, unknown>).marker = 42));
      const last = 'tr[data-cell="simclr__noised__seed1"]';
      await page.waitForSelector(`${last}[data-state="pending"]`, { timeout: 90_000 });
      // A running cell shows its step and loss.
      await page.waitForFunction(
        `[...document.querySelectorAll('tr[data-state="running"] .detail')]
          .some((td) => /^step \\d+\\/20 · .*loss \\d/.test(td.textContent))`,
        undefined,
        { timeout: 90_000 },
      );
      await page.screenshot({ path: `${REPO}/docs/view/grid.png`, fullPage: true });
      await page.waitForSelector(`${last}[data-state="done"]`, { timeout: 120_000 });
      await until(() => run.stderr().includes("run finished"), run.stderr);
      assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>).marker), 42);
      // Beside a run, the directory the run has not made yet is not reported as a problem.
      assert.doesNotMatch(run.stderr(), /no such results directory/);
      assert.equal(await page.locator('#grid tr[data-state="done"]').count(), 8);

      // The table: every row of table3.json, the same mean and sd.
      const json = JSON.parse(await Deno.readTextFile(`${out}/table3.json`));
      await show(page, "table");
      // table3.json has a row per learner and arm, with an estimate per metric.
      const metrics = ["logistic", "ridge", "knn"] as const;
      const estimates = json.rows.flatMap((r: Record<string, unknown>) =>
        metrics.map((metric) => ({
          learner: r.learner,
          arm: r.arm,
          metric,
          ...(r[metric] as { mean: number; sd: number }),
        }))
      );
      assert.equal(estimates.length, 12); // 4 groups x (logistic, ridge, kNN)
      for (const r of estimates) {
        const row = `#table tr[data-group="${r.learner} / ${r.arm}"][data-metric="${r.metric}"]`;
        assert.equal(await page.textContent(`${row} [data-field="mean"]`), r.mean.toFixed(2));
        assert.equal(await page.textContent(`${row} [data-field="sd"]`), r.sd.toFixed(2));
        assert.equal(await page.textContent(`${row} [data-field="n"]`), "2");
      }
      // A paired difference by hand: noised - baseline per seed, t(0.975, 1) = 12.7062.
      const cell = async (arm: string, seed: number) =>
        JSON.parse(await Deno.readTextFile(`${out}/cells/simclr__${arm}__seed${seed}.json`)).result;
      const d = await Promise.all(
        [0, 1].map(async (s) =>
          100 * ((await cell("noised", s)).logistic - (await cell("baseline", s)).logistic)
        ),
      );
      const mean = (d[0] + d[1]) / 2;
      const half = 12.706204736174705 * (Math.abs(d[0] - d[1]) / Math.SQRT2) / Math.SQRT2;
      const diff = await page.locator(
        '#differences tr[data-group="simclr / noised"][data-metric="logistic"] td',
      ).allTextContents();
      assert.equal(diff[1 + 2], signed(mean));
      assert.equal(diff[1 + 3], `[${signed(mean - half)}, ${signed(mean + half)}]`);
      // The CSV download: the same numbers, to the last bit.
      const csv = (await (await fetch(`${run.url}/api/table.csv`)).text()).trim().split("\n");
      assert.equal(csv[0], "learner,arm,metric,n,mean,sd,lo95,hi95,values");
      for (const r of estimates) {
        const line = csv.find((l) => l.startsWith(`${r.learner},${r.arm},${r.metric},`))!;
        assert.equal(Number(line.split(",")[4]), r.mean);
      }
      await page.screenshot({ path: `${REPO}/docs/view/table.png`, fullPage: true });

      // The chart: one bar per group and metric, with its interval.
      await show(page, "chart");
      await page.waitForSelector("#chart svg .bars_marks path");
      assert.equal(await page.locator("#chart svg .bars_marks path").count(), 12);
      assert.equal(
        await page.locator('#chart svg .mark-rule[class*="intervals"] line').count(),
        12,
      );
      await page.screenshot({ path: `${REPO}/docs/view/chart.png`, fullPage: true });

      // Curves: 6 trained cells x (loss, feature std, lr); each cell's 20 steps in its file.
      await show(page, "curves");
      await page.waitForSelector("#curves svg .mark-line path");
      assert.equal(await page.locator("#curves svg .mark-line path").count(), 18);
      const curve = await (await fetch(`${run.url}/api/curve?cell=simclr__baseline__seed0`)).json();
      assert.deepEqual(
        curve.curve.map((p: { step: number }) => p.step),
        [...Array(20)].map((_, i) => i + 1),
      );
      await page.screenshot({ path: `${REPO}/docs/view/curves.png`, fullPage: true });

      // Samples: the canvases hold the shard's pixels; each neighbour is the nearest training
      // image by brute force over the run's training set.
      await show(page, "samples");
      const set = 'section[data-set="samples/closed-form"]';
      await page.waitForSelector(`${set} canvas.sample`);
      // Browser-side code as text: these files are type-checked without the DOM library.
      const read = (kind: string): Promise<number[][]> =>
        page.evaluate(`[...document.querySelectorAll('${set} canvas.${kind}')].map((c) =>
          Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data))`);
      const [shown, neighbours] = [await read("sample"), await read("nearest")];
      const shard = decodeNpy(await Deno.readFile(`${samples}/images-00000.npy`));
      const images = new Float32Array(shard.data.buffer, shard.data.byteOffset, 16 * 784);
      const splits = await loadSplits("mnist", { testFraction: 0.2, splitSeed: 0, labels: "" });
      const train = subset(splits.train, 300, true, 0);
      assert.equal(shown.length, 16);
      const ratios = await page.locator(`${set} .tile div`).allTextContents();
      let memorized = 0;
      for (let i = 0; i < 16; i++) {
        const distances = Array.from({ length: 300 }, (_, t) => {
          let s = 0;
          for (let p = 0; p < 784; p++) {
            const e = images[i * 784 + p] - train.images[t * 784 + p];
            s += e * e;
          }
          return [Math.sqrt(s), t];
        }).sort((a, b) => a[0] - b[0]);
        const [[d1, nearest], [d2]] = distances;
        for (let p = 0; p < 784; p++) {
          const expected = pixel(images[i * 784 + p]);
          assert.deepEqual(shown[i].slice(4 * p, 4 * p + 4), [expected, expected, expected, 255]);
          assert.equal(neighbours[i][4 * p], pixel(train.images[nearest * 784 + p]));
        }
        assert.equal(ratios[i], `r ${(d1 / d2).toFixed(3)}`);
        if (d1 < d2 / 3) memorized++;
      }
      await page.screenshot({ path: `${REPO}/docs/view/samples.png`, fullPage: true });

      await show(page, "memorization");
      await page.waitForSelector('#memorization [data-field="memorized"]');
      assert.equal(
        await page.textContent('#memorization [data-field="memorized"]'),
        `${(100 * memorized / 16).toFixed(1)} %`,
      );
      await page.screenshot({ path: `${REPO}/docs/view/memorization.png`, fullPage: true });
      // A view's URL is stable: loading it afresh draws the same view.
      await page.goto(`${run.url}/table`);
      await page.waitForSelector("#table tr[data-metric]");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      // The run had finished: Ctrl-C only closes the page's server.
      assert.equal(await run.stop(), 0, run.stderr());
    }
  });
});

Deno.test({
  name:
    "view: a missing directory, a corrupt cell, a corrupt shard: a line on the page and on stderr",
  ignore: !HAS_CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await withTempDir(async (tmp) => {
    const dir = `${tmp}/results`;
    const view = await spawnServer(["view", dir, "--port", "0"], VIEW_LINE);
    const browser = await launch();
    try {
      assert.match(view.stderr(), new RegExp(`^sia: view: ${dir}: no such results directory`, "m"));
      const { page } = await open(browser, `${view.url}/grid`);
      await page.waitForSelector("#errors .message");
      assert.match(await page.textContent("#errors") ?? "", /no such results directory/);
      await page.evaluate(() => ((globalThis as Record<string, unknown>).marker = 7));
      // The directory appears with a corrupt cell: the same page says so.
      await Deno.mkdir(`${dir}/cells`, { recursive: true });
      await Deno.writeTextFile(`${dir}/cells/simclr__baseline__seed0.json`, "{ not json");
      const corrupt = `${dir}/cells/simclr__baseline__seed0.json: not a stored cell (invalid JSON)`;
      await page.waitForFunction(
        `document.getElementById("errors").textContent.includes(${JSON.stringify(corrupt)})`,
      );
      assert.equal(await page.locator('tr[data-state="corrupt"]').count(), 1);
      assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>).marker), 7);
      // A corrupt shard: its sample set says what is wrong; the rest of the page still works.
      await Deno.mkdir(`${dir}/samples/bad`, { recursive: true });
      await Deno.writeTextFile(`${dir}/samples/bad/manifest.json`, "{}");
      await Deno.writeTextFile(`${dir}/samples/bad/images-00000.npy`, "not numpy");
      await page.waitForFunction(`document.body.textContent.includes("0 pending")`);
      await show(page, "samples");
      await page.waitForSelector('section[data-set="samples/bad"] .error');
      assert.match(
        await page.textContent('section[data-set="samples/bad"] .error') ?? "",
        /samples\/bad\/images-00000\.npy: not a \.npy file/,
      );
      await until(
        () => view.stderr().includes(corrupt) && view.stderr().includes("not a .npy file"),
        view.stderr,
      );
      assert.equal((await fetch(`${view.url}/api/state`)).status, 200);
      // The file removed, the page recovers on its own.
      await Deno.remove(`${dir}/cells/simclr__baseline__seed0.json`);
      await page.waitForFunction(
        `!document.getElementById("errors").textContent.includes("not a stored cell")`,
      );
      assert.equal(await page.evaluate(() => (globalThis as Record<string, unknown>).marker), 7);
    } finally {
      await browser.close();
      assert.equal(await view.stop(), 130);
    }
  });
});

Deno.test({
  name: "view: the memorization experiment's points are tabulated and charted as cells finish",
  ignore: !HAS_CHROMIUM,
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/cells`);
    const point = (step: number, memorized: number) => ({
      step,
      epoch: step / 4,
      memorized,
      nearest: 1.5,
      residual: 0.75,
      model: "",
    });
    const cell = (arm: string, points: unknown[]) => ({
      experiment: "memorization",
      key: { size: 256, arm, seed: 0 },
      config: "0000000000000000",
      result: { points },
      seconds: 1,
    });
    await Deno.writeTextFile(
      `${dir}/cells/size256__cfm__seed0.json`,
      JSON.stringify(cell("cfm", [point(2, 0.25), point(4, 0.5)])),
    );
    const view = await spawnServer(["view", dir, "--port", "0"], VIEW_LINE);
    const browser = await launch();
    try {
      const { page, errors } = await open(browser, `${view.url}/memorization`);
      await page.waitForSelector("#memorization-chart svg .mark-line path");
      const memorized = await page.locator('#memorization-cells [data-field="memorized"]')
        .allTextContents();
      assert.deepEqual(memorized, ["25.0 %", "50.0 %"]);
      // A second cell finishes: its points join without a reload.
      await Deno.writeTextFile(
        `${dir}/cells/size256__efm__seed0.json`,
        JSON.stringify(cell("efm", [point(2, 0.125)])),
      );
      await page.waitForSelector('#memorization-cells tr[data-cell="size 256 / efm / seed 0"]');
      assert.equal(await page.locator("#memorization-cells tr[data-step]").count(), 3);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      assert.equal(await view.stop(), 130);
    }
  });
});

Deno.test("pipeline --view on a plain run: its shards and summary.md, the shard's own bytes", async () => {
  await withTempDir(async (tmp) => {
    const out = `${tmp}/quick`;
    const run = await spawnServer([
      "pipeline",
      "--config",
      "configs/shards.json",
      "--out",
      out,
      "--set",
      "generate.count=64",
      "--set",
      "data.size=200",
      "--set",
      "out.nnSample=64",
      "--view",
      "--port",
      "0",
    ], VIEW_LINE);
    try {
      await until(() => run.stderr().includes("run finished"), run.stderr);
      // The poll after the run sees the summary.
      let state = { samples: [] as { name: string; generator: string; summary: string }[] };
      await until(async () => {
        state = await (await fetch(`${run.url}/api/state`)).json();
        return Boolean(state.samples[0]?.summary);
      }, run.stderr);
      assert.equal(state.samples.length, 1);
      assert.equal(state.samples[0].name, ".");
      assert.equal(state.samples[0].generator, "noise");
      assert.equal(state.samples[0].summary, await Deno.readTextFile(`${out}/summary.md`));
      const set = await (await fetch(`${run.url}/api/samples?set=.`)).json();
      assert.equal(set.count, 32);
      const shard = decodeNpy(await Deno.readFile(`${out}/images-00000.npy`));
      const sent = Uint8Array.from(atob(set.images), (ch) => ch.charCodeAt(0));
      assert.deepEqual(sent, shard.data.subarray(0, 32 * 784 * 4));
    } finally {
      assert.equal(await run.stop(), 0, run.stderr());
    }
  });
});

Deno.test("view: another host needs a token; with one, 401 without it, a cookie from ?token=", async () => {
  await withTempDir(async (tmp) => {
    const refused = await runCli(["view", tmp, "--host", "0.0.0.0", "--port", "0"]);
    assertOneLineError(refused, 2, "--host 0.0.0.0: a non-loopback host needs a bearer token");
    assertOneLineError(await runCli(["view"]), 2, "DIR: missing");
    assertOneLineError(
      await runCli(["pipeline", "--config", "configs/quick.json", "--port", "0"]),
      2,
      "--port, --host and --token-file go with --view",
    );
    let stop = () => {};
    const stopped = new Promise<void>((r) => (stop = r));
    let url = "";
    let ready = () => {};
    const up = new Promise<void>((r) => (ready = r));
    const served = serveView(tmp, {
      hostname: "127.0.0.1",
      port: 0,
      token: "s3cret",
      log: () => {},
      stop: stopped,
      onListen: (u) => {
        url = u;
        ready();
      },
    });
    await up;
    const none = await fetch(`${url}/api/state`);
    assert.equal(none.status, 401);
    assert.equal(await none.text(), "unauthorized: missing or wrong bearer token\n");
    const wrong = await fetch(`${url}/grid?token=nope`);
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const bearer = await fetch(`${url}/api/state`, { headers: { authorization: "Bearer s3cret" } });
    assert.equal(bearer.status, 200);
    assert.equal((await bearer.json()).dir, tmp);
    const login = await fetch(`${url}/grid?token=s3cret`, { redirect: "manual" });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get("location"), "/grid");
    const cookie = login.headers.get("set-cookie")!.split(";")[0];
    assert.equal(cookie, "sia_token=s3cret");
    await login.body?.cancel();
    const page = await fetch(`${url}/grid`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>sia results<\/title>/);
    stop();
    await served;
  });
});
