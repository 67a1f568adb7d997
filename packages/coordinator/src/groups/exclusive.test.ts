// Proves what a reset or delete relies on in the group manager: refused while the group has
// members, joins refused while it runs, a new persisted generation, an empty group created for a
// reset, and a deleted group gone after a restart; and which empty groups have expired. Real
// SQLite store in a temp dir.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../store/store.js';
import { GroupManager } from './groups.js';

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** The wall clock the managers read, moved by the tests. */
let wallMs = 1_000_000;

function manager(dir?: string, retentionMs = -1): { groups: GroupManager; dir: string } {
  const where = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-exclusive-'));
  if (dir === undefined) dirs.push(where);
  const store = new Store(where);
  stores.push(store);
  const groups = new GroupManager(
    {
      store,
      partitionCount: (topic) => (topic === 't' ? 2 : null),
      defaultSessionTimeoutMs: 10_000,
      nowMs: () => 0,
      wallMs: () => wallMs,
      retentionMs,
      onRebalance: () => undefined,
    },
    store.loadAll().groups,
  );
  return { groups, dir: where };
}

describe('GroupManager exclusive operations', () => {
  it('refuses a group with members, holds joins off while it runs, and bumps the generation', () => {
    const { groups } = manager();
    const member = groups.join('g', { topic: 't' });
    expect(() => groups.takeExclusive('g', { topic: 't', create: true })).toThrow(expect.objectContaining({ code: 'GROUP_NOT_EMPTY' }));
    groups.leave('g', { memberId: member.memberId });
    const before = groups.get('g')!.generation;
    const generation = groups.takeExclusive('g', { topic: 't', create: true });
    expect(generation).toBe(before + 1);
    expect(() => groups.join('g', { topic: 't' })).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    expect(() => groups.takeExclusive('g', { create: false })).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }));
    groups.release('g');
    expect(groups.join('g', { topic: 't' }).generation).toBeGreaterThan(generation);
  });

  it('creates an empty group for a reset, and a removed group stays removed after a restart', () => {
    const { groups, dir } = manager();
    expect(() => groups.takeExclusive('new', { create: false })).toThrow(expect.objectContaining({ code: 'GROUP_NOT_FOUND' }));
    expect(groups.takeExclusive('new', { topic: 't', create: true })).toBe(1);
    groups.release('new');
    expect(groups.list().groups).toEqual([{ group: 'new', topic: 't', generation: 1, members: 0, emptySinceMs: wallMs }]);
    expect(() => groups.remove('new')).toThrow(/not held empty/);
    groups.takeExclusive('new', { create: false });
    groups.remove('new');
    groups.release('new');
    expect(groups.list().groups).toEqual([]);
    stores.splice(0).forEach((store) => store.close());
    expect(manager(dir).groups.list().groups).toEqual([]);
  });

  it('names a group expired once it has been empty for the retention, counting from its last member leaving, across a restart', () => {
    const { groups, dir } = manager(undefined, 60_000);
    const busy = groups.join('busy', { topic: 't' });
    const quiet = groups.join('quiet', { topic: 't' });
    wallMs += 10_000;
    groups.leave('quiet', { memberId: quiet.memberId });
    wallMs += 59_999;
    expect(groups.expiredGroups()).toEqual([]);
    stores.splice(0).forEach((store) => store.close());
    const restarted = manager(dir, 60_000).groups;
    wallMs += 1;
    expect(restarted.expiredGroups()).toEqual(['quiet']);
    // A member joining again keeps it; held by a reset, it is not named either.
    const back = restarted.join('quiet', { topic: 't' });
    expect(restarted.expiredGroups()).toEqual([]);
    restarted.leave('quiet', { memberId: back.memberId });
    restarted.leave('busy', { memberId: busy.memberId });
    wallMs += 60_000;
    expect(restarted.expiredGroups().sort()).toEqual(['busy', 'quiet']);
    restarted.takeExclusive('busy', { create: false });
    expect(restarted.expiredGroups()).toEqual(['quiet']);
    restarted.release('busy');
  });

  it('counts a group empty afresh after a reset writes its offsets, or a member comes and goes', () => {
    const { groups } = manager(undefined, 60_000);
    for (const name of ['reset', 'visited']) groups.leave(name, { memberId: groups.join(name, { topic: 't' }).memberId });
    wallMs += 60_000;
    expect(groups.expiredGroups().sort()).toEqual(['reset', 'visited']);
    // A reset for consumers about to start (takeExclusive as a reset takes it), and a member that
    // joins and leaves while another group of the same look is being deleted.
    groups.takeExclusive('reset', { topic: 't', create: true, touch: true });
    groups.release('reset');
    groups.leave('visited', { memberId: groups.join('visited', { topic: 't' }).memberId });
    expect(groups.isExpired('reset')).toBe(false);
    expect(groups.isExpired('visited')).toBe(false);
    wallMs += 60_000;
    expect(groups.isExpired('reset')).toBe(true);
  });

  it('never names a group expired with a retention of -1', () => {
    const { groups } = manager(undefined, -1);
    const member = groups.join('g', { topic: 't' });
    groups.leave('g', { memberId: member.memberId });
    wallMs += 365 * 24 * 60 * 60 * 1000;
    expect(groups.expiredGroups()).toEqual([]);
  });
});
