// A private redis-server for one test: a free loopback port, a temporary directory (its
// append-only file lives there), stopped and removed by the test; with `tls`, TLS only, on
// certificates of a throwaway CA made there with openssl, clients verified. Skips nothing:
// redis-server and openssl are test dependencies (.ci/run installs them).

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  /** redis://[:password@]127.0.0.1:port (rediss:// with tls) */
  readonly url: string;
  /** With tls: the PEM files of the CA and of a client certificate it signed. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
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

/** Runs openssl in dir with a space-separated argument line. */
async function openssl(dir: string, line: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args: line.split(" "),
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl ${line}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A CA, and a server certificate for 127.0.0.1 and a client certificate signed by it. */
async function certificates(dir: string) {
  const key = "-newkey rsa:2048 -nodes -days 2";
  await openssl(dir, `req -x509 ${key} -subj /CN=sia-test-ca -keyout ca.key -out ca.pem`);
  await Deno.writeTextFile(`${dir}/san.cnf`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const who of ["server", "client"]) {
    await openssl(dir, `req ${key} -subj /CN=sia-test-${who} -keyout ${who}.key -out ${who}.csr`);
    await openssl(
      dir,
      `x509 -req -in ${who}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ` +
        `-extfile san.cnf -out ${who}.pem`,
    );
  }
  return { ca: `${dir}/ca.pem`, cert: `${dir}/client.pem`, key: `${dir}/client.key` };
}

export async function startRedis(
  options: { password?: string; appendonly?: boolean; tls?: boolean } = {},
): Promise<RedisServer> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "sia-redis-" });
  const tls = options.tls ? await certificates(dir) : undefined;
  const args = [
    ...(tls
      ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        `${dir}/server.pem`,
        "--tls-key-file",
        `${dir}/server.key`,
        "--tls-ca-cert-file",
        tls.ca,
        "--tls-auth-clients",
        "yes",
      ]
      : ["--port", String(port)]),
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
    url: `${tls ? "rediss" : "redis"}://${
      options.password ? `:${options.password}@` : ""
    }127.0.0.1:${port}`,
    tls,
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
