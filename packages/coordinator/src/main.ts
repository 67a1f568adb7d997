#!/usr/bin/env node
/**
 * `node dist/main.js [flags]`: runs the coordinator until SIGTERM or SIGINT.
 * Every flag has an environment variable (shown by --help); a flag wins over its variable.
 */
import { Command, Option } from 'commander';
import {
  DEFAULT_ALLOWED_TARGETS,
  DEFAULT_BROKER_TIMEOUT_MS,
  DEFAULT_COORDINATOR_PORT,
  DEFAULT_GROUP_SESSION_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_TOKEN_TTL_MS,
} from '@tessera/protocol';
import { createLogger, edgeConfig, edgeOptions, integerFlag as integer, onShutdown, stopOnStdinEndOption, storageOptions } from '@tessera/service';
import {
  DEFAULT_BROKER_START_GRACE_MS,
  DEFAULT_LEADERSHIP_BALANCE_DELAY_MS,
  DEFAULT_RETENTION_BYTES,
  DEFAULT_RETENTION_MS,
  DEFAULT_STORAGE_MIN_FREE_BYTES,
  DEFAULT_STORAGE_RESERVE_BYTES,
  DEFAULT_MAX_CONCURRENT_MOVES,
  DEFAULT_REPLACE_DEAD_AFTER_MS,
  DEFAULT_GROUP_RETENTION_MS,
} from './config.js';
import { startCoordinator } from './index.js';

const program = new Command('tessera-coordinator')
  .description('Tessera coordinator: the control plane of the cluster')
  .addOption(
    new Option('--port <port>', 'port to listen on (0: any free port)')
      .argParser(integer(0, 65_535))
      .default(DEFAULT_COORDINATOR_PORT)
      .env('TESSERA_PORT'),
  )
  .addOption(new Option('--host <host>', 'address to listen on').default('127.0.0.1').env('TESSERA_HOST'))
  .addOption(new Option('--data-dir <dir>', 'directory of coordinator.db').default('./data/coordinator').env('TESSERA_DATA_DIR'))
  .addOption(
    new Option('--heartbeat-ms <ms>', 'broker heartbeat interval')
      .argParser(integer(10, 600_000))
      .default(DEFAULT_HEARTBEAT_MS)
      .env('TESSERA_HEARTBEAT_MS'),
  )
  .addOption(
    new Option('--broker-timeout-ms <ms>', 'a broker silent this long is dead')
      .argParser(integer(50, 3_600_000))
      .default(DEFAULT_BROKER_TIMEOUT_MS)
      .env('TESSERA_BROKER_TIMEOUT_MS'),
  )
  .addOption(
    new Option('--group-session-timeout-ms <ms>', 'a group member silent this long is removed')
      .argParser(integer(100, 3_600_000))
      .default(DEFAULT_GROUP_SESSION_TIMEOUT_MS)
      .env('TESSERA_GROUP_SESSION_TIMEOUT_MS'),
  )
  .addOption(
    new Option('--group-retention-ms <ms>', 'a consumer group without members this long is deleted with its offsets (-1: never; default 7 days)')
      .argParser(integer(-1, Number.MAX_SAFE_INTEGER))
      .default(DEFAULT_GROUP_RETENTION_MS)
      .env('TESSERA_GROUP_RETENTION_MS'),
  )
  .addOption(
    new Option('--max-concurrent-moves <n>', 'partition moves (rebalance, drain, dead secondary replacement) running at once')
      .argParser(integer(1, 1_000))
      .default(DEFAULT_MAX_CONCURRENT_MOVES)
      .env('TESSERA_MAX_CONCURRENT_MOVES'),
  )
  .addOption(
    new Option('--replace-dead-after-ms <ms>', 'an rf=2 partition whose secondary is dead this long gets a new one')
      .argParser(integer(0, 86_400_000))
      .default(DEFAULT_REPLACE_DEAD_AFTER_MS)
      .env('TESSERA_REPLACE_DEAD_AFTER_MS'),
  )
  .addOption(
    new Option('--broker-start-grace-ms <ms>', 'after a start, no broker is declared dead before one was heard or this long passed')
      .argParser(integer(0, 3_600_000))
      .default(DEFAULT_BROKER_START_GRACE_MS)
      .env('TESSERA_BROKER_START_GRACE_MS'),
  )
  .addOption(
    new Option('--leadership-balance-delay-ms <ms>', 'primaries unbalanced this long get leadership transfers')
      .argParser(integer(0, 86_400_000))
      .default(DEFAULT_LEADERSHIP_BALANCE_DELAY_MS)
      .env('TESSERA_LEADERSHIP_BALANCE_DELAY_MS'),
  )
  .addOption(
    new Option('--default-retention-ms <ms>', 'retention by age of the topics that set none (-1: no limit; default 7 days)')
      .argParser(integer(-1, Number.MAX_SAFE_INTEGER))
      .default(DEFAULT_RETENTION_MS)
      .env('TESSERA_DEFAULT_RETENTION_MS'),
  )
  .addOption(
    new Option('--default-retention-bytes <n>', 'retention by size per partition of the topics that set none (-1: no limit, the default)')
      .argParser(integer(-1, Number.MAX_SAFE_INTEGER))
      .default(DEFAULT_RETENTION_BYTES)
      .env('TESSERA_DEFAULT_RETENTION_BYTES'),
  )
  .addOption(
    new Option('--log-level <level>', 'log level')
      .choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
      .default('info')
      .env('TESSERA_LOG_LEVEL'),
  )
  .addOption(new Option('--log-pretty', 'human-readable logs instead of JSON lines').env('TESSERA_LOG_PRETTY'))
  .addOption(
    new Option('--auth <on|off>', 'client authentication and ACLs (off: every client may do everything)')
      .choices(['on', 'off'])
      .default('on')
      .env('TESSERA_AUTH'),
  )
  .addOption(
    new Option('--token-ttl-ms <ms>', 'how long a client token is valid')
      .argParser(integer(1_000, 86_400_000))
      .default(DEFAULT_TOKEN_TTL_MS)
      .env('TESSERA_TOKEN_TTL_MS'),
  )
  .addOption(
    new Option(
      '--subscription-allowed-targets <list>',
      'addresses push subscriptions may target: public, loopback, CIDR ranges, host names (comma-separated)',
    )
      .default(DEFAULT_ALLOWED_TARGETS)
      .env('TESSERA_SUBSCRIPTION_ALLOWED_TARGETS'),
  );
