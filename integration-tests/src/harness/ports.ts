import net from 'node:net';

/**
 * Ports this process handed out already. The OS may give a just-released port to the next
 * listen(0), before the service it was picked for has bound it: two processes of one cluster
 * then got the same port and one failed to start (EADDRINUSE). Never hand out a port twice.
 */
const handedOut = new Set<number>();

/**
 * Ports below the OS's ephemeral range (Linux: 32768 and up), so an outgoing connection cannot
 * take a port between the moment it is picked here and the moment its service binds it.
 */
const FIRST_PORT = 20_000;
const LAST_PORT = 32_000;

function candidatePort(): Promise<number> {
  const port = FIRST_PORT + Math.floor(Math.random() * (LAST_PORT - FIRST_PORT));
  return portIsFree(port).then((free) => (free ? port : 0));
}

/** A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range, never one this process handed out before. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await candidatePort();
    if (port === 0 || handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found that was not handed out already');
}

function portIsFree(candidate: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port: candidate, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A base port P with P..P+count all free a moment ago: `tessera dev` takes P and P+1..P+N. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + count > 65_535) continue;
    let free = true;
    for (let p = base + 1; p <= base + count && free; p++) free = !handedOut.has(p) && (await portIsFree(p));
    if (free) {
      for (let p = base + 1; p <= base + count; p++) handedOut.add(p);
      return base;
    }
  }
  throw new Error('no free port range found');
}
