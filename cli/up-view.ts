// The live view of `weft up` (sidecar or ambient): pure rendering of a state object to text
// (ANSI full-screen on a terminal, one compact line per second otherwise), so it can be tested
// without a terminal; and the weights a proxy holds, read from its /config_dump.
import type { DemoStats } from './demo/client.js';

export interface WorkloadView {
  readonly key: string;
  readonly ready: boolean;
  readonly hasApp: boolean;
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number } | undefined;
  readonly stats: DemoStats | undefined;
  readonly weights: Record<string, Array<{ cluster: string; weight: number }>> | undefined;
  readonly lastLine: string | undefined;
  /** Ambient `weft up` only: how the workload is in the mesh, its pod address, and its state as
   *  its node proxy (or, for a waypoint, its own readiness) reports it. */
  readonly ambient?: { readonly mode: 'ambient' | 'waypoint' | 'none'; readonly ip: string; readonly node?: string; readonly state: string };
}

/** An ambient node proxy as the view shows it. */
export interface NodeProxyView {
  readonly node: string;
  readonly ready: boolean;
  readonly admin: number | undefined;
}

export interface ViewState {
  readonly configDir: string;
  readonly xds: string;
  readonly monitorPort: number;
  readonly logFile: string;
  readonly workloads: readonly WorkloadView[];
  /** Ambient `weft up`: the node proxies and the lab's pod range. */
  readonly ambient?: { readonly nodes: readonly NodeProxyView[]; readonly podCidr: string };
}

export type Weights = Record<string, Array<{ cluster: string; weight: number }>>;

/** `virtual host → [{cluster, weight}]` for every weighted route in a proxy's `/config_dump`. */
export function weightsOf(dump: unknown): Weights {
  const d = dump as {
    routes?: Array<{ name: string; virtualHosts?: Array<{ name: string; routes?: Array<{ action?: { kind?: string; backends?: Array<{ cluster: string; weight: number }> } }> }> }>;
  };
  const out: Weights = {};
  for (const rc of d.routes ?? []) {
    for (const vh of rc.virtualHosts ?? []) {
      for (const route of vh.routes ?? []) {
        const backends = route.action?.backends ?? [];
        if (route.action?.kind === 'forward' && backends.length > 1) out[vh.name] = backends;
      }
    }
  }
  return out;
}

/** `outbound|9080||reviews-v1.default.svc.cluster.local` → `reviews-v1`. */
export function shortCluster(cluster: string): string {
  const host = cluster.split('|')[3] ?? cluster;
  return host.split('.')[0] ?? host;
}

export function renderView(s: ViewState, fullScreen: boolean): string {
  if (s.ambient) return renderAmbientView(s, s.ambient, fullScreen);
  const clients = s.workloads.filter((w) => w.stats);
  if (!fullScreen) {
    const parts = clients.map(compactTraffic);
    const ready = s.workloads.filter((w) => w.ready).length;
    return `weft up: ${ready}/${s.workloads.length} sidecars ready; ${parts.join('; ') || 'no traffic yet'}\n`;
  }

  const lines: string[] = [];
  lines.push('\x1b[2J\x1b[H\x1b[1mweft up\x1b[0m — ' + s.configDir);
  lines.push(`control plane: xDS ${s.xds}, monitor http://127.0.0.1:${s.monitorPort}/debug/syncz   logs: ${s.logFile}`);
  lines.push('');
  lines.push('WORKLOAD'.padEnd(28) + 'SIDECAR'.padEnd(10) + 'OUTBOUND'.padEnd(10) + 'INBOUND'.padEnd(10) + 'ADMIN');
  for (const w of s.workloads) {
    lines.push(
      w.key.padEnd(28) +
        (w.ready ? '\x1b[32mready\x1b[0m     ' : '\x1b[33mstarting\x1b[0m  ') +
        String(w.ports?.outbound ?? '-').padEnd(10) +
        String(w.ports?.inbound ?? '-').padEnd(10) +
        String(w.ports?.admin ?? '-'),
    );
  }
  lines.push(...trafficLines(clients, 'weights in force'));
  lines.push('');
  lines.push('Edit the HTTPRoute in the config directory to change the split. Ctrl-C stops everything.');
  return lines.join('\n') + '\n';
}

