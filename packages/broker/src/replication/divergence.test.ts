// Proves divergenceOffset finds the first offset where two logs' epoch histories disagree,
// by comparing it with a brute-force offset-by-offset comparison and on hand-written cases.
import { describe, expect, it } from 'vitest';
import { divergenceOffset, epochAt, type LogShape } from './divergence.js';

function log(leo: number, ...epochs: Array<[number, number]>): LogShape {
  return { leo, epochs };
}

/** Brute force: walk every offset both histories describe and compare the epoch that wrote it. */
function bruteForce(primary: LogShape, secondary: LogShape): number {
  const limit = Math.min(primary.leo, secondary.leo);
  const from = Math.max(primary.epochs[0]?.[1] ?? 0, secondary.epochs[0]?.[1] ?? 0);
  for (let offset = from; offset < limit; offset++) {
    if (epochAt(primary.epochs, offset) !== epochAt(secondary.epochs, offset)) return offset;
  }
  return limit;
}

describe('epochAt', () => {
  it('finds the epoch covering an offset', () => {
    const history: Array<[number, number]> = [
      [0, 0],
      [2, 10],
      [5, 20],
    ];
    expect(epochAt(history, 0)).toBe(0);
    expect(epochAt(history, 9)).toBe(0);
    expect(epochAt(history, 10)).toBe(2);
    expect(epochAt(history, 25)).toBe(5);
    expect(epochAt([], 3)).toBeUndefined();
    expect(epochAt([[1, 5]], 3)).toBeUndefined();
  });
});

describe('divergenceOffset', () => {
  it('is 0 for two empty logs and for an empty secondary', () => {
    expect(divergenceOffset(log(0), log(0))).toBe(0);
    expect(divergenceOffset(log(10, [0, 0]), log(0))).toBe(0);
  });

  it('is the secondary LEO when the secondary is a prefix of the primary', () => {
    expect(divergenceOffset(log(100, [0, 0], [1, 50]), log(30, [0, 0]))).toBe(30);
    expect(divergenceOffset(log(100, [0, 0], [1, 50]), log(70, [0, 0], [1, 50]))).toBe(70);
  });

  it('is the primary LEO when the secondary has extra records of the same epoch (old primary unreplicated tail)', () => {
    // The old primary wrote 100..104 at epoch 0 that never reached the new primary, which has not written yet.
    expect(divergenceOffset(log(100, [0, 0]), log(105, [0, 0]))).toBe(100);
  });

  it('is the start of the new epoch when both wrote different records there', () => {
    // New primary wrote from 100 at epoch 1; old primary wrote 100..104 at epoch 0.
    expect(divergenceOffset(log(120, [0, 0], [1, 100]), log(105, [0, 0]))).toBe(100);
  });

  it('finds a divergence in the middle of the history', () => {
    const primary = log(300, [0, 0], [1, 100], [3, 200]);
    const secondary = log(260, [0, 0], [1, 100], [2, 150], [4, 250]);
    // Offsets 150.. were written at epoch 2 on the secondary but epoch 1 on the primary.
    expect(divergenceOffset(primary, secondary)).toBe(150);
  });

  it('detects a different first epoch', () => {
    expect(divergenceOffset(log(10, [1, 0]), log(10, [0, 0]))).toBe(0);
  });

  it('handles epochs whose start offsets coincide with the other LEO', () => {
    expect(divergenceOffset(log(20, [0, 0], [2, 10]), log(10, [0, 0]))).toBe(10);
    expect(divergenceOffset(log(10, [0, 0]), log(20, [0, 0], [2, 10]))).toBe(10);
  });

  it('compares a log reset past its end only from where its history starts', () => {
    // The follower was behind the primary's log start (15) and was reset there; it then caught up.
    expect(divergenceOffset(log(25, [1, 0], [2, 10]), log(25, [2, 15]))).toBe(25);
    expect(divergenceOffset(log(30, [1, 0], [2, 10]), log(20, [2, 15]))).toBe(20);
    // The same with the reset replica as the primary.
    expect(divergenceOffset(log(25, [2, 15]), log(25, [1, 0], [2, 10]))).toBe(25);
    // A real difference above the reset point is still found.
    expect(divergenceOffset(log(30, [1, 0], [2, 10], [4, 20]), log(25, [2, 15], [3, 20]))).toBe(20);
  });

  it('agrees with a brute-force comparison on random histories', () => {
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const randomLog = (base: Array<[number, number]>, baseLeo: number): LogShape => {
      // Keep a random prefix of the shared history, then add a few epochs of its own.
      const cut = random(baseLeo + 1);
      const epochs = base.filter(([, start]) => start < cut);
      let leo = cut;
      let lastEpoch = epochs.length === 0 ? -1 : epochs[epochs.length - 1][0];
      for (let i = random(3); i > 0; i--) {
        lastEpoch += 1 + random(3);
        const length = 1 + random(20);
        epochs.push([lastEpoch, leo]);
        leo += length;
      }
      return { epochs, leo };
    };
    /** Sometimes the log was reset at an offset within its history: nothing of it below that remains. */
    const maybeReset = (shape: LogShape): LogShape => {
      if (shape.leo === 0 || random(3) > 0) return shape;
      const at = random(shape.leo);
      const epoch = epochAt(shape.epochs, at);
      if (epoch === undefined) return shape;
      return { leo: shape.leo, epochs: [[epoch, at], ...shape.epochs.filter(([, start]) => start > at)] };
    };
    for (let round = 0; round < 2000; round++) {
      const shared: Array<[number, number]> = [];
      let leo = 0;
      for (let epoch = 0, n = random(5); epoch < n; epoch++) {
        shared.push([epoch * 2, leo]);
        leo += 1 + random(30);
      }
      const primary = maybeReset(randomLog(shared, leo));
      const secondary = maybeReset(randomLog(shared, leo));
      expect(divergenceOffset(primary, secondary)).toBe(bruteForce(primary, secondary));
      expect(divergenceOffset(secondary, primary)).toBe(bruteForce(primary, secondary));
    }
  });
});
