// Progress reporting with an injected clock and writer: plain log lines at most once per logEvery
// seconds with the right rate and ETA, a \r-redrawn line on a terminal, and formatDuration.

import assert from "node:assert/strict";
import { formatDuration, Progress } from "../../pipeline/progress.ts";

/** A fake clock and a capturing writer. */
function harness(options: { tty: boolean; logEvery?: number; total?: number; label?: string }) {
  const clock = { t: 100 };
  const written: string[] = [];
  const progress = new Progress({
    label: options.label ?? "generate",
    total: options.total ?? 1000,
    tty: options.tty,
    logEvery: options.logEvery,
    write: (text) => written.push(text),
    now: () => clock.t,
  });
  return { clock, written, progress };
}

Deno.test("formatDuration: m:ss below an hour, h:mm:ss above, ? for non-finite", () => {
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(65), "1:05");
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(5), "0:05");
  assert.equal(formatDuration(59.4), "0:59");
  assert.equal(formatDuration(59.6), "1:00");
  assert.equal(formatDuration(3599), "59:59");
  assert.equal(formatDuration(3600), "1:00:00");
  assert.equal(formatDuration(36000 + 60 + 1), "10:01:01");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatDuration(NaN), "?");
});

Deno.test("non-TTY: at most one line per logEvery seconds", () => {
  const { clock, written, progress } = harness({ tty: false, logEvery: 5 });
  // Tick every 0.5 s for 30 s: 60 ticks.
  const times: number[] = [];
  for (let i = 1; i <= 60; i++) {
    clock.t = 100 + i * 0.5;
    const before = written.length;
    progress.tick(10);
    if (written.length > before) times.push(clock.t - 100);
  }
  // First tick always writes, then one line each time 5 s have passed since the last one.
  assert.deepEqual(times, [0.5, 5.5, 10.5, 15.5, 20.5, 25.5]);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 5);
  for (const line of written) {
    assert.ok(line.startsWith("[sia] generate "), JSON.stringify(line));
    assert.ok(line.endsWith("\n"));
    assert.ok(!line.includes("\r"));
    assert.equal(line.split("\n").length, 2, "exactly one line per write");
  }
  assert.equal(progress.done, 600);
});

Deno.test("non-TTY lines carry the right count, percentage, rate and ETA", () => {
  const { clock, written, progress } = harness({ tty: false, logEvery: 10, total: 1000 });
  clock.t = 102; // 2 s in
  progress.tick(50); // 25 items/s, 950 left: ETA 38 s
  assert.deepEqual(written, ["[sia] generate 50/1000 (5.0 %) 25.0 items/s ETA 0:38\n"]);
  clock.t = 105;
  progress.tick(100); // suppressed: 3 s since the last line
  assert.equal(written.length, 1);
  clock.t = 112; // 12 s in, 250 done: 20.8333 items/s, 750 left: ETA 36 s
  progress.tick(100);
  assert.equal(written.length, 2);
  assert.equal(written[1], "[sia] generate 250/1000 (25.0 %) 20.8 items/s ETA 0:36\n");
  assert.equal(progress.rate(), 250 / 12);
});

Deno.test("non-TTY: ETA over an hour uses h:mm:ss", () => {
  const { clock, written, progress } = harness({ tty: false, total: 100_000 });
  clock.t = 110; // 10 s for 200 items: 20 items/s, 99,800 left: 4990 s = 1:23:10
  progress.tick(200);
  assert.equal(written[0], "[sia] generate 200/100000 (0.2 %) 20.0 items/s ETA 1:23:10\n");
});

Deno.test("before any time passes the rate is 0 and the ETA unknown", () => {
  const { written, progress } = harness({ tty: false, total: 10 });
  progress.tick(3);
  assert.equal(progress.rate(), 0);
  assert.equal(written[0], "[sia] generate 3/10 (30.0 %) 0.0 items/s ETA ?\n");
});

Deno.test("a total of 0 leaves out the percentage", () => {
  const { clock, progress } = harness({ tty: false, total: 0 });
  clock.t = 101;
  progress.tick(4);
  assert.match(progress.line(), /^generate 4\/0 4\.0 items\/s ETA /);
});

Deno.test({
  name: "formatDuration of a negative duration (an overrun ETA) is not garbage",
  fn() {
    assert.equal(formatDuration(-1), "0:00");
    const { clock, progress } = harness({ tty: false, total: 0 });
    clock.t = 101;
    progress.tick(4);
    assert.equal(progress.line(), "generate 4/0 4.0 items/s ETA 0:00");
  },
});

Deno.test("TTY: redraws in place with \\r and a line clear, throttled to 10 per second", () => {
  const { clock, written, progress } = harness({ tty: true, total: 100 });
  // 16 ticks over one second, 1/16 s apart (exact in binary): a redraw needs 0.1 s since the
  // last, so every second tick draws.
  for (let i = 1; i <= 16; i++) {
    clock.t = 100 + i / 16;
    progress.tick(1);
  }
  assert.equal(written.length, 8);
  for (const text of written) {
    assert.ok(text.startsWith("\r\x1b[2K"), JSON.stringify(text));
    assert.ok(!text.includes("\n"), "a live line never ends the line");
    assert.ok(!text.includes("[sia]"));
  }
  clock.t = 102;
  progress.finish();
  const last = written[written.length - 1];
  // 16 items in 2 s.
  assert.equal(last, "\r\x1b[2Kgenerate 16 items in 0:02 (8.0 items/s), done\n");
});

Deno.test("finish always writes, even right after a line, with the note", () => {
  const { clock, written, progress } = harness({ tty: false, logEvery: 5, label: "load" });
  clock.t = 200; // 100 s
  progress.tick(500);
  progress.finish("interrupted");
  assert.equal(written.length, 2);
  assert.equal(written[1], "[sia] load 500 items in 1:40 (5.0 items/s), interrupted\n");
});
