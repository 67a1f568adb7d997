/**
 * Who may call each broker route. Cluster members (the coordinator and other brokers, signed
 * with the cluster secret) may call everything; clients need `produce` on the topic to produce
 * (checked per partition by the handler for a frame of many), `consume` on every topic they
 * fetch, and `consume` on the group and its topics to commit or read committed offsets.
 * Replication and notifications are for members alone. The data stream's upgrade needs an
 * authenticated caller; its calls are checked as the routes they stand for.
 */
import { BROKER_ROUTES as R, DATA_STREAM_PATH } from '@tessera/protocol';
import { type RuleTable, stringIn, topicsIn } from '@tessera/service';

export const BROKER_RULES: RuleTable = {
  [`GET ${R.health}`]: () => ({ kind: 'public' }),
  [`GET ${R.ready}`]: () => ({ kind: 'public' }),
  [`GET ${R.metrics}`]: () => ({ kind: 'public' }),
  [`POST ${R.produce}`]: ({ params }) => ({ kind: 'topic', operation: 'produce', topics: [params.topic ?? ''] }),
  // A frame carries many partitions, perhaps of topics the caller may not produce to: the
  // handler checks `produce` per partition and refuses only those (FORBIDDEN in their answer).
  [`POST ${R.produceBatches}`]: () => ({ kind: 'authenticated' }),
  [`GET ${R.openapi}`]: () => ({ kind: 'public' }),
  // The upgrade to the clients' data stream; each call on it is then checked as its route.
  [`GET ${DATA_STREAM_PATH}`]: () => ({ kind: 'authenticated' }),
  [`POST ${R.fetch}`]: ({ body }) => ({ kind: 'topic', operation: 'consume', topics: topicsIn(body, 'partitions') }),
  [`POST ${R.commit}`]: ({ body }) => ({ kind: 'group', group: stringIn(body, 'group'), topics: topicsIn(body, 'offsets') }),
  [`POST ${R.committedOffsets}`]: ({ body }) => ({ kind: 'group', group: stringIn(body, 'group'), topics: topicsIn(body, 'partitions') }),
  [`POST ${R.listOffsets}`]: ({ body }) => ({ kind: 'topic', operation: 'consume', topics: topicsIn(body, 'partitions') }),
  [`GET ${R.partitionOffsets}`]: ({ params }) => ({ kind: 'topic', operation: 'consume', topics: [params.topic ?? ''] }),
  [`POST ${R.adminGroupOffsets}`]: () => ({ kind: 'member' }),
  [`POST ${R.replicate}`]: () => ({ kind: 'member' }),
  [`POST ${R.metadataChanged}`]: () => ({ kind: 'member' }),
  // The coordinator asks primaries to purge after checking the client's `admin` on the topic.
  [`POST ${R.purge}`]: () => ({ kind: 'member' }),
};

