// `weft iptables apply|remove|print`: what a sidecar's init container runs in the pod's network
// namespace to send the app's TCP through the proxy (rules: proxy/capture/iptables.ts).
import type { Command } from 'commander';
import { ErrorCode, WeftError } from '../core/errors.js';
import { applyCapture, removeCapture, type BackendName } from '../proxy/capture/iptables-exec.js';
import {
  CAPTURE_DEFAULTS,
  captureRules,
  captureSpec,
  parseCidrList,
  parsePortList,
  PROXY_OWN_PORTS,
  renderApply,
  type CaptureSpec,
} from '../proxy/capture/iptables.js';

interface Flags {
  proxyUid: string;
  proxyGid: string;
  outboundCapturePort: string;
  inboundCapturePort: string;
  inboundPorts: string;
  excludeInboundPorts: string;
  outboundPorts: string;
  excludeOutboundPorts: string;
  outboundCidrs: string;
  excludeOutboundCidrs: string;
  backend: string;
  ipv6?: boolean;
}

function whole(flag: string, v: string): number {
  if (!/^\d+$/.test(v.trim())) throw new WeftError(ErrorCode.USAGE, `${flag}: expected a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** The flags → a validated CaptureSpec (the one place they are read). */
export function specFromFlags(o: Flags): CaptureSpec {
  const ports = (flag: string, v: string) => {
    const list = parsePortList(flag, v, false);
    return list === '*' ? [] : list;
  };
  return captureSpec({
    proxyUid: whole('--proxy-uid', o.proxyUid),
    proxyGid: whole('--proxy-gid', o.proxyGid),
    outboundPort: whole('--outbound-capture-port', o.outboundCapturePort),
    inboundPort: whole('--inbound-capture-port', o.inboundCapturePort),
    inboundPorts: parsePortList('--inbound-ports', o.inboundPorts, true),
    excludeInboundPorts: ports('--exclude-inbound-ports', o.excludeInboundPorts),
    includeOutboundPorts: ports('--outbound-ports', o.outboundPorts),
    excludeOutboundPorts: ports('--exclude-outbound-ports', o.excludeOutboundPorts),
    outboundCidrs: parseCidrList('--outbound-cidrs', o.outboundCidrs, true),
    excludeOutboundCidrs: (() => {
      const l = parseCidrList('--exclude-outbound-cidrs', o.excludeOutboundCidrs, false);
      return l === '*' ? [] : l;
    })(),
  });
}

function backendFlag(v: string): BackendName | 'auto' {
  if (v === 'auto' || v === 'nft' || v === 'legacy') return v;
  throw new WeftError(ErrorCode.USAGE, `--backend: auto, nft or legacy, got ${JSON.stringify(v)}`);
}

function captureOptions(cmd: Command): Command {
  const d = CAPTURE_DEFAULTS;
  return cmd
    .option('--proxy-uid <uid>', "the proxy's user id; its traffic is never captured", String(d.proxyUid))
    .option('--proxy-gid <gid>', "the proxy's group id; its traffic is never captured", String(d.proxyGid))
    .option('--outbound-capture-port <port>', "the proxy's outbound listener", String(d.outboundPort))
    .option('--inbound-capture-port <port>', "the proxy's inbound listener", String(d.inboundPort))
    .option('--inbound-ports <list>', 'inbound ports to capture: "*" (all) or a comma list; "" disables', '*')
    .option('--exclude-inbound-ports <list>', `inbound ports never captured (always: ${PROXY_OWN_PORTS.join(',')})`, '')
    .option('--outbound-ports <list>', 'outbound ports always captured, whatever the CIDRs', '')
    .option('--exclude-outbound-ports <list>', 'outbound ports never captured', '')
    .option('--outbound-cidrs <list>', 'outbound destinations to capture: "*" or a comma list of CIDRs; "" disables', '*')
    .option('--exclude-outbound-cidrs <list>', 'outbound destinations never captured', '')
    .option('--ipv6', 'capture IPv6 too (ip6tables)');
}

export function registerIptables(program: Command): void {
  const ipt = program
    .command('iptables')
    .description("install / remove the sidecar's traffic capture in this network namespace (init container)");

  captureOptions(ipt.command('apply'))
    .description('install the capture rules (idempotent; refuses conflicting rules; all or nothing)')
    .option('--backend <name>', 'auto (the backend holding this namespace\'s rules), nft or legacy', 'auto')
    .action((o: Flags) => {
      const report = applyCapture({ spec: specFromFlags(o), backend: backendFlag(o.backend), ipv6: o.ipv6 === true });
      const what = report.installed.length > 0 ? `installed (${report.installed.map((f) => `IPv${f}`).join(', ')})` : 'already in place, nothing changed';
      process.stdout.write(`weft iptables: capture rules ${what} with iptables-${report.backend}\n`);
    });

  ipt
    .command('remove')
    .description('remove the capture rules (idempotent)')
    .option('--backend <name>', 'auto (every backend holding our rules), nft or legacy', 'auto')
    .option('--ipv6', 'fail if the IPv6 rules cannot be removed')
    .action((o: { backend: string; ipv6?: boolean }) => {
      const report = removeCapture({ backend: backendFlag(o.backend), ipv6: o.ipv6 === true });
      process.stdout.write(`weft iptables: ${report.removed.length > 0 ? `removed (${report.removed.join(', ')})` : 'nothing installed, nothing changed'}\n`);
    });

  captureOptions(ipt.command('print'))
    .description('print the exact rules apply would install (iptables-restore input, use with --noflush)')
    .action((o: Flags) => {
      const spec = specFromFlags(o);
      const out = [`# weft iptables: IPv4 (iptables-restore --noflush)`, renderApply(captureRules(spec, 4))];
      if (o.ipv6) out.push(`# IPv6 (ip6tables-restore --noflush)`, renderApply(captureRules(spec, 6)));
      process.stdout.write(out.join('\n'));
    });
}
