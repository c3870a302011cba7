// Prometheus' text exposition format (version 0.0.4), written by hand: counters and
// histograms that callers increment, gauges computed when scraped. No registry library:
// berthd's few metrics need families, labels, escaping and cumulative buckets, no more.

export type Labels = Record<string, string>;

/** One sample line: a value for a set of labels (the family's name plus an optional suffix). */
export interface Sample {
  labels: Labels;
  value: number;
  /** `_bucket`, `_sum`, `_count` for a histogram's lines; empty for the rest. */
  suffix?: string;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  samples(): Sample[];
}

/** Seconds, as grpc-prometheus (and so containerd's gRPC metrics) buckets them. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * A series' key: its labels in name order, each value prefixed by its length, so no two
 * label sets share one whatever the values hold. Called on every RPC: plain string
 * building (JSON.stringify of each value cost 7-11 µs a call).
 */
export function keyOf(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let key = '';
  for (const name of names) {
    const value = labels[name]!;
    key += `${name}=${value.length}:${value},`;
  }
  return key;
}

export class Counter implements MetricFamily {
  readonly type = 'counter';
  readonly #values = new Map<string, Sample>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = keyOf(labels);
    const sample = this.#values.get(key);
    if (sample) sample.value += by;
    else this.#values.set(key, { labels: { ...labels }, value: by });
  }

  /** The current value for these labels (0 when never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(keyOf(labels))?.value ?? 0;
  }

  samples(): Sample[] {
    return [...this.#values.values()];
  }
}

export class Histogram implements MetricFamily {
  readonly type = 'histogram';
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[] = DEFAULT_BUCKETS,
  ) {}

  observe(labels: Labels, value: number): void {
    const key = keyOf(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    // Each observation lands in its own bucket; samples() makes the counts cumulative.
    const index = this.buckets.findIndex((bound) => value <= bound);
    if (index >= 0) series.counts[index]! += 1;
    series.sum += value;
    series.count += 1;
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    for (const { labels, counts, sum, count } of this.#series.values()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += counts[i]!;
        out.push({ labels: { ...labels, le: formatNumber(bound) }, value: cumulative, suffix: '_bucket' });
      });
      out.push({ labels: { ...labels, le: '+Inf' }, value: count, suffix: '_bucket' });
      out.push({ labels, value: sum, suffix: '_sum' });
      out.push({ labels, value: count, suffix: '_count' });
    }
    return out;
  }
}

/** A gauge whose samples are computed at scrape time. */
export class Gauge implements MetricFamily {
  readonly type = 'gauge';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly collect: () => Sample[],
  ) {}

  samples(): Sample[] {
    return this.collect();
  }
}

/** The families in the text format, each with its HELP and TYPE lines. */
export function renderMetrics(families: MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples()) {
      lines.push(`${family.name}${sample.suffix ?? ''}${formatLabels(sample.labels)} ${formatNumber(sample.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
