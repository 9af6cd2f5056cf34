// The sidecar's capture rules as data: a pure function from the capture settings to the exact
// nat-table rules (iptables-save's canonical spelling), plus parsing iptables-save output and
// comparing it with what we want. No I/O here; iptables-exec.ts carries the plan out.
import { isIP } from 'node:net';
import { ErrorCode, WeftError } from '../../core/errors.js';

/** Our chains, in the order they are declared. PREROUTING → WEFT_INBOUND, OUTPUT → WEFT_OUTPUT. */
export const CHAINS = ['WEFT_INBOUND', 'WEFT_IN_REDIRECT', 'WEFT_OUTPUT', 'WEFT_REDIRECT'] as const;
export const CHAIN_PREFIX = 'WEFT_';

/** The proxy's own ports that inbound capture never touches: HBONE, stats, health, Envoy-style
 *  Prometheus, admin (DESIGN.md's ports table). */
export const PROXY_OWN_PORTS: readonly number[] = Object.freeze([15008, 15020, 15021, 15090, 15000]);

/** Source address of the proxy's inbound hop to the app (Istio's InboundPassthroughBindIpv4):
 *  traffic from it over lo is never captured again. */
export const INBOUND_PASSTHROUGH_SOURCE = { 4: '127.0.0.6', 6: '::6' } as const;
const LOOPBACK = { 4: '127.0.0.1/32', 6: '::1/128' } as const;

export type Family = 4 | 6;

export interface CaptureSpec {
  /** The proxy's UID and GID: its own traffic is never captured. */
  readonly proxyUid: number;
  readonly proxyGid: number;
  /** Where outbound TCP is redirected (the proxy's outbound listener). */
  readonly outboundPort: number;
  /** Where inbound TCP is redirected (the proxy's inbound listener). */
  readonly inboundPort: number;
  /** Inbound ports to capture: all (`'*'`) or these; `[]` disables inbound capture. */
  readonly inboundPorts: '*' | readonly number[];
  /** Inbound ports never captured (the proxy's own ports are always added). */
  readonly excludeInboundPorts: readonly number[];
  /** Outbound ports always captured, whatever the CIDR settings say. */
  readonly includeOutboundPorts: readonly number[];
  /** Outbound ports never captured. */
  readonly excludeOutboundPorts: readonly number[];
  /** Outbound destinations to capture: all (`'*'`) or these CIDRs; `[]` disables outbound capture. */
  readonly outboundCidrs: '*' | readonly string[];
  /** Outbound destinations never captured. */
  readonly excludeOutboundCidrs: readonly string[];
}

export const CAPTURE_DEFAULTS: CaptureSpec = Object.freeze({
  proxyUid: 1337,
  proxyGid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  inboundPorts: '*',
  excludeInboundPorts: [],
  includeOutboundPorts: [],
  excludeOutboundPorts: [],
  outboundCidrs: '*',
  excludeOutboundCidrs: [],
});

/** The rules for one address family, each as iptables-save prints it (`-A CHAIN ...`). */
export interface RuleSet {
  readonly family: Family;
  readonly table: 'nat';
  readonly chains: readonly string[];
  /** Rules of our chains, in order. */
  readonly rules: readonly string[];
  /** Jumps from the built-in chains, inserted first so capture comes before any Service DNAT. */
  readonly jumps: readonly string[];
}

// ---- Validation ------------------------------------------------------------------------------

function checkPort(flag: string, p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new WeftError(ErrorCode.USAGE, `${flag}: ${JSON.stringify(p)} is not a port number (1-65535)`);
  return p;
}

/** `10.1.2.3/8` → `10.0.0.0/8`; `10.1.2.3` → `10.1.2.3/32` (the spelling iptables-save prints). */
export function normalizeCidr(flag: string, cidr: string): { cidr: string; family: Family } {
  const slash = cidr.indexOf('/');
  const addr = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(addr);
  if (family !== 4 && family !== 6) throw new WeftError(ErrorCode.USAGE, `${flag}: ${JSON.stringify(cidr)} is not an IP address or CIDR`);
  const max = family === 4 ? 32 : 128;
  const len = slash < 0 ? max : Number(cidr.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max || (slash >= 0 && !/^\d+$/.test(cidr.slice(slash + 1)))) {
    throw new WeftError(ErrorCode.USAGE, `${flag}: ${JSON.stringify(cidr)} has an invalid prefix length`);
  }
  const bits = family === 4 ? v4ToBigInt(addr) : v6ToBigInt(addr);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(max - len);
  const net = bits & mask;
  return { cidr: `${family === 4 ? bigIntToV4(net) : bigIntToV6(net)}/${len}`, family };
}

