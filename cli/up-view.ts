// The live view of `weft up`: pure rendering of a state object to text (ANSI full-screen on a
// terminal, one compact line per second otherwise), so it can be tested without a terminal.
import type { DemoStats } from './demo/client.js';

export interface WorkloadView {
  readonly key: string;
  readonly ready: boolean;
  readonly hasApp: boolean;
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number } | undefined;
  readonly stats: DemoStats | undefined;
  readonly weights: Record<string, Array<{ cluster: string; weight: number }>> | undefined;
  readonly lastLine: string | undefined;
}

export interface ViewState {
  readonly configDir: string;
  readonly xds: string;
  readonly monitorPort: number;
  readonly logFile: string;
  readonly workloads: readonly WorkloadView[];
}

/** `outbound|9080||reviews-v1.default.svc.cluster.local` → `reviews-v1`. */
export function shortCluster(cluster: string): string {
  const host = cluster.split('|')[3] ?? cluster;
  return host.split('.')[0] ?? host;
}

export function renderView(s: ViewState, fullScreen: boolean): string {
  const clients = s.workloads.filter((w) => w.stats);
  if (!fullScreen) {
    const parts = clients.map((w) => {
      const st = w.stats!;
      const versions = Object.entries(st.byVersion).sort().map(([v, n]) => `${v}=${n}`).join(' ');
      const weights = Object.values(w.weights ?? {})
        .flat()
        .map((b) => `${shortCluster(b.cluster)}:${b.weight}`)
        .join(' ');
      return `${w.key}: ${st.ok} ok/s (${versions}) ${st.errors} err/s${weights ? ` weights[${weights}]` : ''}`;
    });
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
      lines.push(`  weights in force for ${vhost.split(':')[0]?.split('.')[0]}: ${desc}`);
    }
  }
  lines.push('');
  lines.push('Edit the HTTPRoute in the config directory to change the split. Ctrl-C stops everything.');
  return lines.join('\n') + '\n';
}
