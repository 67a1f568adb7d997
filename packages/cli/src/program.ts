/**
 * The `tessera` command line: builds the commander program and runs it, turning
 * every failure into one line on stderr and an exit code (0 ok, 1 failed, 2 bad
 * usage, 130 interrupted).
 */
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_COORDINATOR_URL } from '@tessera/protocol';
import { registerCluster } from './commands/cluster.js';
import { registerData } from './commands/data.js';
import { registerDev } from './commands/dev.js';
import { registerGroups } from './commands/groups.js';
import { registerTopics } from './commands/topics.js';
import { CliError, debugEnabled, describeError, wrongServiceHint } from './errors.js';
import { coordinatorUrl } from './options.js';
import { type Io, Runtime } from './runtime.js';

export const VERSION = '0.1.0';
export const USAGE_EXIT_CODE = 2;

export function buildProgram(runtime: Runtime): Command {
  const program = new Command('tessera')
    .description('Tessera: a partitioned, replicated message broker')
    .version(VERSION, '-V, --version')
    .addOption(
      new Option('--coordinator <url>', 'coordinator URL').env('TESSERA_COORDINATOR').default(DEFAULT_COORDINATOR_URL).argParser(coordinatorUrl),
    )
    .showHelpAfterError(false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => runtime.io.stdout.write(text),
      writeErr: (text) => runtime.io.stderr.write(text),
      // Commander's own errors (bad flag, bad number, missing argument) as one `tessera: ...` line.
      outputError: (text, write) => write(`tessera: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')}\n`),
    })
    .hook('preAction', (_program, action) => {
      runtime.coordinatorUrl = action.optsWithGlobals<{ coordinator: string }>().coordinator;
    });
  registerDev(program, runtime);
  registerTopics(program, runtime);
  registerData(program, runtime);
  registerGroups(program, runtime);
  registerCluster(program, runtime);
  return program;
}

/** Runs the CLI with `argv` (as process.argv: node, script, args...) and returns the exit code. */
export async function main(argv: string[], io: Io, createClient?: ConstructorParameters<typeof Runtime>[2]): Promise<number> {
  const runtime = new Runtime(io, process.env.TESSERA_COORDINATOR ?? DEFAULT_COORDINATOR_URL, createClient);
  const program = buildProgram(runtime);
  if (argv.length <= 2) {
    io.stderr.write(program.helpInformation());
    return USAGE_EXIT_CODE;
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with exit code 0; everything else is a usage error already printed.
      return error.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
    }
    const hint = await wrongServiceHint(error, runtime.errorContext);
    io.stderr.write(`tessera: ${hint ?? describeError(error, runtime.errorContext)}\n`);
    if (debugEnabled() && error instanceof Error) io.stderr.write(`${error.stack ?? error}\n`);
    if (debugEnabled() && error instanceof Error && error.cause instanceof Error) {
      io.stderr.write(`caused by: ${error.cause.stack ?? error.cause}\n`);
    }
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await runtime.close().catch(() => undefined);
  }
}
