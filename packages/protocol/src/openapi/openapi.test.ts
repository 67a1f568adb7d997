// Proves the OpenAPI descriptions: docs/openapi/*.json are exactly what the schemas generate (so
// the checked-in files cannot drift from the code), every public route of the route tables is
// described and no internal one, every $ref resolves, and a request body the services accept
// passes its JSON Schema shape.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BROKER_ROUTES, COORDINATOR_ROUTES } from '../routes.js';
import { INTERNAL_ROUTES, openApiDocument, openApiPath, type ServiceName } from './document.js';

const services: ServiceName[] = ['coordinator', 'broker'];
const tables = { coordinator: COORDINATOR_ROUTES, broker: BROKER_ROUTES };

function refs(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const item of value) refs(item, found);
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string') found.push(inner);
      else refs(inner, found);
    }
  }
  return found;
}

describe.each(services)('the OpenAPI description of the %s', (service) => {
  const document = openApiDocument(service) as {
    openapi: string;
    paths: Record<string, Record<string, { operationId: string; requestBody?: unknown; responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, { required?: string[]; additionalProperties?: boolean }> };
  };

  it('is the checked-in docs/openapi file (run `pnpm openapi` after changing the API)', () => {
    const file = new URL(`../../../../docs/openapi/${service}.json`, import.meta.url);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(document);
  });

  it('describes every public route of the route table and leaves the internal ones out', () => {
    expect(document.openapi).toBe('3.1.0');
    const described = new Set(Object.keys(document.paths));
    for (const route of Object.values(tables[service])) {
      if (INTERNAL_ROUTES[service].includes(route)) expect(described, route).not.toContain(openApiPath(route));
      else expect(described, route).toContain(openApiPath(route));
    }
    expect(INTERNAL_ROUTES[service].length).toBeGreaterThan(0);
    for (const path of described) expect(path).not.toMatch(/^\/internal\/|^\/brokers\/(register|heartbeat)$|^\/partitions\//);
  });

  it('gives every operation a unique id, an error response and resolvable schema references', () => {
    const ids = Object.values(document.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
    expect(new Set(ids).size).toBe(ids.length);
    for (const methods of Object.values(document.paths)) for (const op of Object.values(methods)) expect(op.responses.default).toBeDefined();
    const all = refs(document);
    expect(all.length).toBeGreaterThan(0);
    for (const ref of all) expect(Object.keys(document.components.schemas)).toContain(ref.replace('#/components/schemas/', ''));
  });
});

describe('the generated request schemas', () => {
  it('keep the limits and strictness the services enforce', () => {
    const coordinator = openApiDocument('coordinator') as { components: { schemas: Record<string, any> } };
    const create = coordinator.components.schemas.CreateTopicRequest;
    expect(create.additionalProperties).toBe(false);
    expect(create.required).toEqual(['name', 'partitions']);
    expect(create.properties.partitions).toMatchObject({ type: 'integer', minimum: 1, maximum: 1024 });
    expect(create.properties.name.pattern).toBe('^[A-Za-z0-9._-]{1,200}$');
    const broker = openApiDocument('broker') as { components: { schemas: Record<string, any> } };
    expect(broker.components.schemas.ProduceRequest.properties.records).toMatchObject({ minItems: 1, maxItems: 100_000 });
  });
});
