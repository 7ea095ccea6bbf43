// Backpressure for a push-based RxJS graph: the source may run at most `window` batches ahead of
// the end of the graph. Each batch that leaves the last operator gives one credit back, so a slow
// sink (an async file write, a training step) slows the source and memory stays bounded by
// `window` batches, however long the stream.

import { Observable } from "rxjs";

export class Credits {
  #available: number;
  readonly #waiting: (() => void)[] = [];

  constructor(window: number) {
    this.#available = window;
  }

  take(): Promise<void> {
    if (this.#available > 0) {
      this.#available--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#available++;
  }
}

/** Emits the items of a lazy iterable one credit at a time; unsubscribing stops the iteration. */
export function paced<T>(items: Iterable<T>, credits: Credits): Observable<T> {
  return new Observable<T>((subscriber) => {
    let stopped = false;
    const iterator = items[Symbol.iterator]();
    (async () => {
      for (;;) {
        await credits.take();
        if (stopped) return;
        const step = iterator.next();
        if (step.done) break;
        subscriber.next(step.value);
      }
      subscriber.complete();
    })().catch((e) => subscriber.error(e));
    return () => {
      stopped = true;
      iterator.return?.();
    };
  });
}
