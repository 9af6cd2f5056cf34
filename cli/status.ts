// `weft status`: every proxy connected to the control plane and, per xDS type, whether it holds
// what it was sent (SYNCED), is still to ACK it (STALE), rejected it (NACKED) or was sent
// nothing yet (NOT SENT) — istioctl proxy-status for Weft, read from the monitor's /debug/syncz.
import { fetchJson, hostPort, table, type OutputFormat } from './output.js';

/** One proxy as /debug/syncz reports it (control-plane/xds-server/sync-status.ts). */
export interface SynczProxy {
  readonly id: string;
  readonly workload: string;
  readonly namespace: string;
  readonly stream: string;
  readonly connectedAt: string;
  readonly peer: string;
  readonly types: Readonly<
    Record<string, { status: string; sent?: string; acked?: string; nonce?: string; nack?: { version: string; message: string; at: string } }>
  >;
}

const TYPES = ['CDS', 'LDS', 'EDS', 'RDS', 'VHDS', 'SDS'] as const;

/** The table (and the NACK reasons under it). Pure. */
export function formatStatus(proxies: readonly SynczProxy[]): string {
  if (proxies.length === 0) return 'No proxies are connected to this control plane.';
  const sorted = [...proxies].sort((a, b) => a.id.localeCompare(b.id) || a.stream.localeCompare(b.stream));
  const rows = sorted.map((p) => [p.id, p.stream.toUpperCase(), ...TYPES.map((t) => p.types[t]?.status ?? 'NOT SENT'), p.peer]);
  const out = [table(['NAME', 'STREAM', ...TYPES, 'PEER'], rows)];
  const nacks = sorted.flatMap((p) =>
    TYPES.flatMap((t) => {
      const s = p.types[t];
      return s?.status === 'NACKED' && s.nack ? [`  ${p.id} ${t} version ${s.nack.version}: ${s.nack.message.replace(/\n/g, '\n    ')}`] : [];
    }),
  );
  if (nacks.length > 0) out.push('', 'Rejected config (the proxy keeps its last accepted version):', ...nacks);
  return out.join('\n');
}

export async function runStatus(opts: { monitor: string; output: OutputFormat }): Promise<string> {
  const proxies = (await fetchJson(`${hostPort('--monitor', opts.monitor)}/debug/syncz`, 'the control plane')) as SynczProxy[];
  return opts.output === 'json' ? JSON.stringify(proxies, null, 2) : formatStatus(proxies);
}
