// The results view: a page for a results directory that fills in while a run goes. The server
// polls the directory (readResults, every POLL_MS), and pushes the whole view to every open page
// as a Server-Sent Event when it changed; the page (web/) renders it without reloading. Views have
// stable URLs (/grid, /table, /chart, /curves, /samples, /memorization): each is the same page,
// which draws the view its path names. Charts are Vega-Lite, served from the project's own
// node_modules (no CDN). Loopback by default; another host needs the token (serve/http.ts). Bad
// input (no directory, a corrupt cell file) is a line on the page and on stderr, and the server
// keeps serving.

import { jsonResponse, listen, textResponse } from "../serve/http.ts";
import type { ListenOptions } from "../serve/http.ts";
import { ParsedFiles, readCurve, readResults, tableCsv } from "./results.ts";
import type { ResultsView } from "./results.ts";
import { readSampleSet } from "./samples.ts";
import type { SampleSet } from "./samples.ts";

export const POLL_MS = 400;
/** Polls without a change between keep-alive comments on the event streams (about 15 s). */
const KEEPALIVE_POLLS = 38;
export const VIEWS = ["grid", "table", "chart", "curves", "samples", "memorization"] as const;

const WEB = new URL("../../web/", import.meta.url);
const NODE_MODULES = new URL("../../node_modules/", import.meta.url);
/** The browser builds of the chart libraries (UMD bundles: vega, then vega-lite, then embed). */
const VENDOR: Record<string, string> = {
  "vega.min.js": "vega/build/vega.min.js",
  "vega-lite.min.js": "vega-lite/build/vega-lite.min.js",
  "vega-embed.min.js": "vega-embed/build/vega-embed.min.js",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  json: "application/json",
};

export interface ViewOptions extends ListenOptions {
  readonly log: (line: string) => void;
  /** Resolves to stop the server (Ctrl-C). */
  readonly stop: Promise<void>;
  /** Started beside a run (pipeline --view), which makes the directory. */
  readonly besideRun?: boolean;
}

async function file(path: URL | string, type: string, missing: string): Promise<Response> {
  try {
    return new Response(await Deno.readFile(path), {
      headers: { "content-type": type, "cache-control": "no-cache" },
    });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return textResponse(404, missing);
    throw e;
  }
}

