// Artifacts: values one cell makes and others need (Table 3's pool of a seed, a trained flow),
// made once over all workers. An artifact is a cell of its own: the first worker to need it takes
// its lock (SET NX with an expiry its heartbeat renews), makes it, and stores its bytes by
// content hash, in Redis up to queue.inlineBytes and above that as a file named by the hash in
// queue.shared (a directory every worker mounts); the others wait for the index to name the hash
// and read it. A worker that dies while making one lets its lock expire after the visibility
// timeout, and the next worker that needs it makes it.

import { atomicWrite } from "../../core/files.ts";
import { SiaError } from "../../core/errors.ts";
import type { Codec } from "../experiments/experiment.ts";
import type { Joined, QueueKeys } from "./protocol.ts";
import { VISIBILITY_HEARTBEATS } from "./protocol.ts";
import { retrying } from "./redis.ts";
import type { Redis } from "./redis.ts";
import { RESP_TYPES } from "redis";
import { Buffer } from "node:buffer";

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Artifacts {
  readonly #client: Redis;
  readonly #binary;
  readonly #keys: QueueKeys;
  readonly #run: string;
  readonly #options: Pick<Joined, "heartbeatMs" | "inlineBytes" | "shared">;
  readonly #worker: string;
  readonly #log: (line: string) => void;
  /** The locks this worker holds: released when it stops, so nobody waits for a dead maker. */
  readonly #held = new Set<string>();
  /** Lock requests in flight, which releaseAll waits for (a lock granted after it is released too). */
  readonly #asking = new Set<Promise<unknown>>();
  #closed = false;

  constructor(
    client: Redis,
    keys: QueueKeys,
    run: string,
    options: Pick<Joined, "heartbeatMs" | "inlineBytes" | "shared">,
    worker: string,
    log: (line: string) => void,
  ) {
    this.#client = client;
    // Blobs come back as bytes, not as text.
    this.#binary = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    this.#keys = keys;
    this.#run = run;
    this.#options = options;
    this.#worker = worker;
    this.#log = log;
  }

  #call<T>(command: () => Promise<T>): Promise<T> {
    return retrying(this.#client, command);
  }

  /** The artifact `id` of this run: read when stored, else made here or awaited from its maker. */
  async obtain<T>(
    id: string,
    make: () => Promise<T>,
    codec: Codec<T>,
    stop: Promise<void>,
  ): Promise<T> {
    const index = this.#keys.artifact(this.#run, id);
    const lock = this.#keys.making(this.#run, id);
    const lockMs = VISIBILITY_HEARTBEATS * this.#options.heartbeatMs;
    let stopped = false;
    stop.then(() => (stopped = true));
    let told = false;
    while (!stopped && !this.#closed) {
      const sha = await this.#call(() => this.#client.get(index));
      if (sha) return codec.decode(await this.#read(id, sha));
      if (this.#closed) break;
      const asking = this.#call(() =>
        this.#client.set(lock, this.#worker, { NX: true, PX: lockMs })
      ).then((granted) => {
        if (granted) this.#held.add(lock);
        return granted;
      });
      this.#asking.add(asking);
      const mine = await asking.finally(() => this.#asking.delete(asking));
      if (mine && this.#closed) break;
      if (mine) {
        const renew = setInterval(() => {
          this.#client.pExpire(lock, lockMs).catch(() => {});
        }, this.#options.heartbeatMs);
        try {
          const value = await make();
          const bytes = codec.encode(value);
          const hash = await this.#write(id, bytes);
          await this.#call(() => this.#client.set(index, hash));
          this.#log(
            `[sia] artifact ${id}: stored (${bytes.length} bytes, sha-256 ${hash.slice(0, 16)})`,
          );
          return value;
        } finally {
          clearInterval(renew);
          await this.#release(lock);
        }
      }
      if (!told) {
        const maker = await this.#call(() => this.#client.get(lock));
        this.#log(`[sia] artifact ${id}: waiting for ${maker ?? "its maker"}`);
      }
      told = true;
      await sleep(Math.min(1000, this.#options.heartbeatMs / 2));
    }
    throw new SiaError(`stopped while waiting for artifact ${id}`, 130);
  }

  async #release(lock: string): Promise<void> {
    if (!this.#held.delete(lock)) return;
    if (await this.#call(() => this.#client.get(lock)) === this.#worker) {
      await this.#call(() => this.#client.del(lock));
    }
  }

  /** Gives up every artifact being made here and takes no more (the worker is stopping). */
  async releaseAll(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#asking]);
    for (const lock of [...this.#held]) await this.#release(lock);
  }

  async #write(id: string, bytes: Uint8Array): Promise<string> {
    const hash = await sha256(bytes);
    if (bytes.length <= this.#options.inlineBytes) {
      await this.#call(() =>
        this.#client.set(
          this.#keys.blob(hash),
          Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        )
      );
      return hash;
    }
    if (!this.#options.shared) {
      throw new SiaError(
        `artifact ${id} is ${bytes.length} bytes, over queue.inlineBytes ` +
          `(${this.#options.inlineBytes}), and queue.shared names no shared directory`,
      );
    }
    await atomicWrite(`${this.#options.shared.replace(/\/+$/, "")}/${hash}`, bytes);
    return hash;
  }

  async #read(id: string, hash: string): Promise<Uint8Array> {
    const inline = await this.#call(() => this.#binary.get(this.#keys.blob(hash)));
    let bytes: Uint8Array;
    const path = `${this.#options.shared.replace(/\/+$/, "")}/${hash}`;
    if (inline) bytes = new Uint8Array(inline);
    else {
      try {
        bytes = await Deno.readFile(path);
      } catch {
        throw new SiaError(
          `artifact ${id}: ${path} is missing here (queue.shared must be a directory every worker shares)`,
        );
      }
    }
    if (await sha256(bytes) !== hash) {
      throw new SiaError(`artifact ${id}: its bytes do not match their hash ${hash}`);
    }
    return bytes;
  }
}
