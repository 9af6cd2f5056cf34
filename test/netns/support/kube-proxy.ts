// kube-proxy's iptables mode, as it writes the nat table: KUBE-SERVICES matches each Service's
// ClusterIP:port and jumps to KUBE-SVC-<hash>, which picks an endpoint chain KUBE-SEP-<hash>
// with `-m statistic --mode random --probability 1/n, 1/(n-1), ...` and DNATs to it. Chain
// names are kube-proxy's: base32(sha256(servicePortName + protocol [+ endpoint]))[:16].
import { createHash } from 'node:crypto';

export interface ServicePortRules {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly endpoints: ReadonlyArray<{ readonly ip: string; readonly port: number }>;
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

function hash(s: string): string {
  return base32(createHash('sha256').update(s).digest()).slice(0, 16);
}

/** iptables-restore input (use with --noflush) for these Service ports. */
export function kubeProxyRules(services: readonly ServicePortRules[]): string {
  const chains = ['KUBE-SERVICES'];
  const rules = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
  ];
  for (const s of services) {
    const spn = `${s.namespace}/${s.name}:${s.portName}`;
    const svc = `KUBE-SVC-${hash(`${spn}tcp`)}`;
    chains.push(svc);
    rules.push(`-A KUBE-SERVICES -d ${s.clusterIP}/32 -p tcp -m comment --comment "${spn} cluster IP" -m tcp --dport ${s.port} -j ${svc}`);
    s.endpoints.forEach((e, i) => {
      const ep = `${e.ip}:${e.port}`;
      const sep = `KUBE-SEP-${hash(`${spn}tcp${ep}`)}`;
      chains.push(sep);
      const left = s.endpoints.length - i;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      rules.push(`-A ${svc} -m comment --comment "${spn} -> ${ep}"${pick} -j ${sep}`);
      rules.push(`-A ${sep} -p tcp -m comment --comment "${spn}" -m tcp -j DNAT --to-destination ${ep}`);
    });
  }
  return ['*nat', ...chains.map((c) => `:${c} - [0:0]`), ...rules, 'COMMIT', ''].join('\n');
}
