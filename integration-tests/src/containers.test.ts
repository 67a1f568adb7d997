// The testcontainers path in one scenario: a cluster of containers from the repository's image
// serves a produce and a group consume. Runs where a Docker engine is reachable (the GitLab
// `integration` stage runs every scenario this way); elsewhere it skips and says why.
import { afterAll, describe, expect, it } from 'vitest';
import type { Cluster } from './harness/cluster.js';
import { dockerAvailable, startContainerCluster } from './harness/container-cluster.js';

const docker = await dockerAvailable();
if (!docker.ok) console.warn(`skipping the container scenario: ${docker.reason}`);

describe.skipIf(!docker.ok)('a cluster of containers', () => {
  let cluster: Cluster | undefined;

  afterAll(async () => {
    await cluster?.stop();
  });

  it('produces and consumes through containers started from the Dockerfile', async () => {
    cluster = await startContainerCluster({ name: 'containers' });
    const client = cluster.client();
    await client.admin.createTopic({ name: 'containers', partitions: 3 });
    const producer = client.producer();
    await Promise.all(Array.from({ length: 30 }, (_, i) => producer.send({ topic: 'containers', key: `k${i % 5}`, value: `v${i}` })));
    const consumer = client.consumer({ group: 'g', topic: 'containers', fromBeginning: true, waitMs: 500 });
    const seen = new Set<string>();
    while (seen.size < 30) for (const record of await consumer.poll()) seen.add(record.value!.toString());
    await consumer.close();
    expect(seen.size).toBe(30);
  }, 600_000);
});
