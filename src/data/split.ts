/**
 * Seeded, stratified train/validation/test splits.
 *
 * Stratified because Kuzushiji classes are small (the course set has 70–122 images per class):
 * a plain random split can leave a class nearly absent from validation, and then its accuracy
 * there means nothing.
 */
import { DataError } from './readers';

export interface SplitFractions {
  train: number;
  validation: number;
  test: number;
}

export interface Split {
  train: Int32Array;
  validation: Int32Array;
  test: Int32Array;
}

const PARTS = ['train', 'validation', 'test'] as const;

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): tiny, fast, and passes the usual statistical
 * batteries well enough for shuffling. Chosen over Math.random because splits must be
 * reproducible from the seed alone, on any Node version. Returns floats in [0, 1).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * How many of `count` samples each part gets: floor of the exact quota, then the leftover
 * samples to the largest fractional remainders (ties: train, validation, test order), so every
 * class's proportions are as close to the fractions as whole samples allow. Afterwards any part
 * with a non-zero fraction that came out empty takes one sample from the largest part — a
 * class missing from validation or test would make its per-class metrics undefined.
 */
function allocate(count: number, fr: number[], cls: number): number[] {
  const quotas = fr.map((f) => f * count);
  const alloc = quotas.map(Math.floor);
  let left = count - alloc.reduce((a, b) => a + b, 0);
  const order = [0, 1, 2].sort((i, j) => (quotas[j] - alloc[j]) - (quotas[i] - alloc[i]) || i - j);
  for (let k = 0; left > 0; k = (k + 1) % 3) {
    if (fr[order[k]] > 0) { alloc[order[k]]++; left--; }
  }
  const needed = fr.filter((f) => f > 0).length;
  if (count < needed) {
    throw new DataError('ESPLIT', `class ${cls} has only ${count} sample${count === 1 ? '' : 's'}, too few to put at least one in each of the ${needed} non-empty parts (${PARTS.filter((_, i) => fr[i] > 0).join(', ')})`);
  }
  for (let p = 0; p < 3; p++) {
    if (fr[p] > 0 && alloc[p] === 0) {
      const donor = [0, 1, 2].reduce((a, b) => (alloc[b] > alloc[a] ? b : a));
      alloc[donor]--;
      alloc[p]++;
    }
  }
  return alloc;
}

/**
 * Split sample indices into train/validation/test, class by class. Per class (in ascending
 * class order) the indices are Fisher–Yates shuffled with one mulberry32 stream seeded by
 * `seed`, then cut by `allocate`. Each part's indices are returned sorted ascending, so the
 * result depends only on (labels, fractions, seed) and gathers read memory in order.
 */
export function stratifiedSplit(
  labels: ArrayLike<number>,
  fractions: SplitFractions = { train: 0.6, validation: 0.2, test: 0.2 },
  seed: number,
): Split {
  const fr = PARTS.map((p) => fractions[p]);
  if (fr.some((f) => typeof f !== 'number' || !Number.isFinite(f) || f < 0)) {
    throw new DataError('ESPLIT', `split fractions must be finite and >= 0, got ${JSON.stringify(fractions)}`);
  }
  const sum = fr[0] + fr[1] + fr[2];
  if (Math.abs(sum - 1) > 1e-9) {
    throw new DataError('ESPLIT', `split fractions must sum to 1, got ${sum} from ${JSON.stringify(fractions)}`);
  }
  // Normalise away the tolerated 1e-9 so quotas can never sum to more than the class size.
  for (let p = 0; p < 3; p++) fr[p] /= sum;
  if (!Number.isSafeInteger(seed)) throw new DataError('ESPLIT', `seed must be an integer, got ${seed}`);

  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0) throw new DataError('ELABEL', `label ${y} at index ${i} is not a non-negative integer`);
    let list = byClass.get(y);
    if (!list) byClass.set(y, (list = []));
    list.push(i);
  }

  const rand = mulberry32(seed);
  const out: number[][] = [[], [], []];
  for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(cls)!;
    for (let i = idx.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    const alloc = allocate(idx.length, fr, cls);
    let at = 0;
    for (let p = 0; p < 3; p++) {
      for (let k = 0; k < alloc[p]; k++) out[p].push(idx[at++]);
    }
  }
  const sorted = (a: number[]) => Int32Array.from(a).sort();
  return { train: sorted(out[0]), validation: sorted(out[1]), test: sorted(out[2]) };
}

/** The images and labels at `idx` (e.g. one part of a split), copied into new arrays. */
export function gather(
  images: Uint8Array,
  features: number,
  labels: Int32Array,
  idx: Int32Array,
): { images: Uint8Array; labels: Int32Array } {
  if (!(Number.isSafeInteger(features) && features > 0) || images.length !== labels.length * features) {
    throw new DataError('ESHAPE', `gather: ${images.length} pixels do not make ${labels.length} images of ${features} features`);
  }
  const outImages = new Uint8Array(idx.length * features);
  const outLabels = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    if (i < 0 || i >= labels.length) throw new DataError('EINDEX', `gather: index ${i} at position ${k} is outside 0..${labels.length - 1}`);
    outImages.set(images.subarray(i * features, (i + 1) * features), k * features);
    outLabels[k] = labels[i];
  }
  return { images: outImages, labels: outLabels };
}
