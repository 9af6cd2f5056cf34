// `weft status` output from a /debug/syncz document.
import { describe, expect, it } from 'vitest';
import { formatStatus, type SynczProxy } from './status.js';

describe('weft status', () => {
  it('lists each proxy with its state per type, and why a NACKed one refused', () => {
    const proxies: SynczProxy[] = [
      {
        id: 'reviews-v1.default', workload: 'reviews-v1.default', namespace: 'default', stream: 'delta', connectedAt: 't', peer: 'ipv4:127.0.0.1:5000',
        types: { CDS: { status: 'SYNCED' }, LDS: { status: 'SYNCED' }, EDS: { status: 'STALE' }, RDS: { status: 'SYNCED' }, VHDS: { status: 'SYNCED' }, SDS: { status: 'SYNCED' } },
      },
      {
        id: 'client.default', workload: 'client.default', namespace: 'default', stream: 'sotw', connectedAt: 't', peer: 'ipv4:127.0.0.1:4000',
        types: { CDS: { status: 'SYNCED' }, LDS: { status: 'SYNCED' }, RDS: { status: 'NACKED', nack: { version: 'v9', message: 'line one\nline two', at: 't' } } },
      },
    ];
    expect(formatStatus(proxies)).toBe(
      [
        'NAME                STREAM  CDS     LDS     EDS       RDS     VHDS      SDS       PEER',
        'client.default      SOTW    SYNCED  SYNCED  NOT SENT  NACKED  NOT SENT  NOT SENT  ipv4:127.0.0.1:4000',
        'reviews-v1.default  DELTA   SYNCED  SYNCED  STALE     SYNCED  SYNCED    SYNCED    ipv4:127.0.0.1:5000',
        '',
        'Rejected config (the proxy keeps its last accepted version):',
        '  client.default RDS version v9: line one',
        '    line two',
      ].join('\n'),
    );
    expect(formatStatus([])).toBe('No proxies are connected to this control plane.');
  });
});
