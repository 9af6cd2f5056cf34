// Table tests of the capture rules (pure): what each setting generates, parsing iptables-save,
// recognising our rules / a conflict, removal, and the backend choice.
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { chooseBackend, type Backend, type BackendProbe } from './iptables-exec.js';
import {
  captureRules,
  captureSpec,
  compare,
  normalizeCidr,
  parseCidrList,
  parsePortList,
  parseSave,
  renderApply,
  renderRemove,
  type CaptureSpec,
} from './iptables.js';

const OUTPUT_CORE = [
  '-A WEFT_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
  '-A WEFT_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j WEFT_IN_REDIRECT',
  '-A WEFT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
  '-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  '-A WEFT_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j WEFT_IN_REDIRECT',
  '-A WEFT_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
  '-A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN',
  '-A WEFT_OUTPUT -d 127.0.0.1/32 -j RETURN',
];
const INBOUND_OWN = [15000, 15008, 15020, 15021, 15090].map((p) => `-A WEFT_INBOUND -p tcp -m tcp --dport ${p} -j RETURN`);

interface Case {
  readonly name: string;
  readonly spec: Partial<CaptureSpec>;
  readonly family?: 4 | 6;
  /** Rules of one chain, exactly, in order. */
  readonly chain: string;
  readonly rules: readonly string[];
}

const cases: Case[] = [
  {
    name: 'defaults: inbound skips the proxy ports, everything else goes to 15006',
    spec: {},
    chain: 'WEFT_INBOUND',
    rules: [...INBOUND_OWN, '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT'],
  },
  {
    name: 'defaults: outbound handles loopback and the proxy UID/GID as Istio does, then redirects all',
    spec: {},
    chain: 'WEFT_OUTPUT',
    rules: [...OUTPUT_CORE, '-A WEFT_OUTPUT -j WEFT_REDIRECT'],
  },
  { name: 'defaults: redirect targets', spec: {}, chain: 'WEFT_REDIRECT', rules: ['-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001'] },
  { name: 'defaults: inbound redirect target', spec: {}, chain: 'WEFT_IN_REDIRECT', rules: ['-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'] },
  {
    name: 'other proxy ports and ids',
    spec: { outboundPort: 16001, inboundPort: 16006, proxyUid: 2000, proxyGid: 3000, outboundCidrs: [] },
    chain: 'WEFT_OUTPUT',
    rules: OUTPUT_CORE.map((r) => r.replace('uid-owner 1337', 'uid-owner 2000').replace('gid-owner 1337', 'gid-owner 3000')),
  },
  {
    name: 'excluded inbound ports join the proxy ports, sorted',
    spec: { excludeInboundPorts: [9090, 22] },
    chain: 'WEFT_INBOUND',
    rules: [
      '-A WEFT_INBOUND -p tcp -m tcp --dport 22 -j RETURN',
      '-A WEFT_INBOUND -p tcp -m tcp --dport 9090 -j RETURN',
      ...INBOUND_OWN,
      '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
    ],
  },
  {
    name: 'listed inbound ports only (a proxy port in the list is still skipped)',
    spec: { inboundPorts: [9080, 15020, 7000] },
    chain: 'WEFT_INBOUND',
    rules: ['-A WEFT_INBOUND -p tcp -m tcp --dport 7000 -j WEFT_IN_REDIRECT', '-A WEFT_INBOUND -p tcp -m tcp --dport 9080 -j WEFT_IN_REDIRECT'],
  },
  {
    name: 'listed inbound ports: the proxy calling its own pod is inbound only for those ports',
    spec: { inboundPorts: [9080] },
    chain: 'WEFT_OUTPUT',
    rules: [
      '-A WEFT_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
      '-A WEFT_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp --dport 9080 -m owner --uid-owner 1337 -j WEFT_IN_REDIRECT',
      '-A WEFT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp --dport 9080 -m owner --gid-owner 1337 -j WEFT_IN_REDIRECT',
      '-A WEFT_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A WEFT_OUTPUT -j WEFT_REDIRECT',
    ],
  },
  { name: 'inbound capture disabled', spec: { inboundPorts: [] }, chain: 'WEFT_INBOUND', rules: [] },
  {
    name: 'outbound: excluded ports first, included ports before excluded CIDRs, then only the listed CIDRs',
    spec: { excludeOutboundPorts: [5432], includeOutboundPorts: [9080], excludeOutboundCidrs: ['169.254.169.254'], outboundCidrs: ['10.96.0.0/12', '10.244.7.9/16'] },
    chain: 'WEFT_OUTPUT',
    rules: [
      '-A WEFT_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      ...OUTPUT_CORE,
      '-A WEFT_OUTPUT -p tcp -m tcp --dport 9080 -j WEFT_REDIRECT',
      '-A WEFT_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A WEFT_OUTPUT -d 10.96.0.0/12 -j WEFT_REDIRECT',
      '-A WEFT_OUTPUT -d 10.244.0.0/16 -j WEFT_REDIRECT',
    ],
  },
  { name: 'outbound capture disabled', spec: { outboundCidrs: [] }, chain: 'WEFT_OUTPUT', rules: OUTPUT_CORE },
  {
    name: 'IPv6: ::1 and ::6, only IPv6 CIDRs',
    spec: { excludeOutboundCidrs: ['10.0.0.0/8', 'fd00:0:0::1/8'] },
    family: 6,
    chain: 'WEFT_OUTPUT',
    rules: [
      '-A WEFT_OUTPUT -s ::6/128 -o lo -j RETURN',
      '-A WEFT_OUTPUT ! -d ::1/128 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j WEFT_IN_REDIRECT',
      '-A WEFT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT ! -d ::1/128 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j WEFT_IN_REDIRECT',
      '-A WEFT_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -m owner --gid-owner 1337 -j RETURN',
      '-A WEFT_OUTPUT -d ::1/128 -j RETURN',
      '-A WEFT_OUTPUT -d fd00::/8 -j RETURN',
      '-A WEFT_OUTPUT -j WEFT_REDIRECT',
    ],
  },
];

