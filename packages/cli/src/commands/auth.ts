/** `tessera users create|list|delete|rotate` and `tessera acl add|list|remove`: principals and their permissions. */
import { type Command, Option } from 'commander';
import type { AclEntry, AclInput, PrincipalSecretResponse } from '@tessera/client';
import { CliError } from '../errors.js';
import { type Column, renderTable } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

export function registerAuth(program: Command, runtime: Runtime): void {
  const users = program.command('users').description('principals: who may connect (needs cluster admin)');

  // create and rotate both set a secret and show it once: on stdout, so it can go straight to a file.
  const secretCommand = (name: string, description: string, note: string, call: (principal: string, secret?: string) => Promise<PrincipalSecretResponse>) =>
    users
      .command(name)
      .description(description)
      .argument('<name>', 'principal name')
      .addOption(new Option('--new-secret <secret>', 'the secret to set (at least 16 characters)').env('TESSERA_NEW_SECRET'))
      .addOption(jsonOption())
      .action(async (principal: string, options: { newSecret?: string; json?: boolean }) => {
        const answer = await call(principal, options.newSecret);
        if (options.json) return runtime.out(jsonLine(answer));
        runtime.err(`${note} ${answer.name}; shown once, below`);
        runtime.out(answer.secret + '\n');
      });

  secretCommand(
    'create',
    'create a principal; prints its secret once (generated unless --new-secret or TESSERA_NEW_SECRET gives one)',
    'created principal',
    (principal, secret) => runtime.client().admin.createPrincipal(principal, secret),
  );

  users
    .command('list')
    .alias('ls')
    .description('every principal')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const principals = await runtime.client().admin.listPrincipals();
      if (options.json) return runtime.out(jsonLine({ principals }));
      runtime.out(
        renderTable(
          [
            { header: 'PRINCIPAL', value: (p) => p.name },
            { header: 'CREATED', value: (p) => new Date(p.createdMs).toISOString() },
          ],
          principals,
        ),
      );
    });

  users
    .command('delete')
    .alias('rm')
    .description('revoke a principal: its tokens stop working within one broker heartbeat (its ACLs are kept)')
    .argument('<name>', 'principal name')
    .action(async (name: string) => {
      await runtime.client().admin.deletePrincipal(name);
      runtime.err(`deleted principal ${name}`);
    });

  secretCommand(
    'rotate',
    "give a principal a new secret; tokens of the old one stop working like a deleted principal's",
    'new secret for principal',
    (principal, secret) => runtime.client().admin.rotateSecret(principal, secret),
  );

  const acl = program.command('acl').description('permissions of principals on topics, groups and the cluster (needs cluster admin)');
  const resourceOptions = (command: Command) =>
    command
      .requiredOption('--allow-principal <name>', 'the principal the permission is for')
      .option('--topic <name>', 'a topic (* for every topic)')
      .option('--topic-prefix <prefix>', 'every topic whose name starts with this')
      .option('--group <name>', 'a consumer group (* for every group)')
      .option('--group-prefix <prefix>', 'every group whose name starts with this')
      .option('--cluster', 'the cluster itself (brokers, drains, topics, users, ACLs)')
      .addOption(
        new Option('--operation <op>', 'produce or consume on topics, consume on groups, admin on topics or the cluster').choices([
          'produce',
          'consume',
          'admin',
        ]),
      );

  resourceOptions(acl.command('add').description('grant a permission'))
    .addOption(jsonOption())
    .action(async (options: AclFlags) => {
      const entry = aclFromFlags(options);
      const { added } = await runtime.client().admin.addAcl(entry);
      runtime.err(`${added ? 'granted' : 'already granted'}: ${describeAcl(entry)}`);
    });

  resourceOptions(acl.command('remove').alias('rm').description('take a permission back'))
    .action(async (options: AclFlags) => {
      const entry = aclFromFlags(options);
      const { removed } = await runtime.client().admin.removeAcl(entry);
      if (!removed) throw new CliError(`no such permission: ${describeAcl(entry)}`);
      runtime.err(`removed: ${describeAcl(entry)}`);
    });

  acl
    .command('list')
    .alias('ls')
    .description("every permission, or one principal's")
    .option('--allow-principal <name>', 'only this principal')
    .addOption(jsonOption())
    .action(async (options: { allowPrincipal?: string; json?: boolean }) => {
      const acls = await runtime.client().admin.listAcls(options.allowPrincipal);
      if (options.json) return runtime.out(jsonLine({ acls }));
      const columns: Array<Column<AclEntry>> = [
        { header: 'PRINCIPAL', value: (a) => a.principal },
        { header: 'OPERATION', value: (a) => a.operation },
        { header: 'RESOURCE', value: (a) => a.resource },
        { header: 'NAME', value: (a) => (a.resource === 'cluster' ? '-' : a.prefix ? `${a.name}*` : a.name) },
        { header: 'MATCH', value: (a) => (a.resource === 'cluster' ? '-' : a.prefix ? 'prefix' : a.name === '*' ? 'any' : 'exact') },
      ];
      runtime.out(renderTable(columns, acls));
    });
}

/** The ACL's principal is `--allow-principal` (as in Kafka's kafka-acls): `--principal` is who runs the command. */
interface AclFlags {
  allowPrincipal: string;
  topic?: string;
  topicPrefix?: string;
  group?: string;
  groupPrefix?: string;
  cluster?: boolean;
  operation?: 'produce' | 'consume' | 'admin';
}

/** The one resource the flags name, with the operation (`admin` for the cluster, `consume` for groups by default). */
export function aclFromFlags(flags: AclFlags): AclInput {
  const given = [
    flags.topic !== undefined && { resource: 'topic' as const, name: flags.topic, prefix: false },
    flags.topicPrefix !== undefined && { resource: 'topic' as const, name: flags.topicPrefix, prefix: true },
    flags.group !== undefined && { resource: 'group' as const, name: flags.group, prefix: false },
    flags.groupPrefix !== undefined && { resource: 'group' as const, name: flags.groupPrefix, prefix: true },
    flags.cluster === true && { resource: 'cluster' as const, name: '', prefix: false },
  ].filter((entry) => entry !== false);
  if (given.length !== 1) {
    throw new CliError('name exactly one of --topic, --topic-prefix, --group, --group-prefix, --cluster', { exitCode: 2 });
  }
  const resource = given[0]!;
  const operation = flags.operation ?? (resource.resource === 'cluster' ? 'admin' : resource.resource === 'group' ? 'consume' : undefined);
  if (operation === undefined) throw new CliError('a topic permission needs --operation produce, consume or admin', { exitCode: 2 });
  return { principal: flags.allowPrincipal, ...resource, operation };
}

function describeAcl(acl: AclInput): string {
  const target =
    acl.resource === 'cluster' ? 'the cluster' : `${acl.resource} ${acl.prefix ? `prefix ${acl.name}` : acl.name === '*' ? '*' : acl.name}`;
  return `${acl.principal} may ${acl.operation} on ${target}`;
}
