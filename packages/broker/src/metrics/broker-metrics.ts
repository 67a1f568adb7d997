/**
 * The broker's Prometheus metrics, registered in the service's prom-client registry. The
 * broker does not depend on prom-client itself, so the few metric kinds it needs are small
 * objects of the shape the registry reads (`{name, help, type, get()}`). Names follow the
 * dashboards in grafana/: `tessera_broker_` prefix, base units, `_total` on counters.
 */
import { registerCollectors, type CollectorMetric, type CollectorSample as Sample, type HttpService } from '@tessera/service';

type Labels = Sample['labels'];

function labelKey(labels: Labels): string {
  return JSON.stringify(labels);
}

export class CounterMetric implements CollectorMetric {
  readonly type = 'counter' as const;
  private readonly values = new Map<string, Sample>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels, by = 1): void {
    const key = labelKey(labels);
    const sample = this.values.get(key);
    if (sample) sample.value += by;
    else this.values.set(key, { value: by, labels });
  }
  /** Exports the series at 0 until its first increment, so rates and increases over it exist from the start. */
  zero(labels: Labels): void {
    const key = labelKey(labels);
    if (!this.values.has(key)) this.values.set(key, { value: 0, labels });
  }
  /** Stops exporting the series whose labels `gone` picks (what they counted is gone with them). */
  remove(gone: (labels: Labels) => boolean): void {
    for (const [key, sample] of this.values) if (gone(sample.labels)) this.values.delete(key);
  }
  async get() {
    return { name: this.name, help: this.help, type: this.type, values: [...this.values.values()], aggregator: 'sum' };
  }
}

/** A gauge whose samples are computed at scrape time. */
export class CollectedGauge implements CollectorMetric {
  readonly type = 'gauge' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly collect: () => Sample[],
  ) {}
  async get() {
    return { name: this.name, help: this.help, type: this.type, values: this.collect(), aggregator: 'sum' };
  }
}