describe('captureRules', () => {
  it.each(cases)('$name', (c) => {
    const rs = captureRules(captureSpec(c.spec), c.family ?? 4);
    expect(rs.rules.filter((r) => r.startsWith(`-A ${c.chain} `))).toEqual(c.rules);
  });

  it('is a pure function: equal input, equal output', () => {
    expect(captureRules(captureSpec({ excludeInboundPorts: [1] }), 4)).toEqual(captureRules(captureSpec({ excludeInboundPorts: [1] }), 4));
  });

  it('renders one atomic iptables-restore commit that inserts the jumps first', () => {
    expect(renderApply(captureRules(captureSpec({}), 4))).toBe(
      [
        '*nat',
        ':WEFT_INBOUND - [0:0]',
        ':WEFT_IN_REDIRECT - [0:0]',
        ':WEFT_OUTPUT - [0:0]',
        ':WEFT_REDIRECT - [0:0]',
        ...INBOUND_OWN,
        '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
        '-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
        ...OUTPUT_CORE,
        '-A WEFT_OUTPUT -j WEFT_REDIRECT',
        '-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
        '-I PREROUTING 1 -p tcp -j WEFT_INBOUND',
        '-I OUTPUT 1 -p tcp -j WEFT_OUTPUT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});

describe('capture settings', () => {
  it.each([
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00:1:2::3/32', 'fd00:1::/32'],
    ['::ffff:10.0.0.1/128', '::ffff:a00:1/128'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
  ])('normalises %s to %s', (input, out) => expect(normalizeCidr('x', input).cidr).toBe(out));

  it.each([
    ['--outbound-cidrs', () => parseCidrList('--outbound-cidrs', '10.0.0.0/33', true), /invalid prefix length/],
    ['--outbound-cidrs', () => parseCidrList('--outbound-cidrs', 'reviews', true), /not an IP address/],
    ['--exclude-outbound-ports', () => parsePortList('--exclude-outbound-ports', '80,http', false), /"http" is not a port number/],
    ['--exclude-inbound-ports', () => parsePortList('--exclude-inbound-ports', '70000', false), /not a port number/],
    ['--exclude-outbound-ports', () => parsePortList('--exclude-outbound-ports', '*', false), /"\*" is not allowed/],
    ['ports', () => captureSpec({ outboundPort: 15006 }), /must differ/],
    ['ports', () => captureSpec({ includeOutboundPorts: [80], excludeOutboundPorts: [80] }), /both included and excluded/],
  ])('refuses bad %s with a usage error', (_flag, fn, message) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, ErrorCode.USAGE)).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it('parses lists', () => {
    expect(parsePortList('f', '*', true)).toBe('*');
    expect(parsePortList('f', '', true)).toEqual([]);
    expect(parsePortList('f', '80, 443', false)).toEqual([80, 443]);
  });
});

const DEFAULT = captureRules(captureSpec({}), 4);

function save(extra: { chains?: string[]; rules?: string[] }): string {
  return [
    '# Generated by iptables-nft-save v1.8.9 (nf_tables)',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    '-A INPUT -j ACCEPT',
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ...(extra.chains ?? []).map((c) => `:${c} - [0:0]`),
    ...(extra.rules ?? []),
    'COMMIT',
  ].join('\n');
}

const installed = { chains: [...DEFAULT.chains], rules: [...DEFAULT.jumps, ...DEFAULT.rules] };
const kube = {
  chains: ['KUBE-SERVICES', 'KUBE-SVC-ABC'],
  rules: ['-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', '-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 9080 -j KUBE-SVC-ABC'],
};

describe('recognising installed rules', () => {
  it('parses only the nat table', () => {
    const s = parseSave(save(kube));
    expect([...s.chains]).toEqual(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING', 'KUBE-SERVICES', 'KUBE-SVC-ABC']);
    expect(s.rules.get('INPUT')).toBeUndefined();
    expect(s.rules.get('KUBE-SERVICES')).toEqual([kube.rules[1]]);
  });

  it.each([
    ['an empty table', save({}), 'absent'],
    ['kube-proxy rules only (they coexist)', save(kube), 'absent'],
    ['exactly our rules', save(installed), 'applied'],
    ['our rules next to kube-proxy', save({ chains: [...kube.chains, ...installed.chains], rules: [...installed.rules, ...kube.rules] }), 'applied'],
  ])('%s → %s', (_name, text, kind) => expect(compare(parseSave(text), DEFAULT).kind).toBe(kind));

  it.each([
    ['our rules from other settings', save({ ...installed, rules: installed.rules.map((r) => r.replace('15001', '16001')) }), /chain WEFT_REDIRECT holds other rules/],
    ['a half-installed set', save({ chains: ['WEFT_OUTPUT'], rules: ['-A WEFT_OUTPUT -j RETURN'] }), /chain WEFT_INBOUND is missing/],
    ['a doubled jump', save({ ...installed, rules: [...installed.rules, '-A OUTPUT -p tcp -j WEFT_OUTPUT'] }), /installed 2 times/],
    ["Istio's capture", save({ chains: ['ISTIO_OUTPUT'], rules: ['-A OUTPUT -p tcp -j ISTIO_OUTPUT'] }), /another mesh's traffic capture/],
    ['a foreign REDIRECT', save({ rules: ['-A OUTPUT -p tcp -j REDIRECT --to-ports 8080'] }), /foreign REDIRECT rule in OUTPUT/],
  ])('%s is a conflict naming the problem', (_name, text, problem) => {
    const c = compare(parseSave(text), DEFAULT);
    expect(c.kind).toBe('conflict');
    expect(c.kind === 'conflict' && c.problems.join('; ')).toMatch(problem);
  });

  it('removal deletes every jump, then flushes all our chains before deleting any', () => {
    const text = save({ chains: [...kube.chains, ...installed.chains], rules: [...installed.rules, ...kube.rules] });
    expect(renderRemove(parseSave(text))).toBe(
      [
        '*nat',
        '-D PREROUTING -p tcp -j WEFT_INBOUND',
        '-D OUTPUT -p tcp -j WEFT_OUTPUT',
        ...DEFAULT.chains.map((c) => `-F ${c}`),
        ...DEFAULT.chains.map((c) => `-X ${c}`),
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderRemove(parseSave(save(kube)))).toBeUndefined();
  });
});

describe('choosing the iptables backend', () => {
  const backend = (name: 'nft' | 'legacy'): Backend => ({ name, save: { 4: `iptables-${name}-save`, 6: '' }, restore: { 4: '', 6: '' } });
  const p = (name: 'nft' | 'legacy', rules: number, ours = false, works = true): BackendProbe => ({ backend: backend(name), works, rules, ours });

  it.each([
    ['nothing anywhere → nft', [p('nft', 0), p('legacy', 0)], 'nft'],
    ['kube-proxy rules in legacy → legacy', [p('nft', 0), p('legacy', 12)], 'legacy'],
    ['our rules win over more rules elsewhere', [p('nft', 30), p('legacy', 12, true)], 'legacy'],
    ['a backend that does not work is skipped', [p('nft', 0, false, false), p('legacy', 0)], 'legacy'],
  ])('%s', (_name, probes, want) => expect(chooseBackend(probes, 'auto').backend.name).toBe(want));

  it('says what is missing when there is no iptables at all', () => {
    expect(() => chooseBackend([], 'auto')).toThrow(/no iptables found/);
  });
});
