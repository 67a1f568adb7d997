#!/usr/bin/env node
/**
 * `node dist/main.js [flags]`: runs the coordinator until SIGTERM or SIGINT.
 * Flags win over env (TESSERA_PORT, TESSERA_HOST, TESSERA_DATA_DIR, TESSERA_LOG_LEVEL).
 */
import { Command, InvalidArgumentError } from 'commander';
import {
  DEFAULT_BROKER_TIMEOUT_MS,
  DEFAULT_COORDINATOR_PORT,
  DEFAULT_GROUP_SESSION_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
} from '@tessera/protocol';
import { createLogger, onShutdown } from '@tessera/service';
import { startCoordinator } from './index.js';

function integer(min: number, max: number) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return value;
  };
}

/** A number from the environment, checked like the flag it stands for. */
function fromEnv(name: string, fallback: number, parse: (raw: string) => number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return parse(raw);
  } catch (error) {
    process.stderr.write(`tessera-coordinator: ${name}=${raw}: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

const program = new Command('tessera-coordinator')
  .description('Tessera coordinator: the control plane of the cluster')
  .option('--port <port>', 'port to listen on (0: any free port)', integer(0, 65_535), fromEnv('TESSERA_PORT', DEFAULT_COORDINATOR_PORT, integer(0, 65_535)))
  .option('--host <host>', 'address to listen on', process.env.TESSERA_HOST ?? '127.0.0.1')
  .option('--data-dir <dir>', 'directory of coordinator.db', process.env.TESSERA_DATA_DIR ?? './data/coordinator')
  .option('--heartbeat-ms <ms>', 'broker heartbeat interval', integer(10, 600_000), DEFAULT_HEARTBEAT_MS)
  .option('--broker-timeout-ms <ms>', 'a broker silent this long is dead', integer(50, 3_600_000), DEFAULT_BROKER_TIMEOUT_MS)
  .option(
    '--group-session-timeout-ms <ms>',
    'a group member silent this long is removed',
    integer(100, 3_600_000),
    DEFAULT_GROUP_SESSION_TIMEOUT_MS,
  )
  .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent', process.env.TESSERA_LOG_LEVEL ?? 'info')
  .option('--log-pretty', 'human-readable logs', process.env.TESSERA_LOG_PRETTY === '1')
  .action(async (options) => {
    const running = await startCoordinator({
      port: options.port,
      host: options.host,
      dataDir: options.dataDir,
      heartbeatMs: options.heartbeatMs,
      brokerTimeoutMs: options.brokerTimeoutMs,
      groupSessionTimeoutMs: options.groupSessionTimeoutMs,
      notifyTimeoutMs: 2_000,
      logLevel: options.logLevel,
      logPretty: options.logPretty === true,
    });
    onShutdown(createLogger('coordinator', {}, { level: options.logLevel, pretty: options.logPretty === true }), running.close);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`tessera-coordinator: ${(error as Error).message}\n`);
  process.exit(1);
});
