/** `tessera subscriptions create|list|describe|pause|resume|delete` and `tessera dlq replay`. */
import { type Command, Option } from 'commander';
import { DEAD_LETTER_HEADERS, DEAD_LETTER_HEADER_NAMES, SUBSCRIPTION_DEFAULTS, type CreateSubscriptionRequest, type Subscription } from '@tessera/protocol';
import { CliError } from '../errors.js';
import { plural } from '../output/format.js';
import { renderFields, renderTable } from '../output/table.js';
import { jsonLine } from '../output/write.js';
import { integer, nonEmpty, nonNegativeInt, positiveInt } from '../options.js';
import { requireTopic } from '../preflight.js';
import type { Runtime } from '../runtime.js';
import { jsonOption } from './common.js';

interface CreateOptions {
  topic: string;
  url: string;
  filterKeyPrefix?: string;
  maxAttempts?: number;
  backoffMs?: [number, number];
  deadLetterTopic?: string;
  maxInFlight?: number;
  timeoutMs?: number;
  fromBeginning?: boolean;
  json?: boolean;
}

/** `--backoff-ms INITIAL[,MAX]`. */
function backoff(text: string): [number, number] {
  const [first, second] = text.split(',');
  const initial = integer(1, 600_000)(first ?? '');
  const max = second === undefined ? Math.max(initial, SUBSCRIPTION_DEFAULTS.backoffMaxMs) : integer(1, 3_600_000)(second);
  return [initial, max];
}

export function registerSubscriptions(program: Command, runtime: Runtime): void {
  const subscriptions = program.command('subscriptions').alias('subs').description('push subscriptions: the cluster POSTs each record of a topic to a URL');

  subscriptions
    .command('create')
    .description('create a subscription; prints its signing secret once (verify each delivery with it, see the README)')
    .argument('<name>', 'subscription name')
    .requiredOption('--topic <topic>', 'topic whose records are delivered')
    .requiredOption('--url <url>', 'http(s) URL each record is POSTed to')
    .option('--filter-key-prefix <prefix>', 'deliver only records whose key starts with this text', nonEmpty)
    .option('--max-attempts <n>', 'attempts per record before it goes to the dead-letter topic (needs --dead-letter-topic)', integer(1, 1_000))
    .option('--backoff-ms <initial[,max]>', `retry wait: doubles from INITIAL up to MAX, with jitter (default ${SUBSCRIPTION_DEFAULTS.backoffInitialMs},${SUBSCRIPTION_DEFAULTS.backoffMaxMs})`, backoff)
    .option('--dead-letter-topic <topic>', 'where records go after --max-attempts (default: retried until delivered)')
    .option('--max-in-flight <n>', `requests at once for this subscription on one broker (default ${SUBSCRIPTION_DEFAULTS.maxInFlight})`, integer(1, 256))
    .option('--timeout-ms <ms>', `deadline of one attempt (default ${SUBSCRIPTION_DEFAULTS.timeoutMs})`, integer(100, 120_000))
    .option('--from-beginning', 'deliver the records already in the topic too (default: from now)')
    .addOption(jsonOption())
    .action(async (name: string, options: CreateOptions) => {
      runtime.errorContext.topic = options.topic;
      const request: CreateSubscriptionRequest = {
        name,
        topic: options.topic,
        url: options.url,
        ...(options.filterKeyPrefix === undefined ? {} : { filterKeyPrefix: options.filterKeyPrefix }),
        ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
        ...(options.backoffMs === undefined ? {} : { backoffInitialMs: options.backoffMs[0], backoffMaxMs: options.backoffMs[1] }),
        ...(options.deadLetterTopic === undefined ? {} : { deadLetterTopic: options.deadLetterTopic }),
        ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        ...(options.fromBeginning ? { fromBeginning: true } : {}),
      };
      const created = await runtime.client().subscriptions.create(request);
      if (options.json) return runtime.out(jsonLine(created));
      runtime.out(renderFields([...fields(created), ['secret', created.secret]]) + '\n');
      runtime.err('the secret is shown only now: keep it where your receiver can read it');
    });

  subscriptions
    .command('list')
    .alias('ls')
    .description('list the subscriptions on topics you may consume from (every one for a cluster admin)')
    .addOption(jsonOption())
    .action(async (options: { json?: boolean }) => {
      const list = await runtime.client().subscriptions.list();
      if (options.json) return runtime.out(jsonLine({ subscriptions: list }));
      if (list.length === 0) return runtime.err('no subscriptions');
      runtime.out(
        renderTable(
          [
            { header: 'name', value: (s) => s.name },
            { header: 'topic', value: (s) => s.topic },
            { header: 'state', value: (s) => (s.suspended === null ? s.state : `${s.state}, suspended`) },
            { header: 'url', value: (s) => s.url },
            { header: 'dead letters', value: (s) => s.deadLetterTopic ?? '-' },
          ],
          list,
        ),
      );
    });

  subscriptions
    .command('describe')
    .description('settings, state and, per partition, the delivering broker, next offset, lag, attempts and last error')
    .argument('<name>', 'subscription name')
    .addOption(jsonOption())
    .action(async (name: string, options: { json?: boolean }) => {
      const description = await runtime.client().subscriptions.describe(name);
      if (options.json) return runtime.out(jsonLine(description));
      runtime.out(renderFields([...fields(description), ['total lag', description.lag]]) + '\n');
      runtime.out(
        renderTable(
          [
            { header: 'partition', value: (p) => p.partition },
            { header: 'broker', value: (p) => p.broker ?? '-' },
            { header: 'next offset', value: (p) => p.offset ?? '-' },
            { header: 'high watermark', value: (p) => p.highWatermark ?? '-' },
            { header: 'lag', value: (p) => p.lag ?? '-' },
            { header: 'attempts', value: (p) => p.attempts },
            { header: 'delivered', value: (p) => p.delivered },
            { header: 'dead-lettered', value: (p) => p.deadLettered },
            { header: 'last error', value: (p) => p.lastError ?? '-' },
          ],
          description.partitions,
        ),
      );
    });

  for (const [command, verb] of [
    ['pause', 'stop delivering (progress is kept)'],
    ['resume', 'deliver again from where it stopped'],
  ] as const) {
    subscriptions
      .command(command)
      .description(verb)
      .argument('<name>', 'subscription name')
      .action(async (name: string) => {
        const subscription = await runtime.client().subscriptions[command](name);
        const suspended = subscription.suspended === null ? '' : `, and suspended: ${subscription.suspended.reason}`;
        runtime.err(`subscription ${subscription.name} is ${subscription.state}${suspended}`);
      });
  }

  subscriptions
    .command('delete')
    .description('delete a subscription (its deliveries stop within a heartbeat)')
    .argument('<name>', 'subscription name')
    .action(async (name: string) => {
      await runtime.client().subscriptions.delete(name);
      runtime.err(`deleted subscription ${name}`);
    });

  const dlq = program.command('dlq').description('dead-letter topics');
  dlq
    .command('replay')
    .description(
      'produce the records of a dead-letter topic back to the topic each came from (its tessera-dlq-topic header), ' +
        'without the dead-letter headers; prints one JSON line per record; commits as GROUP so a replay never repeats',
    )
    .argument('<dead-letter-topic>', 'the dead-letter topic')
    .requiredOption('-g, --group <group>', 'consumer group that remembers what was replayed')
    .option('--to <topic>', 'replay into this topic instead of each record\'s source topic')
    .option('-n, --max-messages <n>', 'stop after this many records', positiveInt)
    .addOption(new Option('--idle-timeout-ms <ms>', 'stop when no record arrived for this long').argParser(nonNegativeInt).default(2_000))
    .action(async (topic: string, options: { group: string; to?: string; maxMessages?: number; idleTimeoutMs: number }) => {
      await replay(runtime, topic, options);
    });
}

