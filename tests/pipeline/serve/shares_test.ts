// The share rule: every rank of a world gets the same number of full batches; with "drop" the
// shares are disjoint and cover the epoch but its last count mod (batch * world) samples; with
// "pad" they cover all of it, and the only repeats are the wrapped padding from the epoch's start.

import assert from "node:assert/strict";
import { batchesPerRank, positionsOf } from "../../../pipeline/serve/shares.ts";
import type { LastRule } from "../../../pipeline/serve/shares.ts";

for (const last of ["pad", "drop"] as LastRule[]) {
  Deno.test(`shares (${last}): equal batch counts, disjoint and covering the epoch as documented`, () => {
    for (
      const [count, batch, world] of [[100, 16, 2], [96, 8, 3], [7, 3, 4], [1000, 256, 1], [
        64,
        16,
        4,
      ]]
    ) {
      const share = { count, batch, world, last };
      const p = batchesPerRank(share);
      const step = batch * world;
      assert.equal(p, last === "pad" ? Math.ceil(count / step) : Math.floor(count / step));
      for (const epoch of [0, 3]) {
        const seen = new Map<number, number>();
        for (let rank = 0; rank < world; rank++) {
          for (let k = 0; k < p; k++) {
            const positions = positionsOf(share, epoch, rank, k);
            assert.equal(positions.length, batch);
            for (const q of positions) seen.set(q, (seen.get(q) ?? 0) + 1);
          }
        }
        const served = p * world * batch;
        for (const q of seen.keys()) {
          assert.ok(
            q >= epoch * count && q < (epoch + 1) * count,
            `position ${q} in epoch ${epoch}`,
          );
        }
        if (last === "drop") {
          assert.equal(seen.size, served, "drop: no position twice");
          assert.equal(count - served, count % step, "drop: only the remainder is left out");
        } else {
          assert.equal(seen.size, count, "pad: every position served");
          const repeats = [...seen.values()].reduce((s, v) => s + v - 1, 0);
          assert.equal(repeats, served - count, "pad: repeats are the padding only");
          // The padding is the epoch's first samples, in order.
          for (let q = 0; q < served - count; q++) {
            assert.ok(seen.get(epoch * count + (q % count))! >= 2);
          }
        }
      }
    }
  });
}

Deno.test("shares: a world's batches at index k are global batches k*world .. k*world+world-1", () => {
  const count = 1000, batch = 10;
  const one = { count, batch, world: 1, last: "pad" as const };
  const four = { count, batch, world: 4, last: "pad" as const };
  for (let k = 0; k < 5; k++) {
    for (let r = 0; r < 4; r++) {
      assert.deepEqual(positionsOf(four, 2, r, k), positionsOf(one, 2, 0, k * 4 + r));
    }
  }
});
