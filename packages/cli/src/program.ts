/**
 * The `tessera` command line: builds the commander program and runs it, turning
 * every failure into one line on stderr and an exit code (0 ok, 1 failed, 2 bad
 * usage, 130 interrupted).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { type Credentials, defaultCoordinatorUrl } from '@tessera/client';
import type { TlsClientOptions } from '@tessera/protocol';
import { registerAuth } from './commands/auth.js';
import { registerCerts } from './commands/certs.js';
import { registerCluster } from './commands/cluster.js';
import { registerData } from './commands/data.js';
import { registerDev } from './commands/dev.js';
import { registerGroups } from './commands/groups.js';
import { registerSubscriptions } from './commands/subscriptions.js';
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
      new Option('--coordinator <url>', 'coordinator URL (default: a tessera dev cluster\'s in .tessera/dev, else http://127.0.0.1:7070)')
        .env('TESSERA_COORDINATOR')
        .default(defaultCoordinatorUrl({ TESSERA_DEV_DIR: process.env.TESSERA_DEV_DIR }))
        .argParser(coordinatorUrl),
    )
    .addOption(
      new Option('--ca-file <file>', 'PEM CA the cluster\'s certificates chain to (default: a tessera dev cluster\'s, else the system CAs)').env(
        'TESSERA_CA_FILE',
      ),
    )
    .addOption(new Option('--principal <name>', 'authenticate as this principal (with --secret or TESSERA_SECRET)'))
    .addOption(new Option('--secret <secret>', "the principal's secret (visible to other local users in the process list: prefer TESSERA_SECRET)"))
    .addOption(new Option('--token <token>', 'a token instead of a principal and secret (or TESSERA_TOKEN)'))
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
      const options = action.optsWithGlobals<{ coordinator: string; caFile?: string; principal?: string; secret?: string; token?: string }>();
      runtime.coordinatorUrl = options.coordinator;
      runtime.tls = tlsFromFlags(options.caFile);
      runtime.credentials = credentialsFromFlags(options);
    });
  registerDev(program, runtime);
  registerTopics(program, runtime);
  registerData(program, runtime);
  registerGroups(program, runtime);
  registerSubscriptions(program, runtime);
  registerCluster(program, runtime);
  registerAuth(program, runtime);
  registerCerts(program, runtime);
  return program;
}

/**
 * `--token`, or `--principal` with `--secret` (or TESSERA_SECRET); undefined leaves the
 * client to find them (TESSERA_TOKEN, TESSERA_PRINCIPAL and TESSERA_SECRET, a dev cluster's).
 */
export function credentialsFromFlags(
  flags: { principal?: string; secret?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
): Credentials | undefined {
  if (flags.token !== undefined) {
    if (flags.principal !== undefined || flags.secret !== undefined) throw new CliError('give --token or --principal, not both', { exitCode: 2 });
    return { token: flags.token };
  }
  if (flags.principal === undefined) {
    if (flags.secret !== undefined) throw new CliError('--secret needs --principal', { exitCode: 2 });
    return undefined;
  }
  const secret = flags.secret ?? env.TESSERA_SECRET;
  if (secret === undefined || secret === '') throw new CliError(`--principal ${flags.principal} needs --secret or TESSERA_SECRET`, { exitCode: 2 });
  return { principal: flags.principal, secret };
}

/** `--ca-file`: the CA to verify the cluster's certificates with; undefined lets the client find one. */
function tlsFromFlags(caFile: string | undefined): TlsClientOptions | undefined {
  if (caFile === undefined) return undefined;
  try {
    return { ca: readFileSync(caFile), rejectUnauthorized: true };
  } catch (error) {
    throw new CliError(`cannot read --ca-file ${caFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { exitCode: 2 });
  }
}

/** Runs the CLI with `argv` (as process.argv: node, script, args...) and returns the exit code. */
export async function main(argv: string[], io: Io, createClient?: ConstructorParameters<typeof Runtime>[2]): Promise<number> {
  const runtime = new Runtime(io, defaultCoordinatorUrl(), createClient);
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
    const hint = await wrongServiceHint(error, runtime.errorContext, runtime.tls === undefined ? {} : { tls: runtime.tls });
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
