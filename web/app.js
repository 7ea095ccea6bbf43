// The results page: one EventSource brings the whole results view (pipeline/view/results.ts)
// whenever it changes, and the view the path names (/grid, /table, ...) is drawn from it without
// reloading. Charts are Vega-Lite specs drawn by vega-embed (loaded by index.html as globals).

import { drawSet, tileTitle } from "./samples.js";

const VIEWS = ["grid", "table", "chart", "curves", "samples", "memorization"];
const main = document.getElementById("view");
let state = null;
/** Sample sets by name, with the version they were fetched at. */
const sets = new Map();

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
};
const fixed = (
  v,
  digits = 2,
) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(digits));
const signed = (v) => (v > 0 ? "+" : "") + fixed(v);

function currentView() {
  const name = location.pathname.replace(/^\/+/, "");
  return VIEWS.includes(name) ? name : "grid";
}

function showErrors(lines) {
  const box = document.getElementById("errors");
  box.replaceChildren(...lines.map((line) => el("div", { class: "message" }, line)));
}

function scores(cell) {
  if (!cell.result) return "";
  return state.metrics
    .filter((m) => typeof cell.result[m.name] === "number")
    .map((m) => `${m.label} ${fixed(m.scale * cell.result[m.name])}`)
    .join(", ");
}

function gridView() {
  const rows = state.cells.map((c) => {
    const metrics = Object.entries(c.metrics).map(([k, v]) => `${k} ${v.toPrecision(4)}`).join(
      ", ",
    );
    const detail = c.state === "running" || c.state === "stopped"
      ? `step ${c.step}/${c.total}${metrics ? ` · ${metrics}` : ""}`
      : c.state === "done"
      ? `${scores(c)}${c.seconds !== null ? ` (${c.seconds.toFixed(1)} s)` : ""}`
      : "";
    return el(
      "tr",
      { "data-cell": c.file, "data-state": c.state },
      el("td", {}, c.label),
      el("td", {}, el("span", { class: `state state-${c.state}` }, c.state)),
      el("td", { class: "detail" }, detail),
    );
  });
  const counts = ["pending", "running", "done"].map((s) =>
    `${state.cells.filter((c) => c.state === s).length} ${s}`
  );
  return [
    el("h2", {}, `${state.experiment ?? "results"}: ${counts.join(", ")}`),
    state.cells.length
      ? el(
        "table",
        { id: "grid" },
        el(
          "tr",
          {},
          el("th", {}, "cell"),
          el("th", {}, "state"),
          el("th", {}, "progress / scores"),
        ),
        ...rows,
      )
      : el("p", {}, "No cells yet (no experiment.json or cells/ in this directory)."),
  ];
}

function tableView() {
  const label = (name) => state.metrics.find((m) => m.name === name)?.label ?? name;
  const interval = (lo, hi) => (lo === null ? "n/a" : `[${fixed(lo)}, ${fixed(hi)}]`);
  const rows = state.table.map((r) =>
    el(
      "tr",
      { "data-group": r.label, "data-metric": r.metric },
      el("td", {}, r.label),
      el("td", {}, label(r.metric)),
      el("td", { class: "num", "data-field": "n" }, r.n),
      el("td", { class: "num", "data-field": "mean" }, fixed(r.mean)),
      el("td", { class: "num", "data-field": "sd" }, fixed(r.sd)),
      el("td", { class: "num", "data-field": "interval" }, interval(r.lo, r.hi)),
      el("td", {}, r.values.map((v) => fixed(v)).join(", ")),
    )
  );
  const diffs = state.differences.map((d) =>
    el(
      "tr",
      { "data-group": d.label, "data-metric": d.metric },
      el("td", {}, `${d.label} − ${d.reference}`),
      el("td", {}, label(d.metric)),
      el("td", { class: "num" }, d.n),
      el("td", { class: "num" }, signed(d.mean)),
      el("td", { class: "num" }, d.lo === null ? "n/a" : `[${signed(d.lo)}, ${signed(d.hi)}]`),
      el("td", {}, `${d.above}+ ${d.below}-${d.ties ? ` ${d.ties}=` : ""}`),
    )
  );
  const links = [el("a", { href: "/api/table.csv", download: "" }, "this table as CSV")];
  for (const f of state.files) links.push(" · ", el("a", { href: `/files/${f}` }, f));
  return [
    el("h2", {}, "Finished cells: mean, sd and 95 % interval over seeds"),
    el("p", {}, ...links),
    el(
      "table",
      { id: "table" },
      el(
        "tr",
        {},
        ...["group", "metric", "n", "mean", "sd", "95 % interval", "every seed"].map((h) =>
          el("th", {}, h)
        ),
      ),
      ...rows,
    ),
    el("h3", {}, "Paired differences (same seeds) against each row's first arm"),
    diffs.length
      ? el(
        "table",
        { id: "differences" },
        el(
          "tr",
          {},
          ...["difference", "metric", "pairs", "mean", "95 % interval", "signs"].map((h) =>
            el("th", {}, h)
          ),
        ),
        ...diffs,
      )
      : el("p", {}, "None yet: a difference needs both arms finished on a seed."),
  ];
}

