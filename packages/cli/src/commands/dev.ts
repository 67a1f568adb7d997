/** `tessera dev`: a local cluster of real processes. */
import { type Command, Option } from 'commander';
import { DevCluster } from '../dev/supervisor.js';
import { integer, port } from '../options.js';
import type { Runtime } from '../runtime.js';

export interface DevCommandOptions {
  brokers: number;
  dataDir: string;
  port: number;
  restartOnExit?: boolean;
  tls: boolean;
  logLevel?: string;
}

export function registerDev(program: Command, runtime: Runtime): void {
  program
    .command('dev')
    .description('run a local cluster: a coordinator on 127.0.0.1:PORT and N brokers on the next ports (Ctrl-C stops it)')
    .option('-b, --brokers <n>', 'number of brokers', integer(1, 64), 3)
    .option('-d, --data-dir <dir>', 'where every process keeps its data (kept across runs)', '.tessera/dev')
    .option('-p, --port <port>', 'coordinator port; brokers take the next ones', port, 7070)
    .option('--restart-on-exit', 'restart a process that dies (after a short backoff)')
    .option('--no-tls', 'serve plain HTTP instead of HTTPS with a local CA made with openssl (DIR/tls)')
    .addOption(
      new Option('--log-level <level>', 'log level of every process').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
    )
    .action(async (options: DevCommandOptions) => {
      const cluster = new DevCluster({
        brokers: options.brokers,
        dataDir: options.dataDir,
        port: options.port,
        restartOnExit: options.restartOnExit ?? false,
        tls: options.tls,
        logLevel: options.logLevel,
        stdout: runtime.io.stdout,
        stderr: runtime.io.stderr,
      });
      process.exitCode = await cluster.run();
    });
}