function v4ToBigInt(a: string): bigint {
  return a.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}
function bigIntToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}
function v6ToBigInt(a: string): bigint {
  let text = a;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = v4ToBigInt(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}
/** RFC 5952 text form (what iptables-save prints). */
function bigIntToV6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i > 1) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(':');
  return `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.len).join(':')}`;
}

/** Validates and normalises a spec (ports checked, CIDRs in canonical form, lists sorted and unique). */
export function captureSpec(input: Partial<CaptureSpec>): CaptureSpec {
  const s = { ...CAPTURE_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as CaptureSpec;
  for (const [flag, id] of [['--proxy-uid', s.proxyUid], ['--proxy-gid', s.proxyGid]] as const) {
    if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) throw new WeftError(ErrorCode.USAGE, `${flag}: ${JSON.stringify(id)} is not a user/group id`);
  }
  const ports = (flag: string, list: readonly number[]) => [...new Set(list.map((p) => checkPort(flag, p)))].sort((a, b) => a - b);
  const cidrs = (flag: string, list: readonly string[]) => [...new Set(list.map((c) => normalizeCidr(flag, c).cidr))];
  const out: CaptureSpec = {
    proxyUid: s.proxyUid,
    proxyGid: s.proxyGid,
    outboundPort: checkPort('--outbound-capture-port', s.outboundPort),
    inboundPort: checkPort('--inbound-capture-port', s.inboundPort),
    inboundPorts: s.inboundPorts === '*' ? '*' : ports('--inbound-ports', s.inboundPorts),
    excludeInboundPorts: ports('--exclude-inbound-ports', s.excludeInboundPorts),
    includeOutboundPorts: ports('--outbound-ports', s.includeOutboundPorts),
    excludeOutboundPorts: ports('--exclude-outbound-ports', s.excludeOutboundPorts),
    outboundCidrs: s.outboundCidrs === '*' ? '*' : cidrs('--outbound-cidrs', s.outboundCidrs),
    excludeOutboundCidrs: cidrs('--exclude-outbound-cidrs', s.excludeOutboundCidrs),
  };
  if (out.outboundPort === out.inboundPort) {
    throw new WeftError(ErrorCode.USAGE, `--outbound-capture-port and --inbound-capture-port must differ (both ${out.inboundPort})`);
  }
  const both = out.includeOutboundPorts.filter((p) => out.excludeOutboundPorts.includes(p));
  if (both.length > 0) throw new WeftError(ErrorCode.USAGE, `ports ${both.join(',')} are both included and excluded outbound`);
  return Object.freeze(out);
}

/** `"*"` → '*'; `""` → []; `"80,443"` → [80, 443]. */
export function parsePortList(flag: string, text: string, allowStar: boolean): '*' | number[] {
  const t = text.trim();
  if (t === '*') {
    if (!allowStar) throw new WeftError(ErrorCode.USAGE, `${flag}: "*" is not allowed here`);
    return '*';
  }
  if (t === '') return [];
  return t.split(',').map((part) => {
    const n = Number(part.trim());
    if (!/^\d+$/.test(part.trim())) throw new WeftError(ErrorCode.USAGE, `${flag}: ${JSON.stringify(part)} is not a port number`);
    return checkPort(flag, n);
  });
}

/** `"*"` → '*'; `""` → []; `"10.0.0.0/8,fd00::/8"` → the list. */
export function parseCidrList(flag: string, text: string, allowStar: boolean): '*' | string[] {
  const t = text.trim();
  if (t === '*') {
    if (!allowStar) throw new WeftError(ErrorCode.USAGE, `${flag}: "*" is not allowed here`);
    return '*';
  }
  return t === '' ? [] : t.split(',').map((c) => normalizeCidr(flag, c.trim()).cidr);
}

// ---- Generation ------------------------------------------------------------------------------

/**
 * The nat-table rules for `family`, modelled on Istio's istio-iptables (REDIRECT mode):
 *
 * PREROUTING → WEFT_INBOUND: the proxy's own ports and excluded ports return; every other TCP
 * port (or the listed ones) → WEFT_IN_REDIRECT → REDIRECT to the inbound port.
 *
 * OUTPUT → WEFT_OUTPUT, first match wins:
 * - excluded outbound ports return;
 * - from 127.0.0.6 over lo: the proxy's hop to the app, never captured again;
 * - the proxy (UID, then GID) calling its own pod IP over lo (a Service whose endpoint is this
 *   very pod): treated as inbound → WEFT_IN_REDIRECT (except HBONE 15008);
 * - anything else of the app over lo (localhost, its own pod IP) returns, uncaptured;
 * - anything else of the proxy returns (its upstream calls, xDS);
 * - to 127.0.0.1 returns;
 * - included outbound ports → WEFT_REDIRECT whatever the CIDRs say;
 * - excluded CIDRs return; the captured CIDRs (or all) → WEFT_REDIRECT → REDIRECT to the
 *   outbound port.
 */
