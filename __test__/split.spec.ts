import test from 'ava';
import fc from 'fast-check';

import { DataError } from '../src/data/readers';
import { gather, mulberry32, stratifiedSplit } from '../src/data/split';
import type { Split, SplitFractions } from '../src/data/split';

/** Labels with the given number of samples per class, interleaved so classes are not contiguous. */
function labelsWith(counts: number[]): number[] {
  const left = counts.slice();
  const out: number[] = [];
  while (left.some((c) => c > 0)) {
    left.forEach((c, k) => { if (c > 0) { out.push(k); left[k]--; } });
  }
  return out;
}

function perClass(split: Split, labels: number[], k: number): number[][] {
  const parts = [split.train, split.validation, split.test];
  return Array.from({ length: k }, (_, c) => parts.map((p) => Array.from(p).filter((i) => labels[i] === c).length));
}

function checkCover(split: Split, n: number): boolean {
  const all = [...split.train, ...split.validation, ...split.test].sort((a, b) => a - b);
  return all.length === n && all.every((v, i) => v === i);
}

test('exact per-class counts by largest remainder (default 60/20/20)', (t) => {
  const labels = labelsWith([10, 5, 7, 3, 20]);
  const s = stratifiedSplit(labels, undefined, 42);
  t.deepEqual(perClass(s, labels, 5), [
    [6, 2, 2],
    [3, 1, 1],
    [4, 2, 1], // 4.2 / 1.4 / 1.4: the one leftover goes to the first tied remainder
    [1, 1, 1], // 1.8 / 0.6 / 0.6 → 2/1/0, then test takes one so no part is empty
    [12, 4, 4],
  ]);
  t.true(checkCover(s, labels.length));
  t.is(s.train.length + s.validation.length + s.test.length, 45);
});

test('exact counts with other fractions, including empty parts', (t) => {
  const l2 = labelsWith([9, 20, 5]);
  const s = stratifiedSplit(l2, { train: 0.8, validation: 0.1, test: 0.1 }, 1);
  // 5 → 4 / 0.5 / 0.5 → 4/1/0 by remainder, then test takes one from train.
  t.deepEqual(perClass(s, l2, 3), [[7, 1, 1], [16, 2, 2], [3, 1, 1]]);
  const labels = labelsWith([9, 20, 1]);

  const only = stratifiedSplit(labels, { train: 1, validation: 0, test: 0 }, 3);
  t.is(only.train.length, 30);
  t.is(only.validation.length + only.test.length, 0);

  const half = stratifiedSplit(labelsWith([4, 7]), { train: 0.5, validation: 0.5, test: 0 }, 3);
  t.deepEqual(perClass(half, labelsWith([4, 7]), 2), [[2, 2, 0], [4, 3, 0]]);
  t.is(half.test.length, 0);
});

test('deterministic by seed; different seeds give different splits', (t) => {
  const labels = Int32Array.from(labelsWith([50, 50, 50]));
  const a = stratifiedSplit(labels, undefined, 7);
  const b = stratifiedSplit(labels, undefined, 7);
  const c = stratifiedSplit(labels, undefined, 8);
  t.deepEqual(a, b);
  t.notDeepEqual(Array.from(a.train), Array.from(c.train));
  // Indices come back sorted within each part.
  for (const p of [a.train, a.validation, a.test]) t.true(p.every((v, i) => i === 0 || p[i - 1] < v));
  // Shuffled, not the first 60% of each class.
  const firstThirty = labelsWith([50, 50, 50]).map((y, i) => [y, i]).filter(([y]) => y === 0).slice(0, 30).map(([, i]) => i);
  t.notDeepEqual(Array.from(a.train).filter((i) => labels[i] === 0), firstThirty);
});