/** One histogram series: cumulative bucket counts, sum and count. */
interface HistogramSeries {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram. Without labels its one series is exported from the start; a labelled one
 * (`labelled`: every observation names its labels) exports a series per label set from its
 * first observation or `zero()`.
 */
export class HistogramMetric implements CollectorMetric {
  readonly type = 'histogram' as const;
  private readonly series = new Map<string, HistogramSeries>();
  /** The one series of a histogram without labels, kept at hand: its observations build no key. */
  private readonly plain: HistogramSeries | undefined;
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
    labelled = false,
  ) {
    if (!labelled) this.plain = this.seriesOf({});
  }
  observe(value: number, labels?: Labels): void {
    const series = labels === undefined && this.plain !== undefined ? this.plain : this.seriesOf(labels ?? {});
    series.sum += value;
    series.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) series.counts[i]!++;
  }
  /** Exports the series at 0 until its first observation. */
  zero(labels: Labels): void {
    this.seriesOf(labels);
  }
  /** Stops exporting the series whose labels `gone` picks. */
  remove(gone: (labels: Labels) => boolean): void {
    for (const [key, series] of this.series) if (gone(series.labels)) this.series.delete(key);
  }
  /** Starts a timer; calling the returned function observes the elapsed seconds. */
  startTimer(): () => void {
    const started = process.hrtime.bigint();
    return () => this.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }
  async get() {
    const values: Sample[] = [];
    for (const { labels, counts, sum, count } of this.series.values()) {
      this.buckets.forEach((le, i) => values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: counts[i]! }));
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
      values.push({ metricName: `${this.name}_sum`, labels, value: sum });
      values.push({ metricName: `${this.name}_count`, labels, value: count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
  private seriesOf(labels: Labels): HistogramSeries {
    const key = labelKey(labels);
    let series = this.series.get(key);
    if (series === undefined) this.series.set(key, (series = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    return series;
  }
}

const LATENCY_BUCKETS_SECONDS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const BATCH_BUCKETS_RECORDS = [1, 10, 100, 1_000, 10_000, 100_000];

/** One replica held by this broker, as the per-replica gauges show it. */
export interface ReplicaSample {
  topic: string;
  partition: number;
  role: 'primary' | 'secondary';
  epoch: number;
  leo: number;
  hw: number;
  logStartOffset: number;
  logSizeBytes: number;
}

/** Where scrape-time gauges read from. */
export interface MetricsSources {
  longPollsOpen(): number;
  replicationLag(): Array<{ topic: string; partition: number; lag: number }>;
  groupLag(): Array<{ group: string; topic: string; partition: number; lag: number; lagSeconds: number }>;
  partitions(): Array<{ role: string; underReplicated: boolean }>;
  replicas(): ReplicaSample[];
}

const ROLES = ['primary', 'secondary'] as const;

export class BrokerMetrics {
  readonly recordsProduced = new CounterMetric('tessera_broker_records_produced_total', 'Records acknowledged to producers');
  readonly bytesProduced = new CounterMetric('tessera_broker_bytes_produced_total', 'RecordBatch bytes acknowledged to producers');
  readonly duplicateBatches = new CounterMetric(
    'tessera_broker_produce_duplicate_batches_total',
    'Batches of idempotent producers answered with the offsets of their first storing instead of being stored again',
  );
  readonly recordsFetched = new CounterMetric('tessera_broker_records_fetched_total', 'Records returned by fetch');
  readonly bytesFetched = new CounterMetric('tessera_broker_bytes_fetched_total', 'RecordBatch bytes returned by fetch (whole stored batches)');
  readonly produceLatency = new HistogramMetric(
    'tessera_broker_produce_latency_seconds',
    'Time from a produce request to its acknowledgement',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly replicationLatency = new HistogramMetric(
    'tessera_broker_replication_latency_seconds',
    'Duration of one replication exchange with another broker (the pushes of many partitions)',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly flushQueueLatency = new HistogramMetric(
    'tessera_broker_flush_queue_seconds',
    'Time the oldest request of a partition flush waited in the write queue before the flush started',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly flushLocalLatency = new HistogramMetric(
    'tessera_broker_flush_local_seconds',
    'Time a partition flush waited for the group commit that made it durable on the primary',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly flushReplicateLatency = new HistogramMetric(
    'tessera_broker_flush_replicate_seconds',
    'Time a partition flush waited for its in-sync secondary (0 without one)',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly groupCommitLatency = new HistogramMetric(
    'tessera_broker_group_commit_seconds',
    'Duration of one storage transaction (every partition with pending writes, at most one fsync)',
    LATENCY_BUCKETS_SECONDS,
  );
  readonly writeBatchRecords = new HistogramMetric(
    'tessera_broker_write_batch_records',
    'Records per partition flush (one push to the secondary)',
    BATCH_BUCKETS_RECORDS,
  );

  register(service: HttpService, sources: MetricsSources): void {
    const gauges = [
      new CollectedGauge('tessera_broker_long_polls_open', 'Fetches waiting in a long-poll', () => [
        { value: sources.longPollsOpen(), labels: {} },
      ]),
      new CollectedGauge('tessera_broker_replication_lag_records', 'Records the secondary lacks, per partition led here', () =>
        sources.replicationLag().map((p) => ({ value: p.lag, labels: { topic: p.topic, partition: p.partition } })),
      ),
      new CollectedGauge('tessera_broker_group_lag_records', 'High watermark minus committed offset, per group and partition led here', () =>
        sources.groupLag().map((p) => ({ value: p.lag, labels: { group: p.group, topic: p.topic, partition: p.partition } })),
      ),
      new CollectedGauge(
        'tessera_broker_group_lag_seconds',
        'Age of the oldest record a group has not committed (0 when caught up), per group and partition led here',
        () => sources.groupLag().map((p) => ({ value: p.lagSeconds, labels: { group: p.group, topic: p.topic, partition: p.partition } })),
      ),
      new CollectedGauge('tessera_broker_partitions', 'Replicas held, by role', () => {
        const counts = { primary: 0, secondary: 0 };
        for (const p of sources.partitions()) counts[p.role as keyof typeof counts]++;
        return Object.entries(counts).map(([role, value]) => ({ value, labels: { role } }));
      }),
      new CollectedGauge('tessera_broker_under_replicated_partitions', 'Partitions led here whose secondary is not in the ISR', () => [
        { value: sources.partitions().filter((p) => p.underReplicated).length, labels: {} },
      ]),
      new CollectedGauge('tessera_broker_replica_log_end_offset', 'Log end offset (next offset to write) of each replica held here', () =>
        sources.replicas().map((r) => ({ value: r.leo, labels: { topic: r.topic, partition: r.partition } })),
      ),
      new CollectedGauge('tessera_broker_replica_high_watermark', 'High watermark of each replica held here', () =>
        sources.replicas().map((r) => ({ value: r.hw, labels: { topic: r.topic, partition: r.partition } })),
      ),
      new CollectedGauge('tessera_broker_replica_log_start_offset', 'Log start offset (oldest offset readable) of each replica held here', () =>
        sources.replicas().map((r) => ({ value: r.logStartOffset, labels: { topic: r.topic, partition: r.partition } })),
      ),
      new CollectedGauge('tessera_broker_replica_log_size_bytes', 'Bytes of batches stored for each replica held here (until retention deletes them)', () =>
        sources.replicas().map((r) => ({ value: r.logSizeBytes, labels: { topic: r.topic, partition: r.partition } })),
      ),
      new CollectedGauge('tessera_broker_replica_epoch', 'Leader epoch each replica held here knows', () =>
        sources.replicas().map((r) => ({ value: r.epoch, labels: { topic: r.topic, partition: r.partition } })),
      ),
      // A state set: 1 on the replica's current role, 0 on the other, so a role change is a value change.
      new CollectedGauge('tessera_broker_replica_role', 'Role of each replica held here (1 on its current role)', () =>
        sources
          .replicas()
          .flatMap((r) => ROLES.map((role) => ({ value: r.role === role ? 1 : 0, labels: { topic: r.topic, partition: r.partition, role } }))),
      ),
    ];
    registerCollectors(service.registry, [
      this.recordsProduced,
      this.bytesProduced,
      this.duplicateBatches,
      this.recordsFetched,
      this.bytesFetched,
      this.produceLatency,
      this.replicationLatency,
      this.writeBatchRecords,
      this.groupCommitLatency,
      this.flushQueueLatency,
      this.flushLocalLatency,
      this.flushReplicateLatency,
      ...gauges,
    ]);
  }
}