const storage = storageOptions(
  { reserveBytes: DEFAULT_STORAGE_RESERVE_BYTES, minFreeBytes: DEFAULT_STORAGE_MIN_FREE_BYTES },
  { reserveLetsCommit: 'topic deletions', refused: 'topic creation is refused' },
);
for (const option of [...storage, ...edgeOptions(), stopOnStdinEndOption()]) program.addOption(option);
program.action(async (options) => {
  const running = await startCoordinator({
    ...edgeConfig(options),
    port: options.port,
    host: options.host,
    dataDir: options.dataDir,
    heartbeatMs: options.heartbeatMs,
    brokerTimeoutMs: options.brokerTimeoutMs,
    groupSessionTimeoutMs: options.groupSessionTimeoutMs,
    groupRetentionMs: options.groupRetentionMs,
    notifyTimeoutMs: 2_000,
    maxConcurrentMoves: options.maxConcurrentMoves,
    replaceDeadAfterMs: options.replaceDeadAfterMs,
    brokerStartGraceMs: options.brokerStartGraceMs,
    leadershipBalanceDelayMs: options.leadershipBalanceDelayMs,
    defaultRetentionMs: options.defaultRetentionMs,
    defaultRetentionBytes: options.defaultRetentionBytes,
    storageReserveBytes: options.storageReserveBytes,
    storageMinFreeBytes: options.storageMinFreeBytes,
    logLevel: options.logLevel,
    logPretty: options.logPretty === true,
    auth: options.auth === 'on',
    tokenTtlMs: options.tokenTtlMs,
    subscriptionAllowedTargets: options.subscriptionAllowedTargets,
    // From the environment only: a flag's value would show in the process list.
    bootstrapAdminSecret: process.env.TESSERA_BOOTSTRAP_ADMIN_SECRET,
  });
  onShutdown(createLogger('coordinator', {}, { level: options.logLevel, pretty: options.logPretty === true }), running.close, {
    stopOnStdinEnd: options.stopOnStdinEnd === true,
  });
});

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`tessera-coordinator: ${(error as Error).message}\n`);
  process.exit(1);
});
