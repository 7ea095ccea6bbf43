// The contrastive augmentation stage against torchvision (../shared/peers/augment_torchvision.py),
// same recipe, same kind of data, same machine, one run: two views per image of 32x32x3 (seeded
// random pixels, as the peer) and 28x28x1 (Fashion-MNIST train, as the peer) images, batches of
// 256. The peer applies per-image transforms as a DataLoader does, in its PIL and tensor modes, one
// process and one thread; the better of the two is the bar. sia runs the stage's operator on one
// thread. Both are compared on the peer's "strong" recipe, which is sia's `simclr-cifar` preset
// (crop (0.08, 1), flip, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, gray 0.2, no blur); sia's `strong`
// (solo-learn's, with blur) and `weak` are timed beside it. Views/s are set against what the
// training step consumes (../shared/peers/README.md: SimCLR small-CNN step, 581 images/s = 1,162
// views/s).
//
// Flags: --n=N images per timed run (default 2048), --repeats=R (default 3), --no-record (print
// only; leave BENCHMARKS.md alone: for checking that the bench works, not for figures).

import { from, lastValueFrom } from "rxjs";
import { Rng } from "../core/rng.ts";
import { makeBatch } from "../core/batch.ts";
import type { Batch, Shape } from "../core/batch.ts";
import { resolveSection } from "../core/schema.ts";
import { contrastive } from "../stages/augment/contrastive.ts";
import { loadIdx } from "../stages/load/idx.ts";
import { FASHION_MNIST_DIR } from "../stages/load/resolve.ts";
import { median, PEERS, runPeer, writeSection } from "./report.ts";

const BATCH = 256;
/** The SimCLR small-CNN training step's consumption, images/s (peers README), times 2 views. */
const STEP_IMAGES_PER_S = 581;
const STEP_VIEWS_PER_S = 2 * STEP_IMAGES_PER_S;
const SIA_PRESETS = ["simclr-cifar", "strong", "weak"] as const;

