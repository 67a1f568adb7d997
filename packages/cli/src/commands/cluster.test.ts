// Proves the event log and broker table render whatever fields the coordinator sends, one line per event.
import { describe, expect, it } from 'vitest';
import { brokerTable, formatEvent } from './cluster.js';

describe('formatEvent', () => {
  it('puts the time and kind first, then the other fields', () => {
    const line = formatEvent({ id: 7, timeMs: 0, type: 'failover', topic: 'orders', partition: 3, epoch: 4, isr: [2] });
    expect(line).toBe('1970-01-01T00:00:00.000Z  failover  topic=orders  partition=3  epoch=4  isr=2');
  });
});

describe('brokerTable', () => {
  it('lists brokers by id', () => {
    const text = brokerTable([
      { id: 2, url: 'http://127.0.0.1:7072', internalUrl: 'http://127.0.0.1:7072', alive: false, lastHeartbeatAgoMs: null, primaries: 0, replicas: 1 },
      { id: 1, url: 'http://127.0.0.1:7071', internalUrl: 'http://127.0.0.1:7071', alive: true, lastHeartbeatAgoMs: 120, primaries: 3, replicas: 6 },
    ]);
    expect(text.split('\n')[1]).toMatch(/^ ?1\s+http:\/\/127\.0\.0\.1:7071\s+yes\s+3\s+6\s+120 ms ago$/);
    expect(text.split('\n')[2]).toMatch(/^ ?2 .* no /);
  });

  it('shows a draining broker', () => {
    const text = brokerTable([
      { id: 3, url: 'http://b3', internalUrl: 'http://b3', alive: true, state: 'alive', draining: true, lastHeartbeatAgoMs: 5, primaries: 1, replicas: 2 },
    ]);
    expect(text.split('\n')[1]).toMatch(/^ ?3\s+http:\/\/b3\s+yes, draining\s+1\s+2\s+5 ms ago$/);
  });
});
