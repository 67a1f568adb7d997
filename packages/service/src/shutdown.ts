import { Option } from 'commander';
import { STOP_ON_STDIN_END_ENV } from '@tessera/protocol';
import type { Logger } from './logger.js';

/**
 * `--stop-on-stdin-end` (env TESSERA_STOP_ON_STDIN_END), for a supervisor that holds the other
 * end of the service's standard input (`tessera dev`, the test harness): when the supervisor
 * dies in any way, SIGKILL included, the pipe closes and the service stops with it.
 */
export function stopOnStdinEndOption(): Option {
  return new Option(
    '--stop-on-stdin-end',
    'stop as on SIGTERM when standard input ends (for a supervisor holding the other end: the service stops when it dies)',
  ).env(STOP_ON_STDIN_END_ENV);
}

/**
 * Stops the service cleanly on SIGTERM or SIGINT, once; a second signal exits at once. With
 * `stopOnStdinEnd`, the end of standard input stops it as SIGTERM would.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>, options: { stopOnStdinEnd?: boolean } = {}): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals | 'end of standard input') => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  if (options.stopOnStdinEnd === true) {
    // The supervisor is gone: stop, unless already stopping (this is not a second signal).
    const onInputEnd = () => {
      if (!stopping) handler('end of standard input');
    };
    // Reading is what makes 'end' come; nothing is expected on the pipe.
    process.stdin.on('end', onInputEnd);
    process.stdin.on('error', onInputEnd);
    process.stdin.resume();
  }
}
