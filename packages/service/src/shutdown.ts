import { STOP_ON_STDIN_END_ENV } from '@tessera/protocol';
import type { Logger } from './logger.js';

/**
 * Stops the service cleanly on SIGTERM or SIGINT, once; a second signal exits at once. With
 * `TESSERA_STOP_ON_STDIN_END=1`, the end of standard input stops it as SIGTERM would.
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>): void {
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
  if (process.env[STOP_ON_STDIN_END_ENV] === '1') {
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
