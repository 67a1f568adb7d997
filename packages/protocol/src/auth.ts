/**
 * The wire contract of client authentication and authorization: principals, their secrets,
 * ACL entries, the token exchange, and the auth state the coordinator ships to brokers.
 *
 * A principal exchanges its secret for a short-lived token signed by the coordinator
 * (`POST /auth/token` with HTTP Basic credentials) and sends `Authorization: Bearer TOKEN`
 * on every call. Brokers verify tokens with the coordinator's public key and apply the ACL
 * table they received, without calling the coordinator per request.
 */
import { z } from 'zod';

export const PRINCIPAL_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,200}$/;
export const PRINCIPAL_SECRET_MIN_CHARS = 16;
export const PRINCIPAL_SECRET_MAX_CHARS = 1024;
/** How long a token is valid by default; a revoked principal's token stops working on brokers within a heartbeat, and in any case by then. */
export const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
/** The principal a cluster starts with, holding cluster admin. */
export const BOOTSTRAP_ADMIN = 'admin';

export const principalName = z.string().regex(PRINCIPAL_NAME_PATTERN, 'principal names are 1 to 200 characters of [A-Za-z0-9._@-]');
export const principalSecret = z
  .string()
  .min(PRINCIPAL_SECRET_MIN_CHARS, `a secret has at least ${PRINCIPAL_SECRET_MIN_CHARS} characters`)
  .max(PRINCIPAL_SECRET_MAX_CHARS);

/** `POST /users`: without a secret, the coordinator generates one and answers it (once). */
export const createPrincipalRequest = z.object({ name: principalName, secret: principalSecret.optional() }).strict();
export type CreatePrincipalRequest = z.infer<typeof createPrincipalRequest>;

/** `POST /users/:name/secret`: rotation; every token of the old secret stops working like a revoked one. */
export const rotateSecretRequest = z.object({ secret: principalSecret.optional() }).strict();
export type RotateSecretRequest = z.infer<typeof rotateSecretRequest>;

export const ACL_OPERATIONS = ['produce', 'consume', 'admin'] as const;
export type AclOperation = (typeof ACL_OPERATIONS)[number];
export const ACL_RESOURCES = ['topic', 'group', 'cluster'] as const;
export type AclResource = (typeof ACL_RESOURCES)[number];

/** A name in an ACL: a topic or group name, a prefix of one, or `*` for every one. */
const aclName = z.string().regex(/^(\*|[A-Za-z0-9._-]{1,200})$/, 'an ACL names a topic or group (or a prefix of one) with [A-Za-z0-9._-], or *');

/**
 * One permission: `principal` may do `operation` on the topic or group `name` (every name
 * starting with it when `prefix`), or on the cluster. `admin` on a topic allows everything on
 * it (create, delete, produce, consume); groups have `consume` only; the cluster has `admin`.
 */
export const aclEntry = z
  .object({
    principal: principalName,
    resource: z.enum(ACL_RESOURCES),
    name: z.union([aclName, z.literal('')]).default(''),
    prefix: z.boolean().default(false),
    operation: z.enum(ACL_OPERATIONS),
  })
  .strict()
  .superRefine((acl, ctx) => {
    if (acl.resource === 'cluster') {
      if (acl.operation !== 'admin') ctx.addIssue({ code: 'custom', path: ['operation'], message: 'the cluster has the admin operation only' });
      if (acl.name !== '' || acl.prefix) ctx.addIssue({ code: 'custom', path: ['name'], message: 'a cluster ACL names no topic or group' });
      return;
    }
    if (acl.name === '') ctx.addIssue({ code: 'custom', path: ['name'], message: `a ${acl.resource} ACL needs a name, a prefix or *` });
    if (acl.name === '*' && acl.prefix) ctx.addIssue({ code: 'custom', path: ['prefix'], message: '* is not a prefix' });
    if (acl.resource === 'group' && acl.operation !== 'consume') {
      ctx.addIssue({ code: 'custom', path: ['operation'], message: 'groups have the consume operation only' });
    }
  });
export type AclEntry = z.output<typeof aclEntry>;
export type AclInput = z.input<typeof aclEntry>;

export interface PrincipalInfo {
  name: string;
  createdMs: number;
}

export interface PrincipalListResponse {
  principals: PrincipalInfo[];
}

/** The answer to creating a principal or rotating its secret: the only time the secret is shown. */
export interface PrincipalSecretResponse extends PrincipalInfo {
  secret: string;
}

export interface AclListResponse {
  acls: AclEntry[];
}

/** `POST /auth/token`. */
export interface TokenResponse {
  token: string;
  principal: string;
  expiresAtMs: number;
}

/**
 * `GET /internal/auth` (cluster members only): everything a broker needs to check clients.
 * `credential` changes when a principal's secret does, so tokens of an old secret are refused.
 */
export interface AuthStateResponse {
  version: number;
  enabled: boolean;
  /** Public keys (JWK) whose signatures are accepted. */
  keys: Array<Record<string, unknown>>;
  principals: Array<{ name: string; credential: string }>;
  acls: AclEntry[];
}