export function captureRules(spec: CaptureSpec, family: Family): RuleSet {
  const lo = LOOPBACK[family];
  const src = `${INBOUND_PASSTHROUGH_SOURCE[family]}/${family === 4 ? 32 : 128}`;
  const rules: string[] = [];
  const add = (chain: string, rule: string) => rules.push(`-A ${chain} ${rule}`);
  const inbound = spec.inboundPorts === '*' || spec.inboundPorts.length > 0;
  const outbound = spec.outboundCidrs === '*' || spec.outboundCidrs.length > 0 || spec.includeOutboundPorts.length > 0;
  const ofFamily = (cidrs: readonly string[]) => cidrs.filter((c) => normalizeCidr('cidr', c).family === family);

  // Inbound.
  const skipInbound = [...new Set([...PROXY_OWN_PORTS, ...spec.excludeInboundPorts])].sort((a, b) => a - b);
  if (spec.inboundPorts === '*') {
    for (const p of skipInbound) add('WEFT_INBOUND', `-p tcp -m tcp --dport ${p} -j RETURN`);
    add('WEFT_INBOUND', '-p tcp -j WEFT_IN_REDIRECT');
  } else {
    for (const p of spec.inboundPorts) if (!skipInbound.includes(p)) add('WEFT_INBOUND', `-p tcp -m tcp --dport ${p} -j WEFT_IN_REDIRECT`);
  }
  add('WEFT_IN_REDIRECT', `-p tcp -j REDIRECT --to-ports ${spec.inboundPort}`);

  // Outbound.
  for (const p of spec.excludeOutboundPorts) add('WEFT_OUTPUT', `-p tcp -m tcp --dport ${p} -j RETURN`);
  add('WEFT_OUTPUT', `-s ${src} -o lo -j RETURN`);
  for (const [kind, id] of [['uid', spec.proxyUid], ['gid', spec.proxyGid]] as const) {
    if (inbound) {
      const selfPorts = spec.inboundPorts === '*' ? ['! --dport 15008'] : spec.inboundPorts.filter((p) => !skipInbound.includes(p)).map((p) => `--dport ${p}`);
      for (const d of selfPorts) add('WEFT_OUTPUT', `! -d ${lo} -o lo -p tcp -m tcp ${d} -m owner --${kind}-owner ${id} -j WEFT_IN_REDIRECT`);
    }
    add('WEFT_OUTPUT', `-o lo -m owner ! --${kind}-owner ${id} -j RETURN`);
    add('WEFT_OUTPUT', `-m owner --${kind}-owner ${id} -j RETURN`);
  }
  add('WEFT_OUTPUT', `-d ${lo} -j RETURN`);
  if (outbound) {
    for (const p of spec.includeOutboundPorts) add('WEFT_OUTPUT', `-p tcp -m tcp --dport ${p} -j WEFT_REDIRECT`);
    for (const c of ofFamily(spec.excludeOutboundCidrs)) add('WEFT_OUTPUT', `-d ${c} -j RETURN`);
    if (spec.outboundCidrs === '*') add('WEFT_OUTPUT', '-j WEFT_REDIRECT');
    else for (const c of ofFamily(spec.outboundCidrs)) add('WEFT_OUTPUT', `-d ${c} -j WEFT_REDIRECT`);
  }
  add('WEFT_REDIRECT', `-p tcp -j REDIRECT --to-ports ${spec.outboundPort}`);

  return {
    family,
    table: 'nat',
    chains: [...CHAINS],
    rules,
    jumps: ['-A PREROUTING -p tcp -j WEFT_INBOUND', '-A OUTPUT -p tcp -j WEFT_OUTPUT'],
  };
}

/** iptables-restore input (use with --noflush) installing `rs` in one atomic commit. Declaring
 *  a chain flushes it; the jumps go first in PREROUTING / OUTPUT. */
