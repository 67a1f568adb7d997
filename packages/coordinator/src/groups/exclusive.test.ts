// Proves what a reset or delete relies on in the group manager: refused while the group has
// members, joins refused while it runs, a new persisted generation, an empty group created for a
// reset, and a deleted group gone after a restart. Real SQLite store in a temp dir.
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

function manager(dir?: string): { groups: GroupManager; dir: string } {
  const where = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-exclusive-'));
  if (dir === undefined) dirs.push(where);
  const store = new Store(where);
  stores.push(store);
  const groups = new GroupManager(
    { store, partitionCount: (topic) => (topic === 't' ? 2 : null), defaultSessionTimeoutMs: 10_000, nowMs: () => 0, onRebalance: () => undefined },
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
    expect(groups.list().groups).toEqual([{ group: 'new', topic: 't', generation: 1, members: 0 }]);
    expect(() => groups.remove('new')).toThrow(/not held empty/);
    groups.takeExclusive('new', { create: false });
    groups.remove('new');
    groups.release('new');
    expect(groups.list().groups).toEqual([]);
    stores.splice(0).forEach((store) => store.close());
    expect(manager(dir).groups.list().groups).toEqual([]);
  });
});
