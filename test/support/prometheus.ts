// Scraping a Prometheus endpoint in tests with a real text-format parser
// (parse-prometheus-text-format), and finding one sample by name and labels.
// @ts-expect-error -- the parser ships without type declarations; its shape is typed below.
import parsePrometheusTextFormatUntyped from 'parse-prometheus-text-format';

export interface MetricSample {
  readonly labels?: Readonly<Record<string, string>>;
  /** Counters and gauges. */
  readonly value?: string;
  /** Histograms: upper bound → cumulative count. */
  readonly buckets?: Readonly<Record<string, string>>;
  readonly count?: string;
  readonly sum?: string;
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  readonly metrics: readonly MetricSample[];
}

const parseText = parsePrometheusTextFormatUntyped as (text: string) => MetricFamily[];

/**
 * Parses the Prometheus text format. The library merges every sample of a histogram into one
 * label-less entry, so histogram families are parsed as untyped `_bucket`, `_sum` and `_count`
 * series (labels and values still read by the library) and regrouped here per label set.
 */
export function parsePrometheusText(text: string): MetricFamily[] {
  const histograms = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) histogram$/gm)) histograms.set(m[1]!, '');
  for (const m of text.matchAll(/^# HELP (\S+) (.*)$/gm)) if (histograms.has(m[1]!)) histograms.set(m[1]!, m[2]!);
  const plain = text.replace(/^# (TYPE|HELP) (\S+) .*$/gm, (line, _kind: string, name: string) => (histograms.has(name) ? '' : line));
  const families = parseText(plain).filter((f) => f.metrics.length > 0);
  const out: MetricFamily[] = [];
  // Without their TYPE line, each series' `_bucket`, `_sum` and `_count` lines come back as
  // families of their own, repeated once per series.
  const parts = new Map<string, { bucket: MetricSample[]; sum: MetricSample[]; count: MetricSample[] }>();
  for (const f of families) {
    const m = /^(.*)_(bucket|sum|count)$/.exec(f.name);
    if (m && histograms.has(m[1]!)) {
      let p = parts.get(m[1]!);
      if (!p) parts.set(m[1]!, (p = { bucket: [], sum: [], count: [] }));
      p[m[2] as 'bucket' | 'sum' | 'count'].push(...f.metrics);
    } else out.push(f);
  }
  for (const [name, p] of parts) {
    const byLabels = new Map<string, { labels: Record<string, string>; buckets: Record<string, string>; sum?: string; count?: string }>();
    const entry = (labels: Readonly<Record<string, string>> = {}) => {
      const rest = Object.fromEntries(Object.entries(labels).filter(([k]) => k !== 'le'));
      const key = JSON.stringify(Object.entries(rest).sort());
      let e = byLabels.get(key);
      if (!e) byLabels.set(key, (e = { labels: rest, buckets: {} }));
      return e;
    };
    for (const s of p.bucket) entry(s.labels).buckets[s.labels?.le ?? ''] = s.value ?? '';
    for (const s of p.sum) entry(s.labels).sum = s.value;
    for (const s of p.count) entry(s.labels).count = s.value;
    out.push({ name, help: histograms.get(name) ?? '', type: 'HISTOGRAM', metrics: [...byLabels.values()] });
  }
  return out;
}

export async function scrape(url: string): Promise<{ families: MetricFamily[]; contentType: string | null; text: string }> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  const text = await res.text();
  return { families: parsePrometheusText(text), contentType: res.headers.get('content-type'), text };
}

export function family(families: readonly MetricFamily[], name: string): MetricFamily | undefined {
  return families.find((f) => f.name === name);
}

/** Samples of `name` whose labels include every given label. */
export function samples(families: readonly MetricFamily[], name: string, labels: Readonly<Record<string, string>> = {}): MetricSample[] {
  return (family(families, name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
}

/** Sum of counter values (or histogram counts) over the samples that match. */
export function total(families: readonly MetricFamily[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  return samples(families, name, labels).reduce((n, m) => n + Number(m.value ?? m.count ?? 0), 0);
}
