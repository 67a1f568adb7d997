#!/usr/bin/env node
// `pnpm test:soak --minutes 30`: runs the fault-injection suite with random seeds until the time
// is up. Every schedule prints its seed; a failing one replays with TESSERA_FAULT_SEEDS=<seed>.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' } } });
const minutes = Number(values.minutes);
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error(`test:soak: --minutes must be a positive number, got "${values.minutes}"`);
  process.exit(2);
}
const result = spawnSync('npx', ['vitest', 'run', '--project', 'integration', 'integration-tests/src/fault.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, TESSERA_SOAK_MINUTES: String(minutes) },
});
process.exit(result.status ?? 1);
