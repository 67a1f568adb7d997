#!/usr/bin/env node
/** The broker process: `node packages/broker/dist/main.js --id 1 --port 7071 --data-dir DIR`. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { type EdgeFlags, createLogger, edgeConfig, edgeOptions, onShutdown, stopOnStdinEndOption, storageOptions } from '@tessera/service';
import { startBroker } from './broker.js';
import { type BrokerConfig, DEFAULT_CONFIG } from './config.js';
import { setBrokerHeapGrowing } from './util/heap-growing.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

const program = new Command('tessera-broker')
  .description('Tessera broker: stores and replicates partitions')
  .addOption(new Option('--id <n>', 'broker id (required)').env('TESSERA_BROKER_ID').argParser(positiveInt).makeOptionMandatory())
  .addOption(new Option('--port <n>', 'port to listen on').env('TESSERA_PORT').argParser(positiveInt).default(DEFAULT_CONFIG.port))
  .addOption(new Option('--host <host>', 'address to listen on').env('TESSERA_HOST').default(DEFAULT_CONFIG.host))
  .addOption(new Option('--advertised-url <url>', 'URL clients reach this broker at (default http://HOST:PORT)').env('TESSERA_ADVERTISED_URL'))
  .addOption(
    new Option('--internal-url <url>', 'URL the coordinator and other brokers reach this broker at (default: the advertised URL)').env(
      'TESSERA_INTERNAL_URL',
    ),
  )
  .addOption(new Option('--data-dir <dir>', 'where the partition databases live').env('TESSERA_DATA_DIR').default('./data/broker'))
  .addOption(new Option('--coordinator <url>', 'coordinator URL').env('TESSERA_COORDINATOR').default(DEFAULT_CONFIG.coordinatorUrl))
  .addOption(
    new Option('--durability <mode>', 'SQLite synchronous mode').env('TESSERA_DURABILITY').choices(['full', 'normal']).default('full'),
  )
  .addOption(
    new Option('--heartbeat-ms <ms>', 'heartbeat interval').env('TESSERA_HEARTBEAT_MS').argParser(positiveInt).default(DEFAULT_CONFIG.heartbeatMs),
  )
  .addOption(
    new Option('--replica-timeout-ms <ms>', 'how long a failing in-sync secondary is retried before the ISR shrinks')
      .env('TESSERA_REPLICA_TIMEOUT_MS')
      .argParser(positiveInt)
      .default(DEFAULT_CONFIG.replicaTimeoutMs),
  )
  .addOption(
    new Option('--replication-transport <kind>', 'how replicate exchanges are sent to other brokers: a kept-open stream per peer, or one HTTP request each')
      .env('TESSERA_REPLICATION_TRANSPORT')
      .choices(['stream', 'http'])
      .default('stream'),
  )
  .addOption(
    new Option('--producer-state-expiry-ms <ms>', "how long a partition keeps an idle idempotent producer's state (default 7 days)")
      .env('TESSERA_PRODUCER_STATE_EXPIRY_MS')
      .argParser(positiveInt)
      .default(DEFAULT_CONFIG.producerStateExpiryMs),
  )
  .addOption(
    new Option('--idempotency-window-ms <ms>', 'how long a partition remembers the Idempotency-Key of a JSON produce (default 2 minutes)')
      .env('TESSERA_IDEMPOTENCY_WINDOW_MS')
      .argParser(positiveInt)
      .default(DEFAULT_CONFIG.idempotencyWindowMs),
  )
  .addOption(
    new Option('--retention-check-ms <ms>', 'time between two background retention passes (log start moves, batches below it deleted)')
      .env('TESSERA_RETENTION_CHECK_MS')
      .argParser(positiveInt)
      .default(DEFAULT_CONFIG.retentionCheckMs),
  )
  .addOption(
    new Option('--max-value-bytes <n>', 'largest record value')
      .env('TESSERA_MAX_VALUE_BYTES')
      .argParser(positiveInt)
      .default(DEFAULT_CONFIG.maxValueBytes),
  )
  .addOption(
    new Option('--log-level <level>', 'log level')
      .env('TESSERA_LOG_LEVEL')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('info'),
  )
  .addOption(new Option('--log-pretty', 'human-readable logs instead of JSON lines').env('TESSERA_LOG_PRETTY'));
const storage = storageOptions(
  { reserveBytes: DEFAULT_CONFIG.storageReserveBytes, minFreeBytes: DEFAULT_CONFIG.storageMinFreeBytes },
  { reserveLetsCommit: 'deletions', refused: 'writes are refused' },
);
for (const option of [...storage, ...edgeOptions(), stopOnStdinEndOption()]) program.addOption(option);

program.parse();
// The flags are the broker's configuration, but for the coordinator's flag name.
const {
  coordinator,
  tlsCert,
  tlsKey,
  tlsCa,
  clusterSecretFile,
  insecureCluster,
  headersTimeoutMs,
  requestTimeoutMs,
  keepAliveTimeoutMs,
  maxConnections,
  stopOnStdinEnd,
  ...flags
} = program.opts<Omit<BrokerConfig, 'coordinatorUrl' | 'logger' | 'limits'> & EdgeFlags & { coordinator: string; logLevel: string; stopOnStdinEnd?: boolean }>();
let edge;
try {
  edge = edgeConfig({ tlsCert, tlsKey, tlsCa, clusterSecretFile, insecureCluster, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections });
} catch (error) {
  process.stderr.write(`tessera-broker: ${(error as Error).message}\n`);
  process.exit(1);
}

const logger = createLogger('broker', { brokerId: flags.id }, { level: flags.logLevel, pretty: flags.logPretty });
setBrokerHeapGrowing();
try {
  const broker = await startBroker({ ...flags, ...edge, coordinatorUrl: coordinator, logger });
  onShutdown(logger, () => broker.close(), { stopOnStdinEnd });
} catch (error) {
  if (error instanceof Error && error.name === 'MigrationError') {
    // One line that says what to do, not a stack trace.
    process.stderr.write(`tessera-broker: ${error.message}\n`);
  } else {
    logger.fatal({ err: error }, 'broker failed to start');
  }
  process.exit(1);
}