/** A Vega-Lite spec of `unit` drawn once per metric, one row each, each on its own y scale. */
function byMetric(values, unit) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values },
    facet: { row: { field: "metric", title: null } },
    resolve: { scale: { y: "independent" } },
    spec: unit,
  };
}

function embed(id, spec) {
  const target = document.getElementById(id);
  if (target) return globalThis.vegaEmbed(target, spec, { renderer: "svg", actions: false });
}

function chartView() {
  const values = state.table.map((r) => ({
    group: r.label,
    metric: state.metrics.find((m) => m.name === r.metric)?.label ?? r.metric,
    mean: r.mean,
    // The 95 % interval; with one seed there is none, and mean ± sd (0) stands in.
    lo: r.lo ?? r.mean - r.sd,
    hi: r.hi ?? r.mean + r.sd,
    n: r.n,
  }));
  const spec = byMetric(values, {
    width: Math.min(900, 60 + 45 * new Set(values.map((v) => v.group)).size),
    height: 220,
    layer: [
      {
        name: "bars",
        mark: "bar",
        encoding: {
          x: {
            field: "group",
            type: "nominal",
            sort: null,
            title: null,
            axis: { labelAngle: -40 },
          },
          y: { field: "mean", type: "quantitative", scale: { zero: false } },
          color: { field: "group", type: "nominal", legend: null },
          tooltip: [
            { field: "group" },
            { field: "mean", format: ".2f" },
            { field: "lo", format: ".2f" },
            { field: "hi", format: ".2f" },
            { field: "n" },
          ],
        },
      },
      {
        name: "intervals",
        mark: { type: "errorbar", ticks: true },
        encoding: {
          x: { field: "group", type: "nominal", sort: null },
          y: { field: "lo", type: "quantitative", title: "mean (95 % interval)" },
          y2: { field: "hi" },
        },
      },
    ],
  });
  queueMicrotask(() => embed("chart", spec));
  return [
    el("h2", {}, "Mean over seeds with its 95 % interval"),
    values.length ? el("div", { id: "chart" }) : el("p", {}, "No finished cells yet."),
  ];
}

const curves = new Map();

async function loadCurves(files) {
  await Promise.all(files.map(async (file) => {
    const cell = state.cells.find((c) => c.file === file);
    const have = curves.get(file);
    if (have && have.step === cell.step && have.state === cell.state) return;
    const response = await fetch(`/api/curve?cell=${encodeURIComponent(file)}`);
    if (response.ok) curves.set(file, await response.json());
  }));
}

