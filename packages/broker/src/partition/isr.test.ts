// Proves the ISR type keeps the larger membership while a change is pending: a proposed member
// counts at once, a member proposed for removal counts until the change is committed.
import { describe, expect, it } from 'vitest';
import { committedIsr, expandingIsr, shrinkingIsr } from './isr.js';

describe('IsrState', () => {
  it('counts a joining member from the proposal on, and a leaving one until the commit', () => {
    const alone = committedIsr([1]);
    const expanding = expandingIsr(alone, 2);
    expect(expanding).toEqual({ kind: 'pending-expand', members: [1, 2], joining: 2 });
    expect(expandingIsr(committedIsr([1, 2]), 2).members).toEqual([1, 2]);
    const shrinking = shrinkingIsr(committedIsr([1, 2]), 2);
    expect(shrinking).toEqual({ kind: 'pending-shrink', members: [1, 2], leaving: 2 });
    expect(committedIsr([1]).members).toEqual([1]);
  });
});
