/** `tessera produce`, `tessera consume`, `tessera bench`. */
import { type Command, Option } from 'commander';
import { DEFAULT_COMMIT_INTERVAL_MS } from '@tessera/client';
import { MAX_FETCH_WAIT_MS, MAX_PARTITIONS, MAX_RECORDS_PER_REQUEST } from '@tessera/protocol';
import { runFloor } from '../bench/floor.js';
import { checkTopicPrefix, runTargets } from '../bench/targets.js';
import { runBench } from '../bench/run.js';
import { parseOffsetSpec, type OffsetSpec } from '../consume/position.js';
import { runConsume, runRead } from '../consume/run.js';
import { CliError } from '../errors.js';
import { integer, nonEmpty, nonNegativeInt, positiveDecimal, positiveInt } from '../options.js';
import { runProduce } from '../produce/run.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

export function registerData(program: Command, runtime: Runtime): void {
  program
    .command('produce')
    .description('send one record per stdin line; exits 0 only when every line is acknowledged')
    .argument('<topic>', 'topic to write to')
    .addOption(new Option('-k, --key <key>', 'the key of every record').conflicts('keySeparator'))
    .addOption(
      new Option('-K, --key-separator <sep>', 'text before the first SEP is the key (a line without it has no key)')
        .argParser(nonEmpty)
        .conflicts('key'),
    )
    .option('--partition <n>', 'send every record to this partition instead of hashing the key', integer(0, MAX_PARTITIONS - 1))
    .addOption(
      new Option('--value-format <format>', 'how each value is written on its line: text (sent as UTF-8) or base64 (any bytes)')
        .choices(['text', 'base64'])
        .default('text'),
    )
    .addOption(new Option('--key-format <format>', 'how keys are written: text or base64').choices(['text', 'base64']).default('text'))
    .option('--linger-ms <ms>', 'how long a batch waits for more records (default 0)', integer(0, 60_000))
    .option('--batch-size <n>', 'most records per batch (one batch per partition in a request)', integer(1, MAX_RECORDS_PER_REQUEST))
    .action(async (topic: string, options: Parameters<typeof runProduce>[2]) => {
      await runProduce(runtime, topic, options);
    });

  program
    .command('consume')
    .description(
      'print records as JSON lines on stdout: as a member of a consumer group (--group), committing what was printed, ' +
        'or without a group from a position (--partition, --offset), committing nothing; ' +
        'a record with bytes that are not UTF-8 is printed in base64 with "encoding":"base64"',
    )
    .argument('<topic>', 'topic to read')
    .option('-g, --group <group>', 'consumer group id (read as a member of the group, committing)')
    .option('--from-beginning', 'start at the oldest record: a group with no committed offset, or a read without a group')
    .option('-p, --partition <n>', 'without a group: read only this partition (default: every partition)', integer(0, MAX_PARTITIONS - 1))
    .option(
      '-o, --offset <position>',
      'without a group: where to start: an offset N, earliest, latest, -N (N records before the end) or @TIME (epoch ms or ISO time); ' +
        'clamped to the log (default latest)',
      parseOffsetSpec,
    )
    .option('-e, --exit-at-end', 'without a group: exit at the end of the partitions as it was when reading started (default: follow)')
    .option('-n, --max-messages <n>', 'exit after this many records', positiveInt)
    .option('--idle-timeout-ms <ms>', 'exit when no new record arrived for this long', nonNegativeInt)
    .addOption(new Option('--poll-wait-ms <ms>', 'longest single long-poll').argParser(integer(0, MAX_FETCH_WAIT_MS)).hideHelp())
    .action(async (topic: string, options: ConsumeFlags) => {
      const withoutGroup = options.partition !== undefined || options.offset !== undefined || options.exitAtEnd === true;
      if (options.group !== undefined) {
        if (withoutGroup) throw new CliError('--partition, --offset and --exit-at-end read without a group: leave out --group', { exitCode: 2 });
        await runConsume(runtime, topic, { ...options, group: options.group });
        return;
      }
      if (!withoutGroup && options.fromBeginning !== true) {
        throw new CliError('give --group GROUP (read as a group member, committing) or --partition/--offset (read without a group)', { exitCode: 2 });
      }
      if (options.fromBeginning === true && options.offset !== undefined) throw new CliError('--from-beginning and --offset both say where to start: give one', { exitCode: 2 });
      const offset = options.offset ?? (options.fromBeginning === true ? { kind: 'earliest' as const } : { kind: 'latest' as const });
      await runRead(runtime, topic, { ...options, offset });
    });

  const bench = program
    .command('bench')
    .description('measure throughput, latency and CPU per record (load average and each process\'s CPU are in every report)');
  const modes = {
    produce: 'send N records of SIZE bytes with at most --max-in-flight unacknowledged; records/s, MB/s, ack latency',
    latency: 'send one record at a time; acknowledgement latency p50/p99/max',
    e2e: 'send at --rate records/s while a group member of this process reads; produce→delivery latency p50/p99/max',
    consume: 'store N records, then read them with a new group committing after every poll; records/s',
  } as const;
  for (const [mode, description] of Object.entries(modes) as Array<[keyof typeof modes, string]>) {
    const command = bench
      .command(mode)
      .description(description)
      .requiredOption('-t, --topic <topic>', 'topic (created when missing)')
      .option('-n, --messages <n>', 'records to send (or read)', positiveInt, mode === 'latency' ? 5_000 : 100_000)
      .option('-s, --size <bytes>', 'value size of each record', integer(0, 1024 * 1024), 100)
      .option('-c, --max-in-flight <n>', 'records sent and not yet acknowledged, at most (latency: always 1)', integer(1, 1_000_000), 1_000)
      .addOption(new Option('--concurrency <n>', 'old name of --max-in-flight').argParser(integer(1, 1_000_000)).hideHelp())
      .option('--batch-size <n>', 'most records per batch', integer(1, MAX_RECORDS_PER_REQUEST))
      .option('--linger-ms <ms>', 'how long a batch waits for more records (default 0)', integer(0, 60_000))
      .option('--max-requests-per-broker <n>', "the producer's maxInFlightRequests: produce requests out to one broker at a time (default 1)", integer(1, 100))
      .option('--rate <n>', 'records per second in total (e2e default 5000; others: as fast as possible)', positiveInt, mode === 'e2e' ? 5_000 : undefined)
      .option('--partitions <n>', 'partitions when the topic is created', integer(1, MAX_PARTITIONS), 6)
      .option('--replication-factor <n>', 'replication factor when the topic is created', integer(1, 2), 2)
      .option('--warmup <n>', 'records to send the same way first, not measured (default 0)', integer(0, 100_000_000));
    if (mode === 'e2e') {
      command.option('--commit-interval-ms <ms>', `the least time between two of the consumer's commits (default ${DEFAULT_COMMIT_INTERVAL_MS}, as subscribe(); 0: after every poll)`, integer(0, 60_000));
    }
    command
      .addOption(jsonOption())
      .action(async (options: Parameters<typeof runBench>[2] & { concurrency?: number }) => {
        const { concurrency, ...rest } = options;
        await runBench(runtime, mode, { ...rest, maxInFlight: concurrency ?? rest.maxInFlight });
      });
  }
  bench
    .command('targets')
    .description("the data plane's benchmark targets in one go (docs/operations.md): every run of the set on topics of its own, judged against its target, in one table")
    .option('--scale <fraction>', 'multiply the documented record counts (0.01 for a quick check; figures at another scale are not the documented runs)', positiveDecimal(10), 1)
    .option('--topic-prefix <prefix>', 'prefix of the topics it creates (default bench-targets-<time>)')
    .option('--keep-topics', 'keep the topics afterwards (default: deleted)')
    .option('--floor-dir <dir>', "run `bench floor` there first (a directory on the brokers' disk) and show this machine's floor in the report")
    .addOption(jsonOption())
    .action(async (options: { scale: number; topicPrefix?: string; keepTopics?: boolean; floorDir?: string; json?: boolean }) => {
      const topicPrefix = options.topicPrefix ?? `bench-targets-${Date.now().toString(36)}`;
      checkTopicPrefix(topicPrefix);
      await runTargets(runtime, {
        scale: options.scale,
        topicPrefix,
        keepTopics: options.keepTopics === true,
        ...(options.floorDir === undefined ? {} : { floorDir: options.floorDir }),
        ...(options.json ? { json: true } : {}),
      });
    });
  bench
    .command('floor')
    .description('what this machine allows with no Tessera code running: loopback round trip between two processes, fdatasync, a SQLite commit and a bare replicated write (client → primary → secondary, a commit on each) in DIR; no cluster needed')
    .option('-d, --dir <dir>', 'where to measure the commits: a directory on the disk the brokers use', '.')
    .option('-n, --rounds <n>', 'round trips, commits of each kind, and replicated writes', integer(10, 1_000_000), 2_000)
    .addOption(jsonOption())
    .action(async (options: Parameters<typeof runFloor>[1]) => {
      await runFloor(runtime, options);
    });
}

interface ConsumeFlags {
  group?: string;
  fromBeginning?: boolean;
  partition?: number;
  offset?: OffsetSpec;
  exitAtEnd?: boolean;
  maxMessages?: number;
  idleTimeoutMs?: number;
  pollWaitMs?: number;
}
