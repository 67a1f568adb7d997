/**
 * `tessera certs create DIR NAME...`: a local CA and one certificate per service, made with the
 * openssl binary (what the compose setup's init step runs). Each NAME's certificate is valid for
 * NAME itself and every `--host`; existing files are kept, so a second run changes nothing.
 */
import type { Command } from 'commander';
import { makeCertificates } from '@tessera/protocol';
import { CliError } from '../errors.js';
import type { Runtime } from '../runtime.js';

export function registerCerts(program: Command, runtime: Runtime): void {
  const certs = program.command('certs').description('make TLS certificates for a cluster');
  certs
    .command('create')
    .description('make DIR/ca.crt and DIR/NAME.crt + DIR/NAME.key (mode 0600) for every NAME, with openssl')
    .argument('<dir>', 'where the files go (created with mode 0700)')
    .argument('<names...>', 'one per service, e.g. coordinator broker-1 broker-2; each is also a host name of its certificate')
    .option('--host <host>', 'another host name or IP address every certificate is valid for (repeatable)', collect, [] as string[])
    .action((dir: string, names: string[], options: { host: string[] }) => {
      const hosts = options.host.length > 0 ? options.host : ['localhost', '127.0.0.1'];
      let made;
      try {
        made = makeCertificates(dir, names.map((name) => ({ name, hosts: [name, ...hosts] })));
      } catch (error) {
        throw new CliError((error as Error).message, { cause: error });
      }
      runtime.err(`CA ${made.caFile}; certificates for ${names.join(', ')} in ${dir}`);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
