// The benches' turn order (bench/harness.ts roundOrder): every round a permutation of the
// runtimes, and over the rounds each runtime right after each other equally often (a fixed
// rotation put the first column always after the last, which read it slower).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { roundOrder } from '../bench/harness.js';

test('each round is a permutation, and over n! rounds every runtime follows every other equally often', () => {
  for (let n = 1; n <= 4; n++) {
    let rounds = 1;
    for (let k = 2; k <= n; k++) rounds *= k;
    const after = new Map<string, number>();
    let previous: number | undefined;
    for (let round = 0; round < rounds; round++) {
      const order = roundOrder(round, n);
      assert.deepEqual([...order].sort(), Array.from({ length: n }, (_, k) => k), `round ${round} of ${n}: ${order}`);
      for (const k of order) {
        if (previous !== undefined && previous !== k) after.set(`${k} after ${previous}`, (after.get(`${k} after ${previous}`) ?? 0) + 1);
        previous = k;
      }
    }
    const counts = [...after.values()];
    assert.equal(after.size, n * (n - 1), `${n} runtimes: every ordered pair seen (${[...after.keys()]})`);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${n} runtimes: ${JSON.stringify(Object.fromEntries(after))}`);
  }
});
