// The proxy's Prometheus metrics under Istio's names and labels (istio_requests_total, the
// duration and size histograms, the TCP counters), so Istio dashboards and alerts work as they
// are. Label sets are resolved once per peer and outcome and cached with their counters: the
// per-request path does two or three Map lookups and bumps numbers, it builds no label object;
// prom-client's Registry renders the text format at scrape time.
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import type { HandshakeCounts } from '../transport/tls.js';

/**
 * How often the event-loop lag histogram (weft_proxy_nodejs_eventloop_lag_{min,max,p50,…}_seconds)
 * samples, on a timer of its own. prom-client's default, 10 ms, wakes an idle proxy 100 times a
 * second, on every pod. At 100 ms it still sees every stall of 100 ms or more, and a shorter one
 * in proportion to its length; nodejs_eventloop_lag_seconds, measured at each scrape, is not
 * affected.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Istio's default buckets: milliseconds for durations, bytes for sizes. */
const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
const SIZE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/** Everything about a request's peers that is fixed for a (source, destination) pair. */
export interface PeerLabels {
  readonly reporter: 'source' | 'destination';
  readonly sourceWorkload: string;
  readonly sourceNamespace: string;
  readonly sourcePrincipal: string;
  readonly destinationWorkload: string;
  readonly destinationNamespace: string;
  readonly destinationPrincipal: string;
  readonly destinationService: string;
  readonly destinationServiceName: string;
  readonly destinationServiceNamespace: string;
  readonly requestProtocol: 'http' | 'grpc' | 'tcp';
  readonly securityPolicy: 'mutual_tls' | 'none' | 'unknown';
}

/** A histogram's state for one label set: per-bucket counts (not cumulative), sum, count. */
class HistogramState {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** Everything recorded for one full HTTP label set (peers + outcome). */
export interface HttpOutcome {
  readonly labels: Readonly<Record<string, string>>;
  requests: number;
  readonly duration: HistogramState;
  readonly requestBytes: HistogramState;
  readonly responseBytes: HistogramState;
}

/** Everything recorded for one TCP label set. */
export interface TcpState {
  readonly labels: Readonly<Record<string, string>>;
  opened: number;
  closed: number;
  sent: number;
  received: number;
}

/**
 * One peer pair's series. Created once per distinct PeerLabels (see MeshMetrics.series) and
 * kept; `http()` returns the state of one outcome, cached by status code for the common
 * outcome (no gRPC status, no flags) and by a joined key for the rest.
 */
export class PeerSeries {
  private readonly plain = new Map<number, HttpOutcome>();
  private readonly other = new Map<string, HttpOutcome>();
  private tcpState: TcpState | undefined;

  constructor(
    private readonly metrics: MeshMetrics,
    readonly labels: PeerLabels,
  ) {}

  http(code: number, grpcStatus: string, flags: string): HttpOutcome {
    if (grpcStatus === '' && flags === '-') {
      let c = this.plain.get(code);
      if (!c) this.plain.set(code, (c = this.metrics.httpOutcome(this.labels, code, grpcStatus, flags)));
      return c;
    }
    const key = `${code}|${grpcStatus}|${flags}`;
    let c = this.other.get(key);
    if (!c) this.other.set(key, (c = this.metrics.httpOutcome(this.labels, code, grpcStatus, flags)));
    return c;
  }

  tcp(): TcpState {
    return (this.tcpState ??= this.metrics.tcpState(this.labels));
  }
}

/** The shape prom-client's Registry renders (what its own metrics' get() return). */
interface MetricValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
}

/**
 * One metric family rendered by prom-client from our own counters. prom-client's metric
 * children validate and hash all their labels on every inc/observe; with fifteen labels that
 * is most of the cost of a request's metrics, so the data path bumps plain numbers in cached
 * objects instead, and prom-client formats them at scrape time.
 */
class Family {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly values: () => MetricValue[],
  ) {}

  get(): { name: string; help: string; type: string; values: MetricValue[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: 'sum' };
  }
}

function histogramValues(name: string, bounds: readonly number[], entries: readonly { labels: Readonly<Record<string, string>>; h: HistogramState }[]): MetricValue[] {
  const out: MetricValue[] = [];
  for (const { labels, h } of entries) {
    let cumulative = 0;
    bounds.forEach((le, i) => {
      cumulative += h.counts[i]!;
      out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
    });
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
    out.push({ metricName: `${name}_sum`, labels, value: h.sum });
    out.push({ metricName: `${name}_count`, labels, value: h.count });
  }
  return out;
}

export class MeshMetrics {
  readonly registry = new Registry();
  private readonly outcomes: HttpOutcome[] = [];
  private readonly tcpStates: TcpState[] = [];
  private readonly seriesByKey = new Map<string, PeerSeries>();

