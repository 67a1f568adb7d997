import net from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function portIsFree(candidate: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port: candidate, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A base port P with P..P+count all free a moment ago (the OS picks P): `tessera dev` takes P and P+1..P+N. */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort();
    if (base + count > 65_535) continue;
    let free = true;
    for (let p = base; p <= base + count && free; p++) free = await portIsFree(p);
    if (free) return base;
  }
  throw new Error('no free port range found');
}
