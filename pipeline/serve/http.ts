// What sia's HTTP servers share (the stream server, stream.ts, and the results view,
// pipeline/view/server.ts): loopback by default, a bearer token for any other host, 401 with one
// line without it, one-line text errors, and a listen that reports its address (tests pass port
// 0) or fails with one line naming the port.

import { SiaError } from "../../core/errors.ts";

export interface ListenOptions {
  readonly hostname: string;
  readonly port: number;
  /** Bearer token every request must carry; null: none asked (loopback only). */
  readonly token: string | null;
  /**
   * For browsers, which cannot send a header on a page load or an EventSource: the token may also
   * come as this cookie, which `?token=TOKEN` on any URL sets (then redirects without it).
   */
  readonly cookie?: string;
  /** Called once the server listens, with its address. */
  readonly onListen?: (url: string) => void;
}

export function textResponse(
  status: number,
  line: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${line}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

export function jsonResponse(value: unknown): Response {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    headers: { "content-type": "application/json" },
  });
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/;

export function isLoopback(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

/** Compares two strings in time that depends on their lengths only. */
function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Throws (exit 2) when a non-loopback host is asked for without a token. */
export function checkHost(options: ListenOptions): void {
  if (!isLoopback(options.hostname) && !options.token) {
    throw new SiaError(
      `--host ${options.hostname}: a non-loopback host needs a bearer token (pass --token-file F)`,
      2,
    );
  }
}

/** The 401 for a request without the right bearer token; null when it may pass. */
export function unauthorized(
  request: Request,
  token: string | null,
  cookie?: string,
): Response | null {
  if (token === null) return null;
  const given = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1] ??
    (cookie
      ? new RegExp(`(?:^|;\\s*)${cookie}=([^;]+)`).exec(request.headers.get("cookie") ?? "")?.[1]
      : undefined);
  if (given !== undefined && sameToken(given, token)) return null;
  return textResponse(401, "unauthorized: missing or wrong bearer token", {
    "www-authenticate": 'Bearer realm="sia"',
  });
}

/** `?token=TOKEN` with the right token: set the cookie and redirect to the URL without it. */
function login(request: Request, options: ListenOptions): Response | null {
  if (!options.cookie || options.token === null) return null;
  const url = new URL(request.url);
  const given = url.searchParams.get("token");
  if (given === null || !sameToken(given, options.token)) return null;
  url.searchParams.delete("token");
  return new Response(null, {
    status: 303,
    headers: {
      location: url.pathname + url.search,
      "set-cookie": `${options.cookie}=${given}; HttpOnly; SameSite=Strict; Path=/`,
    },
  });
}

/** Deno.serve behind the token check; a port that cannot be bound is one line. */
export function listen(
  options: ListenOptions,
  handle: (request: Request) => Response | Promise<Response>,
): Deno.HttpServer {
  checkHost(options);
  try {
    return Deno.serve(
      {
        hostname: options.hostname,
        port: options.port,
        onListen: ({ hostname, port }) => {
          const host = hostname.includes(":") ? `[${hostname}]` : hostname;
          options.onListen?.(`http://${host}:${port}`);
        },
        onError: (e) => textResponse(500, `internal error: ${e instanceof Error ? e.message : e}`),
      },
      (request) =>
        login(request, options) ?? unauthorized(request, options.token, options.cookie) ??
          handle(request),
    );
  } catch (e) {
    throw new SiaError(
      `--port ${options.port}: cannot listen on ${options.hostname} (${
        e instanceof Error ? e.message : e
      })`,
    );
  }
}
