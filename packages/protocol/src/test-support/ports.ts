/**
 * Ports for tests that start a service on a port chosen in advance (a process told `--port P`,
 * `tessera dev` taking P and P+1..P+N): the unit tests of the dev supervisor and the
 * integration harness both take theirs from here.
 */
import net from 'node:net';

/**
 * Ports below the OS's ephemeral range (Linux: 32768 and up), so an outgoing connection cannot
 * take a port between the moment it is picked here and the moment its service binds it, as it
 * can take a port that `listen(0)` gave and released.
 */
const FIRST_PORT = 20_000;
const LAST_PORT = 32_000;
const ATTEMPTS = 200;

/**
 * Ports this process handed out already. A port is free until its service binds it, which may
 * be seconds later: without this set two services of one test could be given the same port and
 * one would fail to start (EADDRINUSE).
 */
const handedOut = new Set<number>();

/** A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range, never one this process handed out before. */
export function freePort(): Promise<number> {
  return freePortRange(1);
}

/**
 * The first of `count` consecutive TCP ports on 127.0.0.1, all free a moment ago, below the
 * ephemeral range, none handed out by this process before (`tessera dev` with N brokers takes
 * P..P+N: N + 1 ports).
 */
export async function freePortRange(count: number): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 1_000) throw new RangeError(`freePortRange: count must be an integer in 1..1000, not ${count}`);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const base = FIRST_PORT + Math.floor(Math.random() * (LAST_PORT - FIRST_PORT - count + 1));
    let free = true;
    for (let port = base; free && port < base + count; port++) free = !handedOut.has(port) && (await portIsFree(port));
    if (!free) continue;
    for (let port = base; port < base + count; port++) handedOut.add(port);
    return base;
  }
  throw new Error(`no ${count} consecutive free ports found in ${FIRST_PORT}..${LAST_PORT} after ${ATTEMPTS} attempts`);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}
