/**
 * Who may call each coordinator route. Cluster members (brokers, signed with the cluster
 * secret) may call everything; for clients: reading the cluster needs any principal; topics
 * need `admin` on the topic (or cluster admin) to create or delete and `produce` to produce;
 * group membership needs `consume` on the group and its topic; brokers, drains, principals and
 * ACLs need cluster admin; the broker-only routes are for members alone.
 */
import { COORDINATOR_ROUTES as R } from '@tessera/protocol';
import { type Requirement, type RuleTable, stringIn } from '@tessera/service';

const authenticated: Requirement = { kind: 'authenticated' };
const clusterAdmin: Requirement = { kind: 'cluster-admin' };
const member: Requirement = { kind: 'member' };

export const COORDINATOR_RULES: RuleTable = {
  [`GET ${R.health}`]: () => ({ kind: 'public' }),
  [`GET ${R.ready}`]: () => ({ kind: 'public' }),
  // Scraped by Prometheus; it names topics, groups and principals but holds no records.
  [`GET ${R.metrics}`]: () => ({ kind: 'public' }),
  // The handler checks the Basic credentials itself.
  [`POST ${R.authToken}`]: () => ({ kind: 'public' }),
  // The API's description, like the health routes.
  [`GET ${R.openapi}`]: () => ({ kind: 'public' }),
  [`GET ${R.metadata}`]: () => ({ kind: 'authenticated', sharedWithMembers: true }),

  [`POST ${R.topics}`]: ({ body }) => ({ kind: 'topic', operation: 'admin', topics: [stringIn(body, 'name')] }),
  [`GET ${R.topics}`]: () => authenticated,
  [`GET ${R.topic}`]: () => authenticated,
  [`DELETE ${R.topic}`]: ({ params }) => ({ kind: 'topic', operation: 'admin', topics: [params.topic ?? ''] }),
  [`PATCH ${R.topic}`]: ({ params }) => ({ kind: 'topic', operation: 'admin', topics: [params.topic ?? ''] }),
  [`POST ${R.topicPurge}`]: ({ params }) => ({ kind: 'topic', operation: 'admin', topics: [params.topic ?? ''] }),
  [`POST ${R.routedProduce}`]: ({ params }) => ({ kind: 'topic', operation: 'produce', topics: [params.topic ?? ''] }),

  [`POST ${R.brokerRegister}`]: () => member,
  [`POST ${R.brokerHeartbeat}`]: () => member,
  [`POST ${R.isr}`]: () => member,
  [`POST ${R.reassignComplete}`]: () => member,
  [`GET ${R.brokers}`]: () => authenticated,
  [`POST ${R.brokerDrain}`]: () => clusterAdmin,
  [`DELETE ${R.brokerDrain}`]: () => clusterAdmin,

  [`GET ${R.clusterStatus}`]: () => authenticated,
  [`GET ${R.clusterEvents}`]: () => authenticated,

  [`GET ${R.groups}`]: () => authenticated,
  [`GET ${R.group}`]: () => authenticated,
  [`POST ${R.groupJoin}`]: ({ params, body }) => ({ kind: 'group', group: params.group ?? '', topics: [stringIn(body, 'topic')] }),
  [`POST ${R.groupHeartbeat}`]: ({ params }) => ({ kind: 'group', group: params.group ?? '', topics: [] }),
  [`POST ${R.groupLeave}`]: ({ params }) => ({ kind: 'group', group: params.group ?? '', topics: [] }),
  // Rewriting a group's offsets is what its members do by committing: `consume` on the group and the topic.
  [`POST ${R.groupResetOffsets}`]: ({ params, body }) => ({ kind: 'group', group: params.group ?? '', topics: [stringIn(body, 'topic')] }),
  [`DELETE ${R.group}`]: ({ params }) => ({ kind: 'group', group: params.group ?? '', topics: [] }),

  [`GET ${R.users}`]: () => clusterAdmin,
  [`POST ${R.users}`]: () => clusterAdmin,
  [`DELETE ${R.user}`]: () => clusterAdmin,
  [`POST ${R.userSecret}`]: () => clusterAdmin,
  [`GET ${R.acls}`]: () => clusterAdmin,
  [`POST ${R.acls}`]: () => clusterAdmin,
  [`POST ${R.aclsRemove}`]: () => clusterAdmin,
  [`GET ${R.authState}`]: () => member,

  // Push subscriptions: creating one needs consume on its topic (and produce on its dead-letter
  // topic, checked by the handler); describe, pause, resume and delete check consume on its topic
  // in the handler, and the list holds only the subscriptions on topics the caller may consume
  // (their URLs may carry the receivers' credentials).
  [`POST ${R.subscriptions}`]: ({ body }) => ({ kind: 'topic', operation: 'consume', topics: [stringIn(body, 'topic')] }),
  [`GET ${R.subscriptions}`]: () => authenticated,
  [`GET ${R.subscription}`]: () => authenticated,
  [`POST ${R.subscriptionPause}`]: () => authenticated,
  [`POST ${R.subscriptionResume}`]: () => authenticated,
  [`DELETE ${R.subscription}`]: () => authenticated,
  // Holds every subscription's signing secret.
  [`GET ${R.subscriptionsState}`]: () => member,
};
