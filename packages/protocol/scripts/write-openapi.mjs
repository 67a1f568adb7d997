// Writes docs/openapi/coordinator.json and docs/openapi/broker.json from the protocol's schemas
// (`pnpm openapi`); a test fails when the checked-in files differ from what this writes.
import { writeFileSync } from 'node:fs';
import { openApiDocument } from '@tessera/protocol';

for (const service of ['coordinator', 'broker']) {
  const file = new URL(`../../../docs/openapi/${service}.json`, import.meta.url);
  writeFileSync(file, `${JSON.stringify(openApiDocument(service), null, 2)}\n`);
  process.stderr.write(`wrote docs/openapi/${service}.json\n`);
}
