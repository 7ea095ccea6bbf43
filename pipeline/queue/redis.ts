// The Redis connection the queue runs on: parse and check a --redis URL, connect with a one-line
// error for every way that fails (bad URL, refused, wrong password), reconnect for a while when an
// established connection drops (a Redis restart), and never print the password: every message
// names the server by its redacted URL.

import { createClient, ErrorReply } from "redis";
import { keyError, SiaError } from "../../core/errors.ts";

export type Redis = ReturnType<typeof createClient>;

export interface RedisOptions {
  /** How long a dropped connection is retried before the command fails (a Redis restart). */
  readonly reconnectSeconds?: number;
  readonly log?: (line: string) => void;
}

/** The URL with any password (and user) replaced by "***", for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password || parsed.username) {
      parsed.username = "***";
      parsed.password = "";
    }
    return parsed.href.replace(/\/$/, "");
  } catch {
    // Unparseable: keep only the scheme, since anything after it may be a secret.
    return `${/^[a-z]+:/i.exec(url)?.[0] ?? ""}//…`;
  }
}

/** Checks the URL's form; a message about it never includes it whole. */
export function checkRedisUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw keyError(
      "--redis",
      `not a URL (${
        redactUrl(url)
      }); expected redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://...`,
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw keyError("--redis", `expected a redis:// or rediss:// URL, got ${parsed.protocol}//...`);
  }
  if (!parsed.hostname) throw keyError("--redis", `no host in ${redactUrl(url)}`);
}

function isAuthError(e: unknown): boolean {
  return e instanceof Error && /WRONGPASS|NOAUTH|invalid (username-)?password/i.test(e.message);
}

/** A connection error (the socket), as opposed to Redis answering with an error. */
export function isConnectionError(e: unknown): boolean {
  return e instanceof Error && !(e instanceof ErrorReply);
}

/** Environment variables naming the PEM files of a rediss:// connection (README, "Security"). */
export const TLS_FILES = {
  ca: "SIA_REDIS_CA",
  cert: "SIA_REDIS_CERT",
  key: "SIA_REDIS_KEY",
} as const;

/**
 * The TLS files a rediss:// URL connects with: a private CA to trust (besides the system's and
 * DENO_CERT's), and a client certificate and key for a server that verifies clients
 * (redis-server's `tls-auth-clients yes`, its default). Each is read once, a missing file is one
 * line naming the variable.
 */
function tlsFiles(url: string): Record<string, string> {
  if (!url.startsWith("rediss:")) return {};
  const files: Record<string, string> = {};
  for (const [option, variable] of Object.entries(TLS_FILES)) {
    const path = Deno.env.get(variable);
    if (!path) continue;
    try {
      files[option] = Deno.readTextFileSync(path);
    } catch (e) {
      throw new SiaError(`${variable}=${path}: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (!files.cert !== !files.key) {
    throw new SiaError(`${TLS_FILES.cert} and ${TLS_FILES.key} go together: set both or neither`);
  }
  return files;
}

/** A certificate problem: say which file would solve it. */
function tlsHint(message: string): string {
  if (/certificate ?required/i.test(message)) {
    return ` (the server verifies clients: set ${TLS_FILES.cert} and ${TLS_FILES.key})`;
  }
  return /certificate|self[- ]signed|unable to verify|CERT_/i.test(message)
    ? ` (a private CA: set ${TLS_FILES.ca}=CA.pem)`
    : "";
}

/** Connects, or throws one line naming the redacted URL and the problem. */
export async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  checkRedisUrl(url);
  const shown = redactUrl(url);
  const reconnectMs = (options.reconnectSeconds ?? 60) * 1000;
  let ready = false;
  let lostAt = 0;
  const tls = tlsFiles(url);
  const client = createClient({
    url,
    socket: {
      ...(Object.keys(tls).length > 0 ? { tls: true as const, ...tls } : {}),
      // Before the first connection: fail fast (a wrong host or port is a user's mistake). After
      // it: keep trying for reconnectSeconds, so a restarted Redis picks up where it was.
      reconnectStrategy: (retries, cause) => {
        // A refused password is final; so is a server not there at the start.
        if (isAuthError(cause) || (!ready && retries >= 2)) return cause;
        if (!ready) return 200;
        lostAt ||= Date.now();
        if (Date.now() - lostAt > reconnectMs) {
          return new Error(`${shown}: connection lost for over ${reconnectMs / 1000} s`);
        }
        return Math.min(100 * 2 ** retries, 1000);
      },
    },
  });
  let reported = false;
  client.on("error", () => {
    // Each failed attempt emits here; one line per outage is enough.
    if (ready && !reported) options.log?.(`[sia] ${shown}: connection lost, reconnecting`);
    reported = true;
  });
  client.on("ready", () => {
    if (reported) options.log?.(`[sia] ${shown}: reconnected`);
    ready = true;
    lostAt = 0;
    reported = false;
  });
  // A TLS alert after the handshake (a server that wants a client certificate) surfaces in Deno's
  // node:tls as an uncaught error, not on the client: while connecting it becomes the failure.
  let refused: (e: unknown) => void = () => {};
  const alert = new Promise<never>((_, reject) => refused = reject);
  const onUncaught = (event: ErrorEvent) => {
    if (!/alert|certificate|tls/i.test(String(event.error?.message ?? event.message))) return;
    event.preventDefault();
    refused(event.error);
  };
  globalThis.addEventListener("error", onUncaught);
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        // Without a password the connection opens and the first command is refused: ask now.
        await client.ping();
      })(),
      alert,
    ]);
  } catch (e) {
    if (client.isOpen) client.destroy();
    if (e instanceof SiaError) throw e;
    if (isAuthError(e)) {
      throw new SiaError(`${shown}: authentication failed (wrong or missing password)`);
    }
    const message = e instanceof Error ? e.message : String(e);
    throw new SiaError(
      `${shown}: cannot connect (${message.replaceAll(url, shown)})${tlsHint(message)}`,
    );
  } finally {
    globalThis.removeEventListener("error", onUncaught);
  }
  return client;
}

/**
 * Runs a command, retrying it while the connection is down (a Redis restart): each command the
 * queue sends is safe to repeat (see protocol.ts), so a retry after a lost reply changes nothing.
 */
export async function retrying<T>(client: Redis, command: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await command();
    } catch (e) {
      if (!isConnectionError(e) || e instanceof SiaError) throw e;
      if (!client.isOpen) {
        throw new SiaError(`redis: connection closed (${e instanceof Error ? e.message : e})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** What XREAD and XREADGROUP answer, as the client gives it (its own type is too loose to use). */
export type StreamReply =
  | { name: string; messages: { id: string; message: Record<string, string> }[] }[]
  | null;
