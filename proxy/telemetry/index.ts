// The proxy's telemetry: Istio-named Prometheus metrics, OpenTelemetry tracing, the JSON access
// log and decision records. proxy/main.ts builds one Telemetry; listeners call its hooks.
export { Telemetry, type TelemetryOptions } from './telemetry.js';
export { MeshMetrics, registerTlsHandshakes } from './metrics.js';
// Types only: proxy/main.ts imports tracing.js (and with it the OpenTelemetry SDK) when tracing is on.
export type { Tracing, TracingOptions } from './tracing.js';
export { openAccessLog, type AccessLogEntry, type AccessLogSink } from './access-log.js';
export { recordOf, type RequestRecord } from './record.js';
export type { TunnelRecord } from './tunnel.js';
export { DEBUG_HEADER, DECISION_HEADER, type DecisionRecord } from './decision.js';
