// Progress for long work: a live line with items/s and ETA on a terminal, and plain log lines at
// a fixed interval otherwise (CI logs, pipes), so neither floods nor goes silent.

export interface ProgressOptions {
  readonly label: string;
  readonly total: number;
  /** Overrides terminal detection (tests). */
  readonly tty?: boolean;
  /** Seconds between plain log lines. */
  readonly logEvery?: number;
  readonly write?: (text: string) => void;
  readonly now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export class Progress {
  readonly #options: Required<ProgressOptions>;
  readonly #start: number;
  #done = 0;
  #lastDraw = -Infinity;

  constructor(options: ProgressOptions) {
    const encoder = new TextEncoder();
    this.#options = {
      tty: Deno.stderr.isTerminal(),
      logEvery: 5,
      write: (text) => Deno.stderr.writeSync(encoder.encode(text)),
      now: () => performance.now() / 1000,
      ...options,
    };
    this.#start = this.#options.now();
  }

  get done(): number {
    return this.#done;
  }

  /** Items per second so far. */
  rate(): number {
    const elapsed = this.#options.now() - this.#start;
    return elapsed > 0 ? this.#done / elapsed : 0;
  }

  line(): string {
    const { label, total } = this.#options;
    const rate = this.rate();
    const eta = rate > 0 ? Math.max(0, total - this.#done) / rate : Infinity;
    const pct = total > 0 ? ` (${((100 * this.#done) / total).toFixed(1)} %)` : "";
    return `${label} ${this.#done}/${total}${pct} ${rate.toFixed(1)} items/s ETA ${
      formatDuration(eta)
    }`;
  }

  tick(items: number): void {
    this.#done += items;
    const now = this.#options.now();
    const interval = this.#options.tty ? 0.1 : this.#options.logEvery;
    if (now - this.#lastDraw < interval) return;
    this.#lastDraw = now;
    this.#options.write(this.#options.tty ? `\r\x1b[2K${this.line()}` : `[sia] ${this.line()}\n`);
  }

  /** Final line, always written. */
  finish(note = "done"): void {
    const elapsed = this.#options.now() - this.#start;
    const text = `${this.#options.label} ${this.#done} items in ${formatDuration(elapsed)} (${
      this.rate().toFixed(1)
    } items/s), ${note}`;
    this.#options.write(this.#options.tty ? `\r\x1b[2K${text}\n` : `[sia] ${text}\n`);
  }
}
