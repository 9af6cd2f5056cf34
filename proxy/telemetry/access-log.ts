// The access log: one JSON line per request, with Envoy's field names (the ones Istio's JSON
// access log format uses), plus the decision record. Off by default; when on, lines go to
// stdout or are appended to a file. Writing is buffered by the stream; a slow sink never
// blocks a request (lines queue in memory — the same trade-off Envoy's file sink makes).
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { firstValue } from '../http/headers.js';
import { decisionOf, type DecisionRecord } from './decision.js';
import { failureReason } from './flags.js';
import type { RequestRecord } from './record.js';

/** One access log line's fields. Absent values are `null`, as Envoy prints `-` for them. */
export interface AccessLogEntry {
  readonly start_time: string;
  readonly method: string | null;
  readonly path: string | null;
  readonly protocol: string | null;
  readonly response_code: number;
  readonly response_flags: string;
  readonly grpc_status: string | null;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly duration: number;
  readonly upstream_service_time: number | null;
  readonly x_forwarded_for: string | null;
  readonly user_agent: string | null;
  readonly request_id: string | null;
  readonly authority: string | null;
  readonly upstream_host: string | null;
  readonly upstream_cluster: string | null;
  readonly upstream_transport_failure_reason: string | null;
  readonly upstream_request_attempt_count: number;
  readonly route_name: string | null;
  readonly downstream_remote_address: string | null;
  readonly downstream_peer_uri_san: string | null;
  readonly upstream_peer_uri_san: string | null;
  readonly requested_server_name: string | null;
  readonly trace_id: string | null;
  readonly reporter: 'source' | 'destination';
  readonly decision: DecisionRecord;
}

export function accessLogEntry(rec: RequestRecord, flags: string, grpcStatus: string, durationMs: number): AccessLogEntry {
  const info = rec.info;
  const plan = rec.plan;
  const t = rec.target;
  const header = (name: string) => (info ? firstValue(info.headers, name) ?? null : null);
  return {
    start_time: new Date(rec.startEpochMs).toISOString(),
    method: info?.method ?? rec.req.method ?? null,
    path: info?.path ?? rec.req.url ?? null,
    protocol: rec.req.httpVersionMajor === 2 ? 'HTTP/2' : `HTTP/${rec.req.httpVersion || '1.1'}`,
    response_code: rec.status,
    response_flags: flags,
    grpc_status: grpcStatus === '' ? null : grpcStatus,
    bytes_received: rec.bytesReceived,
    bytes_sent: rec.bytesSent,
    duration: Math.round(durationMs),
    upstream_service_time: rec.responseAtMs === undefined ? null : Math.round(rec.responseAtMs),
    x_forwarded_for: header('x-forwarded-for'),
    user_agent: header('user-agent'),
    request_id: rec.requestId ?? header('x-request-id'),
    authority: info?.authority ?? null,
    upstream_host: t ? `${t.host}:${t.port}` : null,
    upstream_cluster: rec.cluster ?? null,
    upstream_transport_failure_reason: failureReason(rec.tryFailure) ?? null,
    upstream_request_attempt_count: rec.tries,
    route_name: plan && plan.kind !== 'noRoute' ? plan.route.name : null,
    downstream_remote_address: rec.conn.remoteAddress ?? null,
    downstream_peer_uri_san: rec.conn.peerIdentity ?? null,
    upstream_peer_uri_san: t?.identity ?? null,
    requested_server_name: rec.conn.targetPort === undefined ? null : `${rec.conn.targetPort}.inbound.weft.internal`,
    trace_id: rec.serverSpan ? rec.serverSpan.spanContext().traceId : null,
    reporter: rec.direction === 'outbound' ? 'source' : 'destination',
    decision: decisionOf(rec),
  };
}

/** Where lines go. */
export interface AccessLogSink {
  write(entry: AccessLogEntry): void;
  close(): Promise<void>;
}

/**
 * `stdout`, or a file path (appended to, created if missing). A file that cannot be opened is
 * a start-up error; a write error later is logged once and the log goes quiet.
 */
export function openAccessLog(destination: string, log: Logger): AccessLogSink {
  if (destination === 'stdout' || destination === '-') {
    return { write: (e) => void process.stdout.write(JSON.stringify(e) + '\n'), close: async () => {} };
  }
  try {
    closeSync(openSync(destination, 'a'));
  } catch (err) {
    throw new WeftError(ErrorCode.USAGE, `--access-log: cannot append to ${destination}: ${(err as Error).message}`, { hint: 'pass a writable file path, or stdout' });
  }
  const stream: WriteStream = createWriteStream(destination, { flags: 'a' });
  stream.once('error', (err) => log.error('access log write failed; no more lines will be written', { file: destination, error: err }));
  return {
    write: (e) => void stream.write(JSON.stringify(e) + '\n'),
    close: () => new Promise<void>((resolve) => stream.end(() => resolve())),
  };
}
