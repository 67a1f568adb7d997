// The compose demo's push-subscription receiver: verifies each delivery's signature (the
// README's recipe) with the secret the demo-topic step saved when it created the subscription
// (read at start and again whenever a delivery does not verify), answers 200, and logs a line
// every 1,000 deliveries. A delivery that does not verify gets a 401 and is retried by the
// cluster (for example while the secret file is still being written).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const secretFile = process.env.DEMO_WEBHOOK_SECRET_FILE ?? '/webhook/secret';
const port = Number(process.env.DEMO_WEBHOOK_PORT ?? 8080);
const host = process.env.DEMO_WEBHOOK_HOST ?? '0.0.0.0';
const MAX_BODY_BYTES = 4 * 1024 * 1024;
let received = 0;

function readSecret() {
  try {
    return readFileSync(secretFile, 'utf8').trim();
  } catch {
    return '';
  }
}

// Read once at start, and again only when a delivery does not verify with it (the file may have
// been written or changed since).
let secret = readSecret();

function signedWith(key, t, v1, body) {
  if (key === '') return false;
  const expected = createHmac('sha256', key).update(`${t}.${body}`).digest();
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function verified(header, body) {
  const [t, v1] = String(header ?? '').split(',').map((part) => part.slice(part.indexOf('=') + 1));
  if (!t || !v1 || Math.abs(Date.now() - Number(t)) > 300_000) return false;
  if (signedWith(secret, t, v1, body)) return true;
  const current = readSecret();
  if (current === secret) return false;
  secret = current;
  return signedWith(secret, t, v1, body);
}

http
  .createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > MAX_BODY_BYTES) req.destroy();
    });
    req.on('end', () => {
      if (!verified(req.headers['tessera-signature'], body)) return res.writeHead(401).end();
      res.writeHead(200).end();
      if (++received % 1000 === 0) console.log(`demo-webhook: ${received} deliveries verified, last ${body}`);
    });
  })
  .listen(port, host, () => console.log(`demo-webhook: listening on ${host}:${port}, secret from ${secretFile}`));

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
