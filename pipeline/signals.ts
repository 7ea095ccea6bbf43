/**
 * Stop requests from outside: Ctrl-C (SIGINT) and SIGTERM mean the same thing. Schedulers
 * (Kubernetes, SLURM, systemd) stop a job with SIGTERM and then SIGKILL, so a command that only
 * listened for SIGINT would die at once under them and keep nothing; every command stops through
 * this one listener and keeps what it finished.
 */

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

export interface StopSignal {
  /** Resolves at the first SIGINT or SIGTERM. */
  stop: Promise<void>;
  /** Whether a signal has arrived. */
  stopped(): boolean;
  /** Removes the listeners (a second signal then ends the process as usual). */
  dispose(): void;
}

export function listenForStop(): StopSignal {
  let received = false;
  let resolve = () => {};
  const stop = new Promise<void>((r) => (resolve = r));
  const onSignal = () => {
    received = true;
    resolve();
  };
  for (const signal of SIGNALS) Deno.addSignalListener(signal, onSignal);
  return {
    stop,
    stopped: () => received,
    dispose: () => {
      for (const signal of SIGNALS) Deno.removeSignalListener(signal, onSignal);
    },
  };
}
