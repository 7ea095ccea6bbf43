// The light augmentation: off returns the images untouched; on, every image is itself moved by
// whole pixels within the bound (every pixel found at its shifted place, the border zero), and a
// step's shifts depend only on (seed, step, row).

import assert from "node:assert/strict";
import { shiftImages } from "../../../stages/augment/shift.ts";

Deno.test("shift: 0 is the identity; shifts are whole-pixel moves within the bound, seeded", () => {
  const [n, h, w] = [6, 7, 5];
  const images = Float32Array.from({ length: n * h * w }, (_, i) => 1 + (i % 97));
  assert.equal(shiftImages(images, [n, h, w, 1], 0, 0, 0), images);
  const out = shiftImages(images, [n, h, w, 1], 2, 3, 4);
  assert.deepEqual(out, shiftImages(images, [n, h, w, 1], 2, 3, 4));
  assert.notDeepEqual(out, shiftImages(images, [n, h, w, 1], 2, 3, 5));
  for (let j = 0; j < n; j++) {
    const src = images.subarray(j * h * w, (j + 1) * h * w);
    const dst = out.subarray(j * h * w, (j + 1) * h * w);
    // Exactly one (dy, dx) in [-2, 2]^2 explains every output pixel.
    const fits = [];
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        let ok = true;
        for (let y = 0; y < h && ok; y++) {
          for (let x = 0; x < w && ok; x++) {
            const [sy, sx] = [y - dy, x - dx];
            const want = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] : 0;
            ok = dst[y * w + x] === want;
          }
        }
        if (ok) fits.push([dy, dx]);
      }
    }
    assert.equal(fits.length, 1, `image ${j}: ${JSON.stringify(fits)}`);
  }
});