function fields(s: Subscription): Array<[string, unknown]> {
  return [
    ['name', s.name],
    ['topic', s.topic],
    ['url', s.url],
    ['state', s.state],
    ['suspended', s.suspended === null ? '-' : `since ${new Date(s.suspended.sinceMs).toISOString()}: ${s.suspended.reason}`],
    ['group', s.group],
    ['filter key prefix', s.filterKeyPrefix ?? '-'],
    ['max attempts', s.maxAttempts ?? 'until delivered'],
    ['backoff ms', `${s.backoffInitialMs}..${s.backoffMaxMs}`],
    ['dead-letter topic', s.deadLetterTopic ?? '-'],
    ['max in flight', s.maxInFlight],
    ['timeout ms', s.timeoutMs],
    ['created by', s.createdBy],
  ];
}

async function replay(runtime: Runtime, topic: string, options: { group: string; to?: string; maxMessages?: number; idleTimeoutMs: number }): Promise<void> {
  runtime.errorContext.topic = topic;
  runtime.errorContext.group = options.group;
  await requireTopic(runtime, topic);
  if (options.to !== undefined) await requireTopic(runtime, options.to);
  const client = runtime.client();
  const consumer = client.consumer({ group: options.group, topic, fromBeginning: true, waitMs: Math.min(1_000, Math.max(1, options.idleTimeoutMs)) });
  const producer = client.producer();
  let replayed = 0;
  let lastRecordMs = Date.now();
  try {
    while (options.maxMessages === undefined || replayed < options.maxMessages) {
      const records = await consumer.poll({ maxRecords: Math.min(500, (options.maxMessages ?? Infinity) - replayed) });
      if (records.length === 0) {
        if (Date.now() - lastRecordMs >= options.idleTimeoutMs) break;
        continue;
      }
      lastRecordMs = Date.now();
      // The sends of a poll start together (the producer keeps their order per partition);
      // the lines come out in record order, up to the first record that is not a dead letter
      // or whose send failed, and the poll is committed only when every record is replayed.
      const sends: Array<Promise<string>> = [];
      let notDeadLetter: CliError | undefined;
      for (const record of records) {
        const source = options.to ?? record.headers[DEAD_LETTER_HEADERS.topic]?.toString('utf8');
        if (source === undefined) {
          notDeadLetter = new CliError(`record ${record.partition}/${record.offset} of ${topic} has no ${DEAD_LETTER_HEADERS.topic} header: not a dead letter (use --to TOPIC)`);
          break;
        }
        const headers = Object.fromEntries(Object.entries(record.headers).filter(([name]) => !DEAD_LETTER_HEADER_NAMES.has(name)));
        sends.push(
          producer
            .send({ topic: source, key: record.key, value: record.value ?? Buffer.alloc(0), headers })
            .then((stored) => jsonLine({ from: { topic, partition: record.partition, offset: record.offset }, to: { topic: source, partition: stored.partition, offset: stored.offset } })),
        );
      }
      for (const line of await Promise.allSettled(sends)) {
        if (line.status === 'rejected') throw line.reason;
        runtime.out(line.value);
        replayed++;
      }
      if (notDeadLetter !== undefined) throw notDeadLetter;
      await consumer.commit(records);
    }
  } finally {
    await producer.close();
    await consumer.close();
  }
  runtime.err(`replayed ${plural(replayed, 'record')} from ${topic}`);
}
