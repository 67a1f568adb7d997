// The replication stream's MACs: a message checks only on its own connection, in its own
// direction, with its own id and body.
import { describe, expect, it } from 'vitest';
import { MAC_BYTES, MessageReader, encodeMessage } from '@tessera/protocol';
import { StreamMac } from './framing.js';

describe('replication stream MACs', () => {
  it('carries a MAC that checks only for its own connection, direction, id and body', () => {
    const nonce = Buffer.alloc(16, 1);
    const mac = new StreamMac('a-cluster-secret-of-enough-length', nonce);
    const body = Buffer.from('frame bytes');
    const [message] = new MessageReader(100, MAC_BYTES).push(Buffer.concat(encodeMessage(9, mac.sign('request', 9, [body]), [body])));
    expect(message!.body.equals(body)).toBe(true);
    expect(mac.check('request', 9, message!.body, message!.mac)).toBe(true);
    expect(mac.check('answer', 9, message!.body, message!.mac)).toBe(false);
    expect(mac.check('request', 10, message!.body, message!.mac)).toBe(false);
    expect(mac.check('request', 9, Buffer.from('frame bytez'), message!.mac)).toBe(false);
    expect(new StreamMac('a-cluster-secret-of-enough-length', Buffer.alloc(16, 2)).check('request', 9, message!.body, message!.mac)).toBe(false);
    expect(new StreamMac('another-secret-of-enough-length!!', nonce).check('request', 9, message!.body, message!.mac)).toBe(false);
  });
});
