#!/usr/bin/env node
/** The `tessera` executable. */
import { isClosedPipe } from './output/write.js';
import { main } from './program.js';

// A reader that went away (`tessera topics list | head -1`) is not an error; commands
// that care (consume) see it on their own writes.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (!isClosedPipe(error)) throw error;
  });
}

const exitCode = await main(process.argv, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr });
// Exit now: keep-alive sockets or timers of the client must not hold a finished command open.
// stdout and stderr are synchronous for files, pipes and terminals on Linux, so nothing written is lost.
process.exit(exitCode);