function flag(flags: string[], name: string, fallback: number): number {
  const hit = flags.find((f) => f.startsWith(`--${name}=`));
  if (!hit) return fallback;
  const v = Number(hit.slice(name.length + 3));
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench augment: bad --${name}`);
  return v;
}

async function images(shape: "32x32x3" | "28x28x1", n: number): Promise<Batch[]> {
  const [h, w, c] = shape === "32x32x3" ? [32, 32, 3] : [28, 28, 1];
  const d = h * w * c;
  let pixels: Float32Array;
  if (c === 3) {
    const rng = new Rng(0, "bench-augment");
    pixels = Float32Array.from({ length: n * d }, () => rng.int(256) / 255);
  } else {
    const train = await loadIdx(`${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`, null);
    pixels = train.images.slice(0, n * d);
  }
  const batches: Batch[] = [];
  for (let start = 0; start < n; start += BATCH) {
    const m = Math.min(BATCH, n - start);
    const shape: Shape = [m, h, w, c];
    batches.push(makeBatch({
      images: pixels.slice(start * d, (start + m) * d),
      shape,
      labels: new Int32Array(m).fill(-1),
      ids: Int32Array.from({ length: m }, (_, i) => start + i),
      provenance: "real",
    }));
  }
  return batches;
}

/** Median images/s (two views each) of the stage over the batches. */
async function timeSia(preset: string, batches: Batch[], repeats: number): Promise<number> {
  const params = resolveSection(contrastive.params, { preset }, "augment.params.");
  const n = batches.reduce((a, b) => a + b.shape[0], 0);
  const pass = async () => {
    const operator = contrastive.create(params, { seed: 0 });
    await lastValueFrom(from(batches).pipe(operator));
  };
  await pass(); // warm-up (JIT)
  const walls: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await pass();
    walls.push((performance.now() - t0) / 1000);
  }
  return n / median(walls);
}

async function peer(shape: string, mode: string, n: number, repeats: number): Promise<number> {
  const out = await runPeer([
    "/usr/bin/python3",
    `${PEERS}augment_torchvision.py`,
    "--shape",
    shape,
    "--recipe",
    "strong",
    "--mode",
    mode,
    "--n",
    `${n}`,
    "--batch",
    `${BATCH}`,
    "--threads",
    "1",
    "--repeats",
    `${repeats}`,
  ]);
  const match = /median wall ([\d.]+) s -> ([\d.]+) images/.exec(out);
  if (!match) throw new Error(`augment_torchvision.py printed no timing:\n${out}`);
  return Number(match[2]);
}

export async function benchAugment(flags: string[]): Promise<void> {
  const n = flag(flags, "n", 2048);
  const repeats = flag(flags, "repeats", 3);
  const record = !flags.includes("--no-record");
  const rows: string[] = [];
  const notes: string[] = [];
  for (const shape of ["32x32x3", "28x28x1"] as const) {
    const batches = await images(shape, n);
    const sia: Record<string, number> = {};
    for (const preset of SIA_PRESETS) sia[preset] = await timeSia(preset, batches, repeats);
    const pil = await peer(shape, "pil", n, repeats);
    const tensor = await peer(shape, "tensor", n, repeats);
    const bar = Math.max(pil, tensor);
    const ratio = sia["simclr-cifar"] / bar;
    const views = 2 * sia["simclr-cifar"];
    console.log(
      `augment ${shape}: torchvision pil ${pil.toFixed(0)}, tensor ${tensor.toFixed(0)} ` +
        `images/s; sia simclr-cifar ${sia["simclr-cifar"].toFixed(0)} images/s ` +
        `(${ratio.toFixed(1)}x the better peer), strong ${sia.strong.toFixed(0)}, weak ${
          sia.weak.toFixed(0)
        }; ${views.toFixed(0)} views/s = ${(views / STEP_VIEWS_PER_S).toFixed(1)}x the ` +
        `SimCLR step's ${STEP_VIEWS_PER_S} views/s`,
    );
    rows.push(
      `| ${shape} | ${pil.toFixed(0)} | ${tensor.toFixed(0)} | ${
        sia["simclr-cifar"].toFixed(0)
      } | **${ratio.toFixed(1)}x** | ${sia.strong.toFixed(0)} | ${sia.weak.toFixed(0)} | ${
        views.toFixed(0)
      } (${(views / STEP_VIEWS_PER_S).toFixed(1)}x) |`,
    );
    if (ratio < 3) notes.push(`${shape}: below the 3x goal (${ratio.toFixed(2)}x).`);
  }
  if (!record) {
    console.log("augment: --no-record, BENCHMARKS.md left alone");
    return;
  }
  await writeSection(
    "augment",
    `## Contrastive augmentation vs torchvision (${new Date().toISOString().slice(0, 10)})

\`deno task bench augment\` (runs \`/usr/bin/python3 ../shared/peers/augment_torchvision.py --recipe strong
--mode pil|tensor --threads 1 --n ${n} --batch ${BATCH}\` in the same run). Two views per image, ${n} images
per timed run, batches of ${BATCH}, median of ${repeats} runs, one thread each. torchvision applies its
transforms per image as a DataLoader does (0 workers), from uint8 images (its ToTensor /
ConvertImageDtype included); sia runs the stage's operator on float32 NHWC batches already on [0, 1].
The recipe compared is the peer's "strong", which is sia's \`simclr-cifar\` preset (crop scale (0.08, 1),
flip 0.5, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, no blur); sia's \`strong\` (jitter 0.8/0.2,
blur p 0.5) and \`weak\` (Wang et al.) are timed beside it. 32x32x3: seeded random pixels, as the peer;
28x28x1: the first ${n} Fashion-MNIST training images, as the peer. Figures are images/s (pairs of views).

The last column sets sia's views/s against what training consumes: the PyTorch SimCLR step with the
small CNN takes about ${STEP_IMAGES_PER_S} images/s = ${STEP_VIEWS_PER_S} views/s on this machine
(\`../shared/peers/simclr_torch.py\`, peers README), so the augmentation stage is not the pipeline's
bottleneck when that column is above 1x.

| images | torchvision PIL | torchvision tensor | sia simclr-cifar | sia / better peer | sia strong | sia weak | sia views/s (vs ${STEP_VIEWS_PER_S}) |
|---|---|---|---|---|---|---|---|
${rows.join("\n")}
${notes.length ? `\n${notes.join("\n")}\n` : ""}`,
  );
}
