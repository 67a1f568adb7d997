// Proves the group view joins owners with lag per partition.
import { describe, expect, it } from 'vitest';
import { groupView } from './groups.js';

describe('groupView', () => {
  it('names the owner of each partition and sums the lag', () => {
    const view = groupView(
      { group: 'g', topic: 't', generation: 3, members: [{ memberId: 'm1', clientId: null, partitions: [1] }], unassigned: [0] },
      [
        { partition: 1, committed: 5, highWatermark: 9, lag: 4 },
        { partition: 0, committed: null, highWatermark: 2, lag: 2 },
      ],
    );
    expect(view.partitions).toEqual([
      { partition: 0, committed: null, highWatermark: 2, lag: 2, member: null },
      { partition: 1, committed: 5, highWatermark: 9, lag: 4, member: 'm1' },
    ]);
    expect(view.totalLag).toBe(6);
  });
});