test('mulberry32 is the documented generator', (t) => {
  const r = mulberry32(0);
  const first = [r(), r(), r()];
  t.true(first.every((x) => x >= 0 && x < 1));
  // First output of mulberry32(0), checked against a build of the published C reference.
  t.is(Math.round(first[0] * 2 ** 32), 1144304738);
  t.deepEqual([mulberry32(5)(), mulberry32(5)()], [mulberry32(5)(), mulberry32(5)()]);
});

test('errors: too-small class, bad fractions, bad labels, bad seed', (t) => {
  t.throws(() => stratifiedSplit([0, 0, 0, 0, 1, 1, 0], undefined, 1), {
    instanceOf: DataError,
    message: /class 1 has only 2 samples, too few .* 3 non-empty parts/,
  });
  t.throws(() => stratifiedSplit([0, 0, 0, 5], { train: 0.5, validation: 0.5, test: 0 }, 1), {
    instanceOf: DataError,
    message: /class 5 has only 1 sample,/,
  });
  const bad = (f: SplitFractions, re: RegExp) => t.throws(() => stratifiedSplit([0, 0, 0], f, 1), { instanceOf: DataError, message: re });
  bad({ train: 0.6, validation: 0.2, test: 0.1 }, /sum to 1/);
  bad({ train: 1.2, validation: -0.2, test: 0 }, />= 0/);
  bad({ train: NaN, validation: 0.5, test: 0.5 }, /finite/);
  t.notThrows(() => stratifiedSplit([0, 0, 0], { train: 0.6 + 5e-10, validation: 0.2, test: 0.2 }, 1));
  t.throws(() => stratifiedSplit([0, -1, 0], undefined, 1), { instanceOf: DataError, message: /label -1 at index 1/ });
  t.throws(() => stratifiedSplit([0, 0.5, 0], undefined, 1), { instanceOf: DataError });
  t.throws(() => stratifiedSplit([0, 0, 0], undefined, 1.5), { instanceOf: DataError, message: /seed/ });
});

test('property: every index exactly once; per-class counts within 1 of quota, or every part non-empty', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 5, max: 60 }), { minLength: 1, maxLength: 8 }),
      fc.integer(),
      fc.constantFrom<[number, number, number]>([0.6, 0.2, 0.2], [0.8, 0.1, 0.1], [0.7, 0.3, 0], [1 / 3, 1 / 3, 1 / 3]),
      (counts, seed, [tr, va, te]) => {
        const labels = labelsWith(counts);
        const s = stratifiedSplit(labels, { train: tr, validation: va, test: te }, seed);
        if (!checkCover(s, labels.length)) return false;
        const got = perClass(s, labels, counts.length);
        const fr = [tr, va, te];
        return got.every((parts, c) => {
          const quotas = fr.map((f) => f * counts[c]);
          // Largest remainder alone: within 1 of every quota. Only when some non-empty part's quota
          // is below 1 may a sample move to keep it non-empty (within 2 then).
          const tight = quotas.every((q, p) => fr[p] === 0 || q >= 1);
          return parts.every((n, p) => Math.abs(n - quotas[p]) < (tight ? 1 : 2) && (fr[p] === 0 ? n === 0 : n >= 1));
        });
      },
    ),
    { numRuns: 300, seed: 99 },
  );
  t.pass();
});

test('gather copies the selected images and labels', (t) => {
  const features = 4;
  const images = Uint8Array.from({ length: 5 * features }, (_, i) => i);
  const labels = Int32Array.from([10, 11, 12, 13, 14]);
  const g = gather(images, features, labels, Int32Array.from([3, 0]));
  t.deepEqual(Array.from(g.labels), [13, 10]);
  t.deepEqual(Array.from(g.images), [12, 13, 14, 15, 0, 1, 2, 3]);
  t.throws(() => gather(images, features, labels, Int32Array.from([5])), { instanceOf: DataError, message: /index 5/ });
  t.throws(() => gather(images, 3, labels, Int32Array.from([0])), { instanceOf: DataError });
  const empty = gather(images, features, labels, new Int32Array(0));
  t.is(empty.images.length, 0);
});
