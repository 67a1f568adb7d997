#!/usr/bin/env node
// Runs every integration scenario against containers (TESSERA_LAUNCHER=containers), as the GitLab
// `integration` stage does. Without a reachable Docker engine it says so and runs nothing.
import { spawnSync } from 'node:child_process';
import { getContainerRuntimeClient } from 'testcontainers';

try {
  await getContainerRuntimeClient();
} catch (error) {
  console.log(`skipped: the container scenarios need a Docker engine and none is reachable (${String(error.message).split('\n')[0]})`);
  process.exit(process.env.TESSERA_REQUIRE_DOCKER === '1' ? 1 : 0);
}
const result = spawnSync('npx', ['vitest', 'run', '--project', 'integration', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, TESSERA_LAUNCHER: 'containers' },
});
process.exit(result.status ?? 1);