export function renderApply(rs: RuleSet): string {
  const lines = [`*${rs.table}`, ...rs.chains.map((c) => `:${c} - [0:0]`), ...rs.rules];
  for (const j of rs.jumps) lines.push(j.replace(/^-A (\S+) /, '-I $1 1 '));
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

// ---- What is installed -------------------------------------------------------------------------

/** One table of iptables-save output: chain names and each chain's rules in order. */
export interface TableState {
  readonly chains: ReadonlySet<string>;
  readonly rules: ReadonlyMap<string, readonly string[]>;
}

/** Parses the `*table` section of iptables-save output (absent table → empty). */
export function parseSave(text: string, table = 'nat'): TableState {
  const chains = new Set<string>();
  const rules = new Map<string, string[]>();
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inTable = line.slice(1) === table;
    else if (!inTable || line === '' || line.startsWith('#')) continue;
    else if (line === 'COMMIT') inTable = false;
    else if (line.startsWith(':')) chains.add(line.slice(1).split(/\s+/)[0]!);
    else if (line.startsWith('-A ')) {
      const chain = line.split(/\s+/)[1]!;
      const list = rules.get(chain) ?? [];
      list.push(line.replace(/\s+/g, ' '));
      rules.set(chain, list);
    }
  }
  return { chains, rules };
}

/** Rules of built-in chains that jump to one of our chains. */
function ourJumps(state: TableState): string[] {
  const out: string[] = [];
  for (const [chain, list] of state.rules) {
    if (chain.startsWith(CHAIN_PREFIX)) continue;
    for (const r of list) if (new RegExp(`-j ${CHAIN_PREFIX}\\S+$`).test(r)) out.push(r);
  }
  return out;
}

/** Chains of other meshes' capture (Istio's istio-iptables, Linkerd's proxy-init). */
const FOREIGN_CAPTURE = /^(ISTIO_(INBOUND|OUTPUT|REDIRECT|IN_REDIRECT)|PROXY_INIT_(OUTPUT|REDIRECT))$/;

export type Comparison =
  | { readonly kind: 'absent' }
  | { readonly kind: 'applied' }
  | { readonly kind: 'conflict'; readonly problems: readonly string[] };

/**
 * How the installed nat table relates to `want`: nothing of ours there, exactly our rules, or a
 * conflict (our chains with other rules — applied with other settings —, a half-installed
 * set, or another mesh's capture rules) that apply must not paper over.
 */
export function compare(state: TableState, want: RuleSet): Comparison {
  const problems: string[] = [];
  for (const c of state.chains) if (FOREIGN_CAPTURE.test(c)) problems.push(`chain ${c} of another mesh's traffic capture is installed`);
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    for (const r of state.rules.get(chain) ?? []) if (/-j REDIRECT\b/.test(r)) problems.push(`foreign REDIRECT rule in ${chain}: ${r}`);
  }
  const ours = [...state.chains].filter((c) => c.startsWith(CHAIN_PREFIX));
  const jumps = ourJumps(state);
  if (ours.length === 0 && jumps.length === 0) return problems.length > 0 ? { kind: 'conflict', problems } : { kind: 'absent' };

  for (const c of want.chains) if (!state.chains.has(c)) problems.push(`chain ${c} is missing`);
  for (const c of ours) if (!want.chains.includes(c)) problems.push(`unexpected chain ${c}`);
  for (const c of want.chains) {
    if (!state.chains.has(c)) continue;
    const have = state.rules.get(c) ?? [];
    const expect = want.rules.filter((r) => r.startsWith(`-A ${c} `));
    if (have.length !== expect.length || have.some((r, i) => r !== expect[i])) {
      problems.push(`chain ${c} holds other rules (${have.length} installed, ${expect.length} wanted; first difference: ${firstDifference(have, expect)})`);
    }
  }
  for (const j of want.jumps) {
    const n = jumps.filter((r) => r === j).length;
    if (n !== 1) problems.push(n === 0 ? `jump "${j}" is missing` : `jump "${j}" is installed ${n} times`);
  }
  for (const j of jumps) if (!want.jumps.includes(j)) problems.push(`unexpected jump "${j}"`);
  return problems.length === 0 ? { kind: 'applied' } : { kind: 'conflict', problems };
}

function firstDifference(have: readonly string[], want: readonly string[]): string {
  for (let i = 0; i < Math.max(have.length, want.length); i++) {
    if (have[i] !== want[i]) return `installed "${have[i] ?? '(none)'}" vs wanted "${want[i] ?? '(none)'}"`;
  }
  return 'none';
}

/** iptables-restore input (with --noflush) removing whatever of ours `state` holds, atomically;
 *  undefined when there is nothing to remove. */
export function renderRemove(state: TableState, table = 'nat'): string | undefined {
  const jumps = ourJumps(state);
  const ours = [...state.chains].filter((c) => c.startsWith(CHAIN_PREFIX));
  if (jumps.length === 0 && ours.length === 0) return undefined;
  const lines = [`*${table}`];
  for (const j of jumps) lines.push(j.replace(/^-A /, '-D '));
  // Flush all first: our chains jump to each other, and a referenced chain cannot be deleted.
  for (const c of ours) lines.push(`-F ${c}`);
  for (const c of ours) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}
