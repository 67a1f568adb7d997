/**
 * Length-prefixed messages over a TCP socket: the bare transport the bench scripts compare the
 * broker's own stack against (`transport.ts`) and build a floor from (`bare-e2e.ts`).
 */
import type net from 'node:net';

/** `body` behind its length, a 4-byte big-endian count. */
export function lengthPrefixed(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Calls `onMessage` with each whole length-prefixed message read from `socket`. */
export function readMessages(socket: net.Socket, onMessage: (message: Buffer) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0);
      onMessage(buffered.subarray(4, 4 + length));
      buffered = buffered.subarray(4 + length);
    }
  });
}