function curvesView() {
  const chosen = new URLSearchParams(location.search).get("cell");
  const withCurve = state.cells.filter((c) => c.curve);
  const shown = chosen ? withCurve.filter((c) => c.file === chosen) : withCurve.slice(0, 12);
  const links = withCurve.map((c) =>
    el("a", {
      href: `/curves?cell=${encodeURIComponent(c.file)}`,
      class: c.file === chosen ? "current" : "",
    }, c.label)
  );
  const box = el("div", { id: "curves" });
  loadCurves(shown.map((c) => c.file)).then(() => {
    const values = shown.flatMap((c) =>
      (curves.get(c.file)?.curve ?? []).flatMap((p) =>
        Object.entries(p).filter(([k]) => k !== "step").map(([metric, value]) => ({
          cell: c.label,
          step: p.step,
          metric,
          value,
        }))
      )
    );
    const spec = byMetric(values, {
      width: 640,
      height: 140,
      mark: { type: "line", interpolate: "linear" },
      encoding: {
        x: { field: "step", type: "quantitative" },
        y: { field: "value", type: "quantitative", scale: { zero: false }, title: null },
        color: { field: "cell", type: "nominal" },
      },
    });
    if (values.length) embed("curves", spec);
  });
  return [
    el(
      "h2",
      {},
      "Training curves: loss, collapse indicators (feature std, code entropy), learning rate",
    ),
    el(
      "p",
      { class: "cells" },
      el("a", { href: "/curves" }, "all"),
      ...links.flatMap((a) => [" · ", a]),
    ),
    shown.length
      ? box
      : el("p", {}, "No curves yet (a cell writes progress/<cell>.json as it trains)."),
  ];
}

async function loadSet(info) {
  const have = sets.get(info.name);
  if (have && have.version === info.version) return have;
  const response = await fetch(`/api/samples?set=${encodeURIComponent(info.name)}`);
  const entry = response.ok
    ? { version: info.version, set: await response.json() }
    : { version: info.version, error: (await response.text()).trim() };
  sets.set(info.name, entry);
  return entry;
}

function samplesView() {
  if (!state.samples.length) {
    return [
      el("h2", {}, "Samples"),
      el(
        "p",
        {},
        "No shard directory (images-00000.npy and manifest.json) under this results directory.",
      ),
    ];
  }
  const boxes = state.samples.map((info) => {
    const box = el(
      "section",
      { class: "set", "data-set": info.name },
      el("h3", {}, `${info.generator} (${info.name})`),
      el("p", {}, "loading"),
    );
    loadSet(info).then((entry) => {
      if (entry.error) {
        box.replaceChildren(el("h3", {}, info.name), el("p", { class: "error" }, entry.error));
      } else box.replaceChildren(el("h3", {}, tileTitle(entry.set)), drawSet(entry.set));
    });
    return box;
  });
  return [
    el("h2", {}, "Samples, each beside its nearest training image (r: NN1/NN2 distance ratio)"),
    el("div", { class: "sets" }, ...boxes),
  ];
}

