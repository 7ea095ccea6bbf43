// A private redis-server for one test: a free loopback port, a temporary directory (its
// append-only file lives there), stopped and removed by the test. Skips nothing: redis-server
// is a test dependency (.ci/run installs it).

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string;
  /** Stops the server gracefully (SIGTERM: the append-only file is flushed) and waits. */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitForPort(port: number, up: boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      if (up) return;
    } catch {
      if (!up) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`redis-server on port ${port} did not come ${up ? "up" : "down"}`);
}

export async function startRedis(
  options: { password?: string; appendonly?: boolean } = {},
): Promise<RedisServer> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "sia-redis-" });
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    options.appendonly ? "yes" : "no",
    "--appendfsync",
    "always",
    "--logfile",
    `${dir}/redis.log`,
    ...(options.password ? ["--requirepass", options.password] : []),
  ];
  let child: Deno.ChildProcess | null = null;
  const server: RedisServer = {
    port,
    dir,
    url: `redis://${options.password ? `:${options.password}@` : ""}127.0.0.1:${port}`,
    async start() {
      child = new Deno.Command("redis-server", { args, stdout: "null", stderr: "null" }).spawn();
      await waitForPort(port, true);
    },
    async stop() {
      if (!child) return;
      child.kill("SIGTERM");
      await child.status;
      child = null;
      await waitForPort(port, false);
    },
    async close() {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
  await server.start();
  return server;
}
