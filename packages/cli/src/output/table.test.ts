// Proves table layout: upper-case headers, padded columns, numbers right-aligned, empty cells as "-".
import { describe, expect, it } from 'vitest';
import { cellText, renderFields, renderTable } from './table.js';

describe('renderTable', () => {
  it('pads columns and right-aligns numbers', () => {
    const text = renderTable(
      [
        { header: 'name', value: (r: { name: string; n: number | null }) => r.name },
        { header: 'n', value: (r) => r.n },
      ],
      [
        { name: 'orders', n: 12 },
        { name: 'a', n: null },
      ],
    );
    expect(text).toBe(['NAME     N', 'orders  12', 'a        -', ''].join('\n'));
  });

  it('prints only the header for no rows', () => {
    expect(renderTable([{ header: 'id', value: () => 1 }], [])).toBe('ID\n');
  });
});

describe('cellText', () => {
  it('renders lists, booleans and missing values', () => {
    expect(cellText([1, 2])).toBe('1,2');
    expect(cellText([])).toBe('-');
    expect(cellText(true)).toBe('yes');
    expect(cellText(undefined)).toBe('-');
  });
});

describe('renderFields', () => {
  it('aligns values after the longest name', () => {
    expect(renderFields([['topic', 'x'], ['partitions', 3]])).toBe('topic:      x\npartitions: 3\n');
  });
});
