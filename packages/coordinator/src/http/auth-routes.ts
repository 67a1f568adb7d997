/** The coordinator's authentication API: the token exchange, principals, ACLs, and the auth state brokers fetch. */
import {
  COORDINATOR_ROUTES as R,
  aclEntry,
  createPrincipalRequest,
  parseOrThrow,
  principalName,
  rotateSecretRequest,
} from '@tessera/protocol';
import { AuthenticationFailure, type HttpService } from '@tessera/service';
import type { AuthRegistry } from '../auth/registry.js';

export function registerAuthRoutes(service: HttpService, auth: AuthRegistry): void {
  const { router } = service;
  router.post(R.authToken, async (ctx) => {
    try {
      ctx.body = await auth.issueToken(ctx.get('authorization') || undefined);
    } catch (error) {
      if (error instanceof AuthenticationFailure) service.metrics.authFailures.inc({ reason: error.reason });
      throw error;
    }
  });
  router.get(R.users, (ctx) => {
    ctx.body = auth.list();
  });
  router.post(R.users, async (ctx) => {
    ctx.status = 201;
    ctx.body = await auth.create(parseOrThrow(createPrincipalRequest, ctx.state.body));
  });
  router.delete(R.user, (ctx) => {
    auth.delete(parseOrThrow(principalName, ctx.params.name, 'principal name'));
    ctx.status = 204;
  });
  router.post(R.userSecret, async (ctx) => {
    const name = parseOrThrow(principalName, ctx.params.name, 'principal name');
    ctx.body = await auth.rotate(name, parseOrThrow(rotateSecretRequest, ctx.state.body ?? {}).secret);
  });
  router.get(R.acls, (ctx) => {
    const raw = ctx.query.principal;
    ctx.body = auth.acls(raw === undefined ? undefined : parseOrThrow(principalName, String(raw), 'principal in ?principal'));
  });
  router.post(R.acls, (ctx) => {
    const { added } = auth.addAcl(parseOrThrow(aclEntry, ctx.state.body));
    ctx.status = added ? 201 : 200;
    ctx.body = { added };
  });
  router.post(R.aclsRemove, (ctx) => {
    ctx.body = auth.removeAcl(parseOrThrow(aclEntry, ctx.state.body));
  });
  router.get(R.authState, (ctx) => {
    ctx.body = auth.state();
  });
}
