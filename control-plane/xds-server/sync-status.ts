// Per-proxy, per-type sync state: what was sent, what was ACKed, the last NACK and its reason.
// It backs /debug/syncz and `weft status`.
import { SHORT_NAME, type TypeUrl } from '../../api/types.js';

export interface TypeSyncState {
  sentVersion?: string;
  sentNonce?: string;
  ackedVersion?: string;
  nack?: { version: string; nonce: string; message: string; at: string };
  /** Names subscribed to; undefined = wildcard. */
  names?: ReadonlySet<string>;
}

export interface ProxySyncState {
  readonly id: string;
  readonly workload: string;
  readonly namespace: string;
  readonly stream: 'sotw' | 'delta';
  readonly connectedAt: string;
  readonly peer: string;
  readonly types: Map<TypeUrl, TypeSyncState>;
}

export type SyncVerdict = 'SYNCED' | 'NOT SENT' | 'STALE' | 'NACKED';

export function verdict(t: TypeSyncState | undefined): SyncVerdict {
  if (!t || t.sentVersion === undefined) return 'NOT SENT';
  if (t.nack && t.nack.version === t.sentVersion) return 'NACKED';
  return t.ackedVersion === t.sentVersion ? 'SYNCED' : 'STALE';
}

/** JSON view for /debug/syncz. */
export function syncz(proxies: Iterable<ProxySyncState>): unknown[] {
  return [...proxies].map((p) => ({
    id: p.id,
    workload: p.workload,
    namespace: p.namespace,
    stream: p.stream,
    connectedAt: p.connectedAt,
    peer: p.peer,
    types: Object.fromEntries(
      [...p.types.entries()].map(([url, t]) => [
        SHORT_NAME[url],
        {
          status: verdict(t),
          sent: t.sentVersion,
          acked: t.ackedVersion,
          nonce: t.sentNonce,
          ...(t.nack ? { nack: t.nack } : {}),
        },
      ]),
    ),
  }));
}