/** Sends to every open page; a page gone mid-send is dropped. */
function broadcast(clients: Set<ReadableStreamDefaultController<Uint8Array>>, bytes: Uint8Array) {
  for (const c of clients) {
    try {
      c.enqueue(bytes);
    } catch {
      clients.delete(c);
    }
  }
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Serves the view of `dir` until `options.stop` resolves; returns when the server has closed. */
export async function serveView(dir: string, options: ViewOptions): Promise<void> {
  dir = dir.replace(/\/+$/, "") || "/";
  const encoder = new TextEncoder();
  const clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const files = new ParsedFiles();
  const samples = new Map<string, { version: number; value: Promise<SampleSet> }>();
  let current: ResultsView = await readResults(dir, files);
  let currentText = JSON.stringify(current);
  // Each problem is logged once while it lasts (the page shows it on every update).
  let logged = new Set<string>();
  const logErrors = () => {
    for (const e of current.errors) {
      // Beside a run, a directory not made yet is expected, not a problem to report.
      if (logged.has(e) || (options.besideRun && e.startsWith(`${dir}: no such`))) continue;
      options.log(`sia: view: ${e}`);
    }
    logged = new Set(current.errors);
  };
  logErrors();
  let polling = true;
  let idle = 0;
  const keepalive = encoder.encode(": keep-alive\n\n");
  const poll = async () => {
    while (polling) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!polling) break;
      try {
        const next = await readResults(dir, files);
        const text = JSON.stringify(next);
        if (text === currentText) {
          // A comment now and then keeps idle connections open through proxies.
          if (++idle % KEEPALIVE_POLLS === 0) broadcast(clients, keepalive);
          continue;
        }
        idle = 0;
        current = next;
        currentText = text;
        logErrors();
        const event = encoder.encode(`event: state\ndata: ${text}\n\n`);
        broadcast(clients, event);
      } catch (e) {
        options.log(`sia: view: ${dir}: ${message(e)}`);
      }
    }
  };
  const poller = poll();

  function events(): Response {
    let self: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        self = controller;
        clients.add(controller);
        controller.enqueue(encoder.encode(`retry: 1000\nevent: state\ndata: ${currentText}\n\n`));
      },
      cancel() {
        clients.delete(self);
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      },
    });
  }

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method !== "GET") {
      return textResponse(405, `${request.method} ${path}: only GET`, { allow: "GET" });
    }
    try {
      if (path === "/" || VIEWS.some((v) => path === `/${v}`)) {
        return await file(new URL("index.html", WEB), TYPES.html, "web/index.html: missing");
      }
      const web = /^\/web\/([a-z0-9_-]+\.(js|css))$/.exec(path);
      if (web) return await file(new URL(web[1], WEB), TYPES[web[2]], `${path}: not found`);
      const vendor = /^\/vendor\/([a-z.-]+)$/.exec(path)?.[1];
      if (vendor && VENDOR[vendor]) {
        return await file(
          new URL(VENDOR[vendor], NODE_MODULES),
          TYPES.js,
          `node_modules/${VENDOR[vendor]}: missing (run "deno install")`,
        );
      }
      if (path === "/api/state") return jsonResponse(current);
      if (path === "/api/events") return events();
      if (path === "/api/table.csv") {
        return new Response(tableCsv(current), {
          headers: {
            "content-type": TYPES.csv,
            "content-disposition": `attachment; filename="${current.experiment ?? "results"}.csv"`,
          },
        });
      }
      if (path === "/api/curve") {
        const cell = url.searchParams.get("cell") ?? "";
        const curve = await readCurve(dir, cell);
        return curve ? jsonResponse(curve) : textResponse(404, `${cell}: no curve for this cell`);
      }
      if (path === "/api/samples") {
        const name = url.searchParams.get("set") ?? "";
        if (!current.samples.some((s) => s.name === name)) {
          return textResponse(404, `${name}: no such sample set in ${dir}`);
        }
        const info = current.samples.find((s) => s.name === name)!;
        // One read per version of a set: a page load does not reread the shard.
        let set = samples.get(name);
        if (set?.version !== info.version) {
          set = { version: info.version, value: readSampleSet(dir, name) };
          samples.set(name, set);
        }
        return jsonResponse(await set.value);
      }
      const report = /^\/files\/([A-Za-z0-9_.-]+\.(csv|md|json))$/.exec(path);
      if (report && current.files.includes(report[1])) {
        return await file(`${dir}/${report[1]}`, TYPES[report[2]], `${report[1]}: gone`);
      }
      return textResponse(
        404,
        `${path}: no such page (views: ${VIEWS.map((v) => `/${v}`).join(", ")})`,
      );
    } catch (e) {
      options.log(`sia: view: ${path}: ${message(e)}`);
      return textResponse(400, message(e));
    }
  }

  let server: Deno.HttpServer;
  try {
    // A browser cannot send the token as a header: ?token= sets it as a cookie (serve/http.ts).
    server = listen({ ...options, cookie: "sia_token" }, handle);
  } catch (e) {
    polling = false;
    await poller;
    throw e;
  }
  await options.stop;
  polling = false;
  // Open event streams would keep shutdown waiting: end them first.
  for (const c of clients) {
    try {
      c.close();
    } catch {
      // Already closed by the page.
    }
  }
  clients.clear();
  await poller;
  await server.shutdown();
}

export interface StartedView {
  readonly url: string;
  /** Resolves when the server has closed (after `options.stop`). */
  readonly closed: Promise<void>;
}

/** serveView, resolved once it listens (so a run beside it starts only then) or rejected. */
export function startView(
  dir: string,
  options: Omit<ViewOptions, "onListen">,
): Promise<StartedView> {
  return new Promise((resolve, reject) => {
    const closed: Promise<void> = serveView(dir, {
      ...options,
      onListen: (url) => resolve({ url, closed }),
    });
    closed.catch(reject);
  });
}