function memorizationView() {
  const rows = state.samples.map((info) => {
    const row = el(
      "tr",
      { "data-set": info.name },
      el("td", {}, `${info.generator} (${info.name})`),
      el("td", {}, "…"),
      el("td", {}, ""),
      el("td", {}, ""),
    );
    loadSet(info).then((entry) => {
      if (entry.error) {
        return row.replaceChildren(
          el("td", {}, info.name),
          el("td", { class: "error", colspan: 3 }, entry.error),
        );
      }
      const s = entry.set;
      row.replaceChildren(
        el("td", {}, `${s.generator} (${s.name})`),
        el(
          "td",
          { class: "num", "data-field": "memorized" },
          `${(100 * s.memorizedFraction).toFixed(1)} %`,
        ),
        el("td", { class: "num" }, fixed(s.meanNearestDistance, 4)),
        el(
          "td",
          { class: "num" },
          `${s.count} of ${info.images}, ${s.trainImages} training images`,
        ),
      );
    });
    return row;
  });
  const parts = [
    el("h2", {}, "Memorization: nearest / second-nearest training distance below 1/3"),
    rows.length
      ? el(
        "table",
        { id: "memorization" },
        el(
          "tr",
          {},
          ...["sample set", "memorized", "mean NN distance", "measured on"].map((h) =>
            el("th", {}, h)
          ),
        ),
        ...rows,
      )
      : el("p", {}, "No sample sets here."),
  ];
  for (const info of state.samples.filter((i) => i.summary)) {
    parts.push(
      el("h3", {}, `The run's summary (${info.name}/summary.md)`),
      el("pre", { class: "summary", "data-set": info.name }, info.summary),
    );
  }
  // The memorization experiment's finished cells, as they finish: each measurement point.
  const points = state.cells.filter((c) => Array.isArray(c.result?.points)).flatMap((c) =>
    c.result.points.map((p) => ({ cell: c.label, ...p }))
  );
  if (points.length) {
    const values = points.map((p) => ({
      cell: p.cell,
      step: p.step,
      memorized: 100 * p.memorized,
    }));
    queueMicrotask(() =>
      embed("memorization-chart", {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        data: { values },
        width: 560,
        height: 220,
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "step", type: "quantitative" },
          y: { field: "memorized", type: "quantitative", title: "memorized %" },
          color: { field: "cell", type: "nominal" },
        },
      })
    );
    parts.push(
      el("h3", {}, "Memorization experiment cells, as they finish"),
      el(
        "table",
        { id: "memorization-cells" },
        el(
          "tr",
          {},
          ...["cell", "step", "epoch", "memorized", "mean NN distance", "convex residual"].map((
            h,
          ) => el("th", {}, h)),
        ),
        ...points.map((p) =>
          el(
            "tr",
            { "data-cell": p.cell, "data-step": p.step },
            el("td", {}, p.cell),
            el("td", { class: "num" }, p.step),
            el("td", { class: "num" }, fixed(p.epoch)),
            el(
              "td",
              { class: "num", "data-field": "memorized" },
              `${fixed(100 * p.memorized, 1)} %`,
            ),
            el("td", { class: "num" }, fixed(p.nearest, 4)),
            el("td", { class: "num" }, fixed(p.residual, 4)),
          )
        ),
      ),
      el("div", { id: "memorization-chart" }),
    );
  }
  if (state.memorization?.length) {
    const columns = Object.keys(state.memorization[0]).filter((k) =>
      typeof state.memorization[0][k] !== "object"
    );
    parts.push(
      el("h3", {}, "The memorization experiment (memorization.json)"),
      el(
        "table",
        { id: "memorization-experiment" },
        el("tr", {}, ...columns.map((c) => el("th", {}, c))),
        ...state.memorization.map((r) =>
          el(
            "tr",
            {},
            ...columns.map((c) =>
              el("td", {}, typeof r[c] === "number" ? fixed(r[c], 4) : String(r[c] ?? ""))
            ),
          )
        ),
      ),
    );
  }
  return parts;
}

const RENDER = {
  grid: gridView,
  table: tableView,
  chart: chartView,
  curves: curvesView,
  samples: samplesView,
  memorization: memorizationView,
};

/** What each view is drawn from: an event that changes none of it leaves the view as it is. */
const INPUTS = {
  grid: (s) => [s.cells, s.metrics],
  table: (s) => [s.table, s.differences, s.metrics, s.files],
  chart: (s) => [s.table, s.metrics],
  curves: (s) => s.cells.map((c) => [c.file, c.step, c.state, c.curve]),
  samples: (s) => s.samples,
  memorization: (s) => [s.samples, s.memorization, s.cells.map((c) => c.result)],
};
let drawnFrom = "";

function render() {
  const view = currentView();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("current", a.dataset.view === view);
  }
  if (!state) return;
  document.getElementById("dir").textContent = state.dir;
  showErrors(state.errors);
  const inputs = JSON.stringify([view, location.search, INPUTS[view](state)]);
  if (inputs === drawnFrom) return;
  drawnFrom = inputs;
  main.replaceChildren(...RENDER[view]());
  main.dataset.view = view;
}

document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a");
  if (!a || a.hasAttribute("download") || !a.getAttribute("href")?.startsWith("/")) return;
  const url = new URL(a.href);
  if (!VIEWS.includes(url.pathname.slice(1))) return;
  event.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  render();
});
addEventListener("popstate", render);

const source = new EventSource("/api/events");
source.addEventListener("state", (event) => {
  state = JSON.parse(event.data);
  document.getElementById("live").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  render();
});
source.addEventListener("error", () => {
  document.getElementById("live").textContent = "reconnecting";
});
render();
