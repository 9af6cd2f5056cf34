// Distributed tracing with OpenTelemetry: per proxied request a SERVER span (the downstream
// request) and a CLIENT span (the upstream exchange, its child), W3C traceparent/tracestate
// extracted and injected (B3 too when the request came with B3), exported over OTLP/gRPC.
// Sampling: a sampled or unsampled parent is obeyed; a root is sampled with the configured
// probability. An unsampled request costs one header read and, for roots, one random draw.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { HeaderMap } from '../http/headers.js';

export interface TracingOptions {
  /** OTLP/gRPC collector URL, e.g. `http://127.0.0.1:4317`. */
  readonly endpoint: string;
  /** Probability (0..1) that a request without a sampling decision starts a trace. */
  readonly rootSampleRate: number;
  /** `name.namespace` of the workload: the spans' service.name. */
  readonly workload: string;
  readonly namespace: string;
  /** How often finished spans are sent. Default 1 s. */
  readonly batchDelayMs?: number;
  /** Replaces the OTLP exporter (tests). */
  readonly exporter?: SpanExporter;
  readonly random?: () => number;
}

/** Which propagation formats the downstream request used, so the upstream gets the same. */
export type B3Form = 'none' | 'single' | 'multi';

/** Header view the sampler and the propagators read: Node's lower-case `req.headers`. */
export type IncomingHeaders = Readonly<Record<string, string | string[] | undefined>>;

const headerGetter = {
  get(carrier: IncomingHeaders, key: string): string | string[] | undefined {
    return carrier[key];
  },
  keys(carrier: IncomingHeaders): string[] {
    return Object.keys(carrier);
  },
};

const headerSetter = {
  set(carrier: HeaderMap, key: string, value: string): void {
    carrier[key] = value;
  },
};

const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-([\da-f]{2})/;

/**
 * The sampling decision the request already carries: true / false from `traceparent`, B3
 * single or multi headers; undefined when there is none (or B3 deferred it).
 */
export function parentSampled(h: IncomingHeaders): boolean | undefined {
  const tp = h.traceparent;
  if (typeof tp === 'string') {
    const m = TRACEPARENT.exec(tp);
    if (m) return (parseInt(m[1]!, 16) & 1) === 1;
  }
  const b3 = h.b3;
  if (typeof b3 === 'string') {
    const parts = b3.split('-');
    const flag = parts.length === 1 ? parts[0] : parts[2];
    if (flag === '1' || flag === 'd') return true;
    if (flag === '0') return false;
    return undefined;
  }
  const sampled = h['x-b3-sampled'];
  if (sampled === '1' || sampled === 'true' || h['x-b3-flags'] === '1') return true;
  if (sampled === '0' || sampled === 'false') return false;
  return undefined;
}

export class Tracing {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly random: () => number;
  private readonly w3c = new W3CTraceContextPropagator();
  private readonly extractor = new CompositePropagator({
    // Later propagators win: a request with both formats keeps its W3C context.
    propagators: [new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }), this.w3c],
  });
  private readonly b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
  private readonly b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

  private constructor(
    private readonly opts: TracingOptions,
    exporter: SpanExporter,
  ) {
    this.random = opts.random ?? Math.random;
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': `${opts.workload}`,
        'service.namespace': opts.namespace,
        'k8s.namespace.name': opts.namespace,
      }),
      // The root decision is ours (in startServer), so the SDK only follows parents.
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: opts.batchDelayMs ?? 1000 })],
    });
    this.tracer = this.provider.getTracer('weft-proxy');
  }

  /** Builds the tracer and its OTLP/gRPC exporter (loaded only when tracing is on). */
  static async create(opts: TracingOptions): Promise<Tracing> {
    let exporter = opts.exporter;
    if (!exporter) {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc');
      exporter = new OTLPTraceExporter({ url: opts.endpoint });
    }
    return new Tracing(opts, exporter);
  }

  /**
   * The downstream request's SERVER span, or undefined when this request is not sampled (its
   * trace headers then travel on untouched). Called once per request, first thing.
   */
  startServer(headers: IncomingHeaders, name: string, startTime: number): Span | undefined {
    const decided = parentSampled(headers);
    if (decided === false) return undefined;
    if (decided === undefined && !(this.random() < this.opts.rootSampleRate)) return undefined;
    const parent = decided === undefined ? ROOT_CONTEXT : this.extractor.extract(ROOT_CONTEXT, headers, headerGetter);
    return this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime }, parent);
  }

  /** The upstream exchange's CLIENT span, child of `server`; its context goes into `carrier`. */
  startClient(server: Span, name: string, attributes: Attributes, carrier: HeaderMap, b3: B3Form): Span {
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, trace.setSpan(ROOT_CONTEXT, server));
    const ctx = trace.setSpan(ROOT_CONTEXT, span);
    this.w3c.inject(ctx, carrier, headerSetter);
    if (b3 === 'single') this.b3Single.inject(ctx, carrier, headerSetter);
    else if (b3 === 'multi') this.b3Multi.inject(ctx, carrier, headerSetter);
    return span;
  }

  /** Which B3 form the downstream request used. */
  /** The instance's view of b3Form/finish, for callers that hold a Tracing but not its module. */
  b3Form(headers: IncomingHeaders): B3Form {
    return Tracing.b3Form(headers);
  }

  finish(span: Span, status: number, flags: string, attributes: Attributes, endTime: number): void {
    Tracing.finish(span, status, flags, attributes, endTime);
  }

  static b3Form(headers: IncomingHeaders): B3Form {
    if (headers.b3 !== undefined) return 'single';
    return headers['x-b3-traceid'] !== undefined ? 'multi' : 'none';
  }

  /** Ends a span with the request's outcome. */
  static finish(span: Span, status: number, flags: string, attributes: Attributes, endTime: number): void {
    span.setAttributes(attributes);
    span.setAttribute('http.response.status_code', status);
    span.setAttribute('weft.response_flags', flags);
    if (status >= 500 || status === 0 || flags !== '-') span.setStatus({ code: SpanStatusCode.ERROR, message: flags });
    span.end(endTime);
  }

  /** Sends what is buffered, then stops. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown().catch(() => {});
  }

  async flush(): Promise<void> {
    await this.provider.forceFlush().catch(() => {});
  }
}
