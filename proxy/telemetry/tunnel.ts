// TCP metrics for Upgrade / CONNECT tunnels (istio_tcp_*): a connection counts as opened once
// the tunnel is established, and as closed with its byte counts when the downstream socket
// closes. One record per tunnel; tunnels are long-lived and few, so plain closures are fine.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionInfo } from '../http/frontend.js';
import type { Plan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import { soleWorkload } from './endpoints.js';
import type { PeerLabels } from './metrics.js';
import type { MeshMetrics } from './metrics.js';
import type { Direction } from './record.js';

/** What a tunnel record needs from the telemetry. */
export interface TunnelSink {
  readonly metrics: MeshMetrics;
  tunnelLabels(direction: Direction, conn: ConnectionInfo, cluster: string | undefined, destinationWorkload: string | undefined, authority: string | undefined): PeerLabels;
}

export class TunnelRecord {
  private readonly readBase: number;
  private readonly writtenBase: number;
  private config: ProxyConfig | undefined;
  private plan: Plan | undefined;
  private authority: string | undefined;

  constructor(
    private readonly sink: TunnelSink,
    private readonly direction: Direction,
    private readonly socket: Duplex,
    private readonly conn: ConnectionInfo,
  ) {
    const s = socket as Partial<net.Socket>;
    this.readBase = s.bytesRead ?? 0;
    this.writtenBase = s.bytesWritten ?? 0;
  }

  /** Hook: the tunnel's routing decision. */
  planned(config: ProxyConfig, plan: Plan, authority: string): void {
    this.config = config;
    this.plan = plan;
    this.authority = authority;
  }

  /** Hook: the tunnel was set up or refused (the data path's tunnel call returned). */
  settled(): void {
    const socket = this.socket;
    // A refused tunnel got an HTTP answer and its socket is ending: not a TCP connection.
    if (socket.destroyed || socket.writableEnded) return;
    const cluster = this.plan?.kind === 'forward' ? this.plan.cluster : undefined;
    const workload = this.direction === 'outbound' ? soleWorkload(this.config, cluster) : undefined;
    const tcp = this.sink.metrics.series(this.sink.tunnelLabels(this.direction, this.conn, cluster, workload, this.authority)).tcp();
    tcp.opened++;
    socket.once('close', () => {
      const s = socket as Partial<net.Socket>;
      tcp.closed++;
      tcp.received += Math.max(0, (s.bytesRead ?? 0) - this.readBase);
      tcp.sent += Math.max(0, (s.bytesWritten ?? 0) - this.writtenBase);
    });
  }
}