  constructor(opts: { processMetrics?: boolean } = {}) {
    const http = (name: string, help: string, pick: (o: HttpOutcome) => HistogramState, bounds: readonly number[]) =>
      new Family(name, help, 'histogram', () => histogramValues(name, bounds, this.outcomes.map((o) => ({ labels: o.labels, h: pick(o) }))));
    const tcp = (name: string, help: string, pick: (t: TcpState) => number) =>
      new Family(name, help, 'counter', () => this.tcpStates.map((t) => ({ labels: t.labels, value: pick(t) })));
    const families = [
      new Family('istio_requests_total', 'Requests, by source and destination workload, response code and flags', 'counter', () =>
        this.outcomes.map((o) => ({ labels: o.labels, value: o.requests })),
      ),
      http('istio_request_duration_milliseconds', 'Request duration in milliseconds, from the request received to the response completed', (o) => o.duration, DURATION_BUCKETS_MS),
      http('istio_request_bytes', 'Request body size in bytes', (o) => o.requestBytes, SIZE_BUCKETS),
      http('istio_response_bytes', 'Response body size in bytes', (o) => o.responseBytes, SIZE_BUCKETS),
      tcp('istio_tcp_connections_opened_total', 'TCP connections (tunnels) opened', (t) => t.opened),
      tcp('istio_tcp_connections_closed_total', 'TCP connections (tunnels) closed', (t) => t.closed),
      tcp('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream during TCP connections (the response direction)', (t) => t.sent),
      tcp('istio_tcp_received_bytes_total', 'Bytes received from the downstream during TCP connections (the request direction)', (t) => t.received),
    ];
    for (const f of families) this.registry.registerMetric(f as unknown as Parameters<Registry['registerMetric']>[0]);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'weft_proxy_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /**
   * The series of one peer pair. Called when a cache of the caller's (per endpoint, per peer
   * identity) misses, so it may build a key string; equal labels share one PeerSeries.
   */
  series(labels: PeerLabels): PeerSeries {
    const key = [
      labels.reporter, labels.sourceWorkload, labels.sourceNamespace, labels.sourcePrincipal, labels.destinationWorkload,
      labels.destinationNamespace, labels.destinationPrincipal, labels.destinationService, labels.destinationServiceName,
      labels.destinationServiceNamespace, labels.requestProtocol, labels.securityPolicy,
    ].join('\u0000');
    let s = this.seriesByKey.get(key);
    if (!s) this.seriesByKey.set(key, (s = new PeerSeries(this, labels)));
    return s;
  }

  private static peerLabels(l: PeerLabels): Record<string, string> {
    return {
      reporter: l.reporter,
      source_workload: l.sourceWorkload,
      source_workload_namespace: l.sourceNamespace,
      source_principal: l.sourcePrincipal,
      destination_workload: l.destinationWorkload,
      destination_workload_namespace: l.destinationNamespace,
      destination_principal: l.destinationPrincipal,
      destination_service: l.destinationService,
      destination_service_name: l.destinationServiceName,
      destination_service_namespace: l.destinationServiceNamespace,
      request_protocol: l.requestProtocol,
    };
  }

  /** @internal PeerSeries' cache miss. */
  httpOutcome(l: PeerLabels, code: number, grpcStatus: string, flags: string): HttpOutcome {
    const labels = { ...MeshMetrics.peerLabels(l), response_code: String(code), grpc_response_status: grpcStatus, response_flags: flags, connection_security_policy: l.securityPolicy };
    const o: HttpOutcome = {
      labels,
      requests: 0,
      duration: new HistogramState(DURATION_BUCKETS_MS),
      requestBytes: new HistogramState(SIZE_BUCKETS),
      responseBytes: new HistogramState(SIZE_BUCKETS),
    };
    this.outcomes.push(o);
    return o;
  }

  /** @internal PeerSeries' cache miss. */
  tcpState(l: PeerLabels): TcpState {
    const t: TcpState = {
      labels: { ...MeshMetrics.peerLabels(l), request_protocol: 'tcp', response_flags: '-', connection_security_policy: l.securityPolicy },
      opened: 0,
      closed: 0,
      sent: 0,
      received: 0,
    };
    this.tcpStates.push(t);
    return t;
  }

  /** One finished HTTP request: a few additions, no allocation once its outcome exists. */
  observeRequest(series: PeerSeries, code: number, grpcStatus: string, flags: string, durationMs: number, requestBytes: number, responseBytes: number): void {
    const o = series.http(code, grpcStatus, flags);
    o.requests++;
    o.duration.observe(durationMs);
    o.requestBytes.observe(requestBytes);
    o.responseBytes.observe(responseBytes);
  }

  /** Prometheus text exposition, for /stats/prometheus. */
  async exposition(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

/**
 * `weft_tls_handshakes_total{side, resumed}`: the mTLS handshakes `counts` has seen, read at scrape
 * time (client: connections this proxy opened; server: clients it accepted). A low resumed share
 * on the client side means peers churn (new endpoints, restarts) or connections are rare.
 */
export function registerTlsHandshakes(registry: Registry, counts: HandshakeCounts): void {
  new Counter({
    name: 'weft_tls_handshakes_total',
    help: 'mTLS handshakes completed, by side (client, server) and whether a TLS session was resumed',
    labelNames: ['side', 'resumed'],
    registers: [registry],
    collect() {
      this.reset();
      for (const side of ['client', 'server'] as const) {
        this.inc({ side, resumed: 'false' }, counts[side].full);
        this.inc({ side, resumed: 'true' }, counts[side].resumed);
      }
    },
  });
}
