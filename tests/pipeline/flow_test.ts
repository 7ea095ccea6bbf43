// Backpressure: Credits hands out at most `window` permits, paced() pulls one item per permit, so
// a slow consumer at the end of the graph bounds how far the source runs ahead; unsubscribing
// stops (and finalizes) the iteration; errors from the iterable reach the subscriber.

import assert from "node:assert/strict";
import { concatMap, lastValueFrom, take, tap, toArray } from "rxjs";
import { Credits, paced } from "../../pipeline/flow.ts";

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A few macrotask turns, so any pending microtask chain has run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await delay(1);
}

/** A counting source: records how many items were pulled and whether `finally` ran. */
function instrumented(count: number) {
  const state = { pulled: 0, finalized: false };
  function* items(): Generator<number> {
    try {
      for (let i = 0; i < count; i++) {
        state.pulled++;
        yield i;
      }
    } finally {
      state.finalized = true;
    }
  }
  return { state, items: items() };
}

// ---------------------------------------------------------------------------------------------
// Credits

Deno.test("Credits grants `window` permits at once, then one per give, first come first served", async () => {
  const credits = new Credits(2);
  const order: string[] = [];
  await credits.take();
  await credits.take();
  const a = credits.take().then(() => order.push("a"));
  const b = credits.take().then(() => order.push("b"));
  await settle();
  assert.deepEqual(order, [], "no permit left: both wait");
  credits.give();
  await a;
  await settle();
  assert.deepEqual(order, ["a"], "one give releases exactly one waiter, the first");
  credits.give();
  await b;
  assert.deepEqual(order, ["a", "b"]);
  // A give with nobody waiting is banked for the next take.
  credits.give();
  let immediate = false;
  credits.take().then(() => (immediate = true));
  await Promise.resolve();
  assert.ok(immediate);
});

// ---------------------------------------------------------------------------------------------
// paced

Deno.test("paced with a slow consumer never pulls more than consumed + window", async () => {
  const window = 2;
  const count = 20;
  const credits = new Credits(window);
  const { state, items } = instrumented(count);
  let consumed = 0;
  let maxAhead = 0;
  // Checked at every pull, from inside the consumer as well.
  const check = () => {
    const ahead = state.pulled - consumed;
    maxAhead = Math.max(maxAhead, ahead);
    assert.ok(ahead <= window, `pulled ${state.pulled} with ${consumed} consumed`);
  };
  const seen = await lastValueFrom(
    paced(items, credits).pipe(
      tap(check),
      concatMap(async (x) => {
        check();
        await delay(3);
        return x;
      }),
      tap(() => {
        consumed++;
        credits.give();
        check();
      }),
      toArray(),
    ),
  );
  assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i));
  assert.equal(state.pulled, count);
  assert.equal(consumed, count);
  // The window is used: the source does run ahead of the slow consumer, by exactly the window.
  assert.equal(maxAhead, window);
  assert.ok(state.finalized);
});

Deno.test("paced with window 1 alternates pull and consume", async () => {
  const credits = new Credits(1);
  const { state, items } = instrumented(5);
  const log: string[] = [];
  const wrapped = (function* () {
    for (const x of items) {
      log.push(`pull ${x}`);
      yield x;
    }
  })();
  await lastValueFrom(
    paced(wrapped, credits).pipe(
      concatMap(async (x) => {
        await delay(1);
        log.push(`done ${x}`);
        credits.give();
        return x;
      }),
      toArray(),
    ),
  );
  assert.equal(state.pulled, 5);
  assert.deepEqual(log, [0, 1, 2, 3, 4].flatMap((i) => [`pull ${i}`, `done ${i}`]));
});

Deno.test("paced without credits given back stops after `window` items", async () => {
  const credits = new Credits(3);
  const { state, items } = instrumented(100);
  const got: number[] = [];
  const subscription = paced(items, credits).subscribe((x) => got.push(x));
  await settle();
  assert.deepEqual(got, [0, 1, 2]);
  assert.equal(state.pulled, 3);
  credits.give();
  await settle();
  assert.deepEqual(got, [0, 1, 2, 3]);
  assert.equal(state.pulled, 4);
  subscription.unsubscribe();
});

Deno.test("unsubscribing while waiting for credits finalizes the iterable and pulls no more", async () => {
  const credits = new Credits(2);
  const { state, items } = instrumented(100);
  const got: number[] = [];
  let completed = false;
  const subscription = paced(items, credits).subscribe({
    next: (x) => got.push(x),
    complete: () => (completed = true),
  });
  await settle();
  assert.equal(state.pulled, 2);
  assert.equal(state.finalized, false);
  subscription.unsubscribe();
  assert.equal(state.finalized, true, "the generator's finally block ran");
  for (let i = 0; i < 5; i++) credits.give();
  await settle();
  assert.equal(state.pulled, 2, "no item pulled after unsubscribing");
  assert.deepEqual(got, [0, 1]);
  assert.equal(completed, false);
});

Deno.test("take(n) downstream stops the iteration after n items", async () => {
  const credits = new Credits(2);
  const { state, items } = instrumented(1000);
  const got = await lastValueFrom(
    paced(items, credits).pipe(
      concatMap(async (x) => {
        await delay(1);
        return x;
      }),
      tap(() => credits.give()),
      take(3),
      toArray(),
    ),
  );
  assert.deepEqual(got, [0, 1, 2]);
  await settle();
  assert.ok(state.finalized, "the generator's finally block ran");
  // At most the window beyond what take() let through was pulled, and nothing after.
  const pulled = state.pulled;
  assert.ok(pulled >= 3 && pulled <= 3 + 2, `pulled ${pulled}`);
  for (let i = 0; i < 5; i++) credits.give();
  await settle();
  assert.equal(state.pulled, pulled);
});

Deno.test("an error thrown by the iterable reaches the subscriber's error callback", async () => {
  const credits = new Credits(2);
  const boom = new Error("boom at 3");
  let finalized = false;
  function* failing(): Generator<number> {
    try {
      for (let i = 0;; i++) {
        if (i === 3) throw boom;
        yield i;
      }
    } finally {
      finalized = true;
    }
  }
  const got: number[] = [];
  const error = await new Promise<unknown>((resolve, reject) => {
    paced(failing(), credits).subscribe({
      next: (x) => {
        got.push(x);
        credits.give();
      },
      error: resolve,
      complete: () => reject(new Error("completed instead of failing")),
    });
  });
  assert.equal(error, boom);
  assert.deepEqual(got, [0, 1, 2]);
  assert.ok(finalized);
});

Deno.test("an error from the iterable rejects lastValueFrom through the graph", async () => {
  const credits = new Credits(2);
  const iterable: Iterable<number> = {
    [Symbol.iterator]: () => ({
      next: () => {
        throw new RangeError("bad source");
      },
    }),
  };
  await assert.rejects(
    lastValueFrom(paced(iterable, credits).pipe(tap(() => credits.give()))),
    RangeError,
  );
});

Deno.test("paced on an empty iterable completes with nothing", async () => {
  const credits = new Credits(2);
  const { state, items } = instrumented(0);
  const got = await lastValueFrom(paced(items, credits).pipe(toArray()));
  assert.deepEqual(got, []);
  assert.equal(state.pulled, 0);
  assert.ok(state.finalized);
});