/** One summary per second of a demo client: `client.default: 50 ok/s (v1=45 v2=5) 0 err/s weights[...]`. */
function compactTraffic(w: WorkloadView): string {
  const st = w.stats!;
  const versions = Object.entries(st.byVersion).sort().map(([v, n]) => `${v}=${n}`).join(' ');
  const weights = Object.values(w.weights ?? {})
    .flat()
    .map((b) => `${shortCluster(b.cluster)}:${b.weight}`)
    .join(' ');
  return `${w.key}: ${st.ok} ok/s (${versions}) ${st.errors} err/s${weights ? ` weights[${weights}]` : ''}`;
}

function trafficLines(clients: readonly WorkloadView[], weightsLabel: string): string[] {
  const lines: string[] = [];
  for (const w of clients) {
    const st = w.stats!;
    const total = st.ok || 1;
    lines.push('');
    lines.push(`\x1b[1mtraffic from ${w.key}\x1b[0m  ${st.ok + st.errors} req/s, ${st.errors} errors/s${st.lastError ? ` (last: ${st.lastError})` : ''}`);
    for (const [version, n] of Object.entries(st.byVersion).sort()) {
      const pct = (100 * n) / total;
      lines.push(`  ${version.padEnd(10)} ${String(n).padStart(5)} req/s  ${pct.toFixed(0).padStart(3)}%  ${'█'.repeat(Math.round(pct / 2))}`);
    }
    for (const [vhost, backends] of Object.entries(w.weights ?? {})) {
      const sum = backends.reduce((a, b) => a + b.weight, 0) || 1;
      const desc = backends.map((b) => `${shortCluster(b.cluster)} ${Math.round((100 * b.weight) / sum)}%`).join(', ');
      lines.push(`  ${weightsLabel} for ${vhost.split(':')[0]?.split('.')[0]}: ${desc}`);
    }
  }
  return lines;
}

/** Ambient `weft up`: pods (mode, address, enrollment) and node proxies instead of sidecar ports. */
function renderAmbientView(s: ViewState, a: NonNullable<ViewState['ambient']>, fullScreen: boolean): string {
  const clients = s.workloads.filter((w) => w.stats);
  const ready = s.workloads.filter((w) => w.ready).length;
  const nodesReady = a.nodes.filter((n) => n.ready).length;
  if (!fullScreen) {
    return `weft up (ambient): ${ready}/${s.workloads.length} workloads ready, ${nodesReady}/${a.nodes.length} node proxies ready; ${clients.map(compactTraffic).join('; ') || 'no traffic yet'}\n`;
  }
  const lines: string[] = [];
  lines.push('\x1b[2J\x1b[H\x1b[1mweft up\x1b[0m (ambient) — ' + s.configDir);
  lines.push(`control plane: xDS ${s.xds}, monitor http://127.0.0.1:${s.monitorPort}/debug/syncz   logs: ${s.logFile}`);
  lines.push(`pods: network namespaces on ${a.podCidr}; node proxies: ${a.nodes.map((n) => `${n.node} ${n.ready ? 'ready' : 'starting'}${n.admin ? ` (admin :${n.admin})` : ''}`).join(', ') || 'none'}`);
  lines.push('');
  lines.push('WORKLOAD'.padEnd(28) + 'MODE'.padEnd(10) + 'POD IP'.padEnd(16) + 'NODE'.padEnd(10) + 'STATE');
  for (const w of s.workloads) {
    const amb = w.ambient;
    const state = amb?.state ?? '-';
    lines.push(
      w.key.padEnd(28) +
        (amb?.mode ?? '-').padEnd(10) +
        (amb?.ip ?? '-').padEnd(16) +
        (amb?.node ?? '-').padEnd(10) +
        (w.ready ? `\x1b[32m${state}\x1b[0m` : `\x1b[33m${state}\x1b[0m`),
    );
  }
  lines.push(...trafficLines(clients, 'weights in force at the waypoint'));
  lines.push('');
  lines.push('Edit the HTTPRoute in the config directory to change the split. Ctrl-C stops everything and removes the pods.');
  return lines.join('\n') + '\n';
}
