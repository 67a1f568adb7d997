/**
 * `@tessera/client`: the Node client library of Tessera.
 *
 * - `TesseraClient` — one per cluster; `client.admin`, `client.producer()`, `client.consumer()`.
 * - `Producer` — batched, ordered per partition, retried sends straight to each partition's primary.
 * - `Consumer` — a consumer group member: `poll()` + `commit()`, or `subscribe(handler)`.
 * - Errors are `TesseraError` with a stable `code`; `isRetriable` and friends tell them apart.
 */
export { TesseraClient, type ClientOptions } from './client.js';
export type { DataTransport } from './connection/connection.js';
export { type Credentials, discoverCredentials, readDevCredentials, type DevCredentialsFile, DEFAULT_DEV_DIR, DEV_CREDENTIALS_FILE } from './connection/credentials.js';
export { discoverTls, DEV_CA_FILE } from './connection/tls.js';
export { defaultCoordinatorUrl } from './connection/dev-cluster.js';
export type { Admin, PartitionLag, PartitionOffset } from './admin/admin.js';
export { Producer, type ProducerOptions } from './producer/producer.js';
export { Consumer, type ConsumerOptions, DEFAULT_COMMIT_INTERVAL_MS } from './consumer/consumer.js';
export type { OffsetReset, StartAt } from './consumer/positions.js';
export { Reader, type ReaderOptions } from './consumer/reader.js';
export type { Subscriptions } from './admin/subscriptions.js';
export type { SubscribeOptions } from './consumer/dead-letter.js';
export { codecs, type Bytes, type Codec, type ConsumedRecord, type ProducerRecord, type RecordMetadata } from './records.js';
export {
  TesseraError,
  ERRORS,
  isRetriable,
  isTesseraError,
  isNotPrimary,
  isStaleEpoch,
  isGenerationMismatch,
  isNetworkError,
  DEFAULT_COORDINATOR_URL,
  DEFAULT_RETRY,
} from '@tessera/protocol';
export type {
  TlsClientOptions,
  ErrorCode,
  ErrorDetails,
  RetryOptions,
  CreateTopicRequest,
  TopicConfig,
  TopicDescription,
  PartitionDescription,
  TopicListResponse,
  ClusterStatusResponse,
  BrokerStatus,
  GroupDescription,
  GroupListResponse,
  MetadataResponse,
  TopicMetadata,
  PartitionAssignment,
  BrokerInfo,
  AclEntry,
  AclInput,
  AclListResponse,
  PrincipalInfo,
  PrincipalSecretResponse,
} from '@tessera/protocol';
