// Which samples a consumer's batch holds. An epoch of a job is `count` samples (generate.count),
// stream positions epoch * count + offset, offset 0 .. count - 1: the same positions `generate
// --count` writes, so epoch 0 is what `generate` writes and epoch e continues it. The epoch is cut
// into global batches of `batch` samples, global batch g holding offsets g * batch ..; the world's
// ranks take them round robin: batch k of rank r is global batch k * world + r. So shares are
// disjoint, and a world's batches at index k are global batches k * world .. k * world + world - 1
// whatever the world size. The last short share follows `last`, so that every rank gets the same
// number of full batches (as DALI's pad_last_batch and Mosaic's padding do):
//   pad:  ceil(count / (batch * world)) batches per rank; offsets past the epoch's end wrap to its
//         start (offset mod count), so the padding repeats the epoch's first samples
//   drop: floor(count / (batch * world)) batches per rank; the epoch's remaining
//         count mod (batch * world) samples are not served

export type LastRule = "pad" | "drop";
export const LAST_RULES: readonly LastRule[] = ["pad", "drop"];

export interface Share {
  readonly count: number;
  readonly batch: number;
  readonly world: number;
  readonly last: LastRule;
}

/** Batches each rank gets per epoch. */
export function batchesPerRank({ count, batch, world, last }: Share): number {
  const q = count / (batch * world);
  return last === "pad" ? Math.ceil(q) : Math.floor(q);
}

/** The stream positions of batch `index` of `rank` in `epoch`. */
export function positionsOf(share: Share, epoch: number, rank: number, index: number): Int32Array {
  const { count, batch, world } = share;
  const first = (index * world + rank) * batch;
  return Int32Array.from({ length: batch }, (_, j) => epoch * count + ((first + j) % count));
}

/** The largest epoch whose positions fit the int32 sample ids. */
export function lastEpoch(count: number): number {
  return Math.floor((2 ** 31 - 1) / count) - 1;
}
