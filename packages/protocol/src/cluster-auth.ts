/**
 * Service identity between the coordinator and the brokers: every call one cluster member
 * makes to another carries `x-tessera-cluster-auth: v1 node=NODE ts=MS sig=SIG`, where SIG is
 * HMAC-SHA256 (node:crypto) with the cluster secret over the node, the timestamp, the method,
 * the path with its query and the SHA-256 of the body. A receiver that holds the secret knows
 * the call comes from a member, was not altered and is recent (within `maxSkewMs`).
 *
 * Several secrets can be configured for rotation: the first signs, every one verifies.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const CLUSTER_AUTH_HEADER = 'x-tessera-cluster-auth';
/** How far a signed call's timestamp may be from the receiver's clock. */
export const CLUSTER_AUTH_MAX_SKEW_MS = 60_000;
export const CLUSTER_SECRET_MIN_CHARS = 16;

/** `coordinator` or `broker-ID`: who signed a call. */
export type ClusterNode = 'coordinator' | `broker-${number}`;

export function brokerNode(id: number): ClusterNode {
  return `broker-${id}`;
}

/** Signs calls as `node` with the first of `secrets`. */
export class ClusterSigner {
  constructor(
    private readonly secrets: readonly string[],
    readonly node: ClusterNode,
  ) {
    checkSecrets(secrets);
  }

  /** The header for one call; `pathAndQuery` is the URL's path and query exactly as sent. */
  header(method: string, pathAndQuery: string, body: string | Buffer | undefined, nowMs = Date.now()): string {
    const ts = String(Math.round(nowMs));
    return `v1 node=${this.node} ts=${ts} sig=${mac(this.secrets[0]!, this.node, ts, method, pathAndQuery, body)}`;
  }

  /** The secret this signer signs with: a channel opened by a signed call keys its messages' MACs with it (messageMac). */
  get signingSecret(): string {
    return this.secrets[0]!;
  }
}

/**
 * HMAC-SHA256 (node:crypto) with `secret` over `parts`, in order: the MAC of one message of a
 * channel that a signed call opened, so that every message after it is a member's and unaltered.
 */
export function messageMac(secret: string, parts: readonly Buffer[]): Buffer {
  const hmac = createHmac('sha256', secret);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/** A checked call: the node it names and the secret that signed it (a channel it opens keys its MACs with it), or why it was refused. */
export type ClusterAuthResult = { ok: true; node: ClusterNode; secret: string } | { ok: false; reason: 'malformed' | 'expired' | 'bad_signature' };

/** Checks a call's header against every accepted secret. */
export function verifyClusterAuth(
  secrets: readonly string[],
  header: string,
  method: string,
  pathAndQuery: string,
  body: string | Buffer | undefined,
  nowMs = Date.now(),
): ClusterAuthResult {
  const match = /^v1 node=(coordinator|broker-\d{1,9}) ts=(\d{1,16}) sig=([A-Za-z0-9_-]{43})$/.exec(header);
  if (!match) return { ok: false, reason: 'malformed' };
  const [, node, ts, sig] = match as unknown as [string, ClusterNode, string, string];
  if (Math.abs(nowMs - Number(ts)) > CLUSTER_AUTH_MAX_SKEW_MS) return { ok: false, reason: 'expired' };
  const given = Buffer.from(sig, 'base64url');
  for (const secret of secrets) {
    const expected = Buffer.from(mac(secret, node, ts, method, pathAndQuery, body), 'base64url');
    if (expected.length === given.length && timingSafeEqual(expected, given)) return { ok: true, node, secret };
  }
  return { ok: false, reason: 'bad_signature' };
}

function mac(secret: string, node: string, ts: string, method: string, pathAndQuery: string, body: string | Buffer | undefined): string {
  const bodyHash = createHash('sha256')
    .update(body ?? '')
    .digest('hex');
  return createHmac('sha256', secret).update(`v1\n${node}\n${ts}\n${method.toUpperCase()}\n${pathAndQuery}\n${bodyHash}`).digest('base64url');
}

function checkSecrets(secrets: readonly string[]): void {
  if (secrets.length === 0) throw new Error('no cluster secret given');
  for (const secret of secrets) {
    if (secret.length < CLUSTER_SECRET_MIN_CHARS) {
      throw new Error(`a cluster secret must have at least ${CLUSTER_SECRET_MIN_CHARS} characters`);
    }
  }
}

/**
 * The cluster secrets from `--cluster-secret-file` (one per line) or TESSERA_CLUSTER_SECRET
 * (comma-separated); the first one signs. Undefined when neither is set.
 */
export function loadClusterSecrets(file: string | undefined, env: string | undefined): string[] | undefined {
  const raw = file !== undefined ? readFileSync(file, 'utf8').split(/\r?\n/) : env?.split(',');
  if (raw === undefined) return undefined;
  const secrets = raw.map((line) => line.trim()).filter((line) => line.length > 0);
  checkSecrets(secrets);
  return secrets;
}
