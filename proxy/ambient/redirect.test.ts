// Tests of the in-pod redirect rules: what is generated, how an installed table compares (each
// kind of drift and conflict named), the atomic install/repair and removal inputs, and the
// redirector's flow (backend choice, idempotence, roll-back, errors) over a fake iptables.
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import type { AsyncRunner, Backend } from '../capture/iptables-exec.js';
import { inNetns } from '../capture/iptables-exec.js';
import { parseSave } from '../capture/iptables.js';
import { checkHostProbes, checkRedirect, hostProbeRules, iptablesHostProbes, iptablesRedirector, redirectRules, redirectSpec, renderInstall, renderRemove, REDIRECT_DEFAULTS } from './redirect.js';

const RULES = [
  '-A WEFT_AMB_PREROUTING -p tcp -m tcp --dport 15008 -j RETURN',
  '-A WEFT_AMB_PREROUTING -s 169.254.7.127/32 -p tcp -j RETURN',
  '-A WEFT_AMB_PREROUTING -i lo -j RETURN',
  '-A WEFT_AMB_PREROUTING -p tcp -j REDIRECT --to-ports 15006',
  '-A WEFT_AMB_OUTPUT -m mark --mark 0x539/0xfff -j RETURN',
  '-A WEFT_AMB_OUTPUT -o lo -j RETURN',
  '-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 15001',
];
const JUMPS = ['-A PREROUTING -p tcp -j WEFT_AMB_PREROUTING', '-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT'];

/** iptables-save text of the nat table with these chains and rules. */
function table(chains: readonly string[], rules: readonly string[]): string {
  return ['*nat', ...['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'].map((c) => `:${c} ACCEPT [0:0]`), ...chains.map((c) => `:${c} - [0:0]`), ...rules, 'COMMIT', ''].join('\n');
}
const APPLIED = table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], [...JUMPS, ...RULES]);
const want = redirectRules(REDIRECT_DEFAULTS, 4);

describe('redirect rules (pure)', () => {
  it('generates the in-pod rules of the ARCHITECTURE contract', () => {
    expect(want.rules).toEqual(RULES);
    expect(want.jumps).toEqual(JUMPS);
    expect(want.chains).toEqual(['WEFT_AMB_PREROUTING', 'WEFT_AMB_OUTPUT']);
  });

  it('takes other ports and marks; a full mask is printed without it', () => {
    const rs = redirectRules(redirectSpec({ outboundPort: 16001, inboundPort: 16006, hbonePort: 16008, mark: 0x10, markMask: 0xffffffff }), 6);
    expect(rs.family).toBe(6);
    expect(rs.rules).toEqual([
      '-A WEFT_AMB_PREROUTING -p tcp -m tcp --dport 16008 -j RETURN',
      '-A WEFT_AMB_PREROUTING -s fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128 -p tcp -j RETURN',
      '-A WEFT_AMB_PREROUTING -i lo -j RETURN',
      '-A WEFT_AMB_PREROUTING -p tcp -j REDIRECT --to-ports 16006',
      '-A WEFT_AMB_OUTPUT -m mark --mark 0x10 -j RETURN',
      '-A WEFT_AMB_OUTPUT -o lo -j RETURN',
      '-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 16001',
    ]);
  });

  it.each([
    [{ outboundPort: 0 }, /outboundPort: 0 is not a port number/],
    [{ inboundPort: 15001 }, /redirect ports must differ/],
    [{ mark: 0x1539 }, /mark 0x1539 has bits outside its mask 0xfff/],
    [{ markMask: 0 }, /markMask: 0 is not a non-zero 32-bit value/],
  ])('rejects %j', (input, message) => {
    expect(() => redirectSpec(input)).toThrow(message);
  });

  it.each<[string, string, ReturnType<typeof checkRedirect>]>([
    ['an empty table is absent', table([], []), { kind: 'absent' }],
    ['the wanted rules are applied', APPLIED, { kind: 'applied' }],
    [
      'a flushed table: chains empty, jumps missing',
      table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], []),
      {
        kind: 'drifted',
        problems: [
          'chain WEFT_AMB_PREROUTING is empty (4 rules wanted)',
          'chain WEFT_AMB_OUTPUT is empty (3 rules wanted)',
          'jump "-A PREROUTING -p tcp -j WEFT_AMB_PREROUTING" is missing',
          'jump "-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT" is missing',
        ],
      },
    ],
    [
      'a missing chain (its jump gone too)',
      table(['WEFT_AMB_OUTPUT'], [JUMPS[1]!, ...RULES.slice(3)]),
      { kind: 'drifted', problems: ['chain WEFT_AMB_PREROUTING is missing', 'jump "-A PREROUTING -p tcp -j WEFT_AMB_PREROUTING" is missing'] },
    ],
    [
      'a changed rule',
      table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], [...JUMPS, ...RULES.slice(0, -1), '-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 16001']),
      {
        kind: 'drifted',
        problems: [
          'chain WEFT_AMB_OUTPUT changed (3 rules installed, 3 wanted; first difference: installed "-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 16001" vs wanted "-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 15001")',
        ],
      },
    ],
    [
      'a duplicated jump, a stray chain of ours and its jump',
      table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING', 'WEFT_AMB_OLD'], [...JUMPS, JUMPS[1]!, '-A INPUT -j WEFT_AMB_OLD', ...RULES]),
      {
        kind: 'drifted',
        problems: ['unexpected chain WEFT_AMB_OLD', 'jump "-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT" is installed 2 times', 'unexpected jump "-A INPUT -j WEFT_AMB_OLD"'],
      },
    ],
    [
      "a sidecar's capture",
      table(['WEFT_OUTPUT', 'WEFT_REDIRECT'], ['-A OUTPUT -p tcp -j WEFT_OUTPUT']),
      {
        kind: 'conflict',
        problems: [
          "chain WEFT_OUTPUT of another traffic capture (a sidecar's, or another mesh's) is installed",
          "chain WEFT_REDIRECT of another traffic capture (a sidecar's, or another mesh's) is installed",
        ],
      },
    ],
    ["Istio ambient's in-pod chains", table(['ISTIO_PRERT'], []), { kind: 'conflict', problems: ["chain ISTIO_PRERT of another traffic capture (a sidecar's, or another mesh's) is installed"] }],
    [
      'a REDIRECT straight in OUTPUT, even next to ours',
      table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], [...JUMPS, '-A OUTPUT -p tcp -j REDIRECT --to-ports 9999', ...RULES]),
      { kind: 'conflict', problems: ['foreign REDIRECT rule in OUTPUT: -A OUTPUT -p tcp -j REDIRECT --to-ports 9999'] },
    ],
  ])('compares: %s', (_name, text, expected) => {
    expect(checkRedirect(parseSave(text), want)).toEqual(expected);
  });

  it('renders one atomic replacement: old jumps out, chains flushed, strays dropped, jumps first', () => {
    const state = parseSave(table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_OLD'], [JUMPS[1]!, JUMPS[1]!, '-A INPUT -j WEFT_AMB_OLD', '-A WEFT_AMB_OUTPUT -j RETURN']));
    expect(renderInstall(state, want).split('\n')).toEqual([
      '*nat',
      ':WEFT_AMB_PREROUTING - [0:0]',
      ':WEFT_AMB_OUTPUT - [0:0]',
      '-D OUTPUT -p tcp -j WEFT_AMB_OUTPUT',
      '-D OUTPUT -p tcp -j WEFT_AMB_OUTPUT',
      '-D INPUT -j WEFT_AMB_OLD',
      '-F WEFT_AMB_PREROUTING',
      '-F WEFT_AMB_OUTPUT',
      '-F WEFT_AMB_OLD',
      '-X WEFT_AMB_OLD',
      ...RULES,
      '-I PREROUTING 1 -p tcp -j WEFT_AMB_PREROUTING',
      '-I OUTPUT 1 -p tcp -j WEFT_AMB_OUTPUT',
      'COMMIT',
      '',
    ]);
  });

  it("removes only ours: a sidecar's WEFT_ chains stay", () => {
    const state = parseSave(table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING', 'WEFT_OUTPUT'], [...JUMPS, '-A OUTPUT -p tcp -j WEFT_OUTPUT', ...RULES]));
    expect(renderRemove(state)).toBe(
      [
        '*nat',
        '-D PREROUTING -p tcp -j WEFT_AMB_PREROUTING',
        '-D OUTPUT -p tcp -j WEFT_AMB_OUTPUT',
        '-F WEFT_AMB_OUTPUT',
        '-F WEFT_AMB_PREROUTING',
        '-X WEFT_AMB_OUTPUT',
        '-X WEFT_AMB_PREROUTING',
        'COMMIT',
        '',
      ].join('\n'),
    );
    expect(renderRemove(parseSave(table(['WEFT_OUTPUT'], ['-A OUTPUT -p tcp -j WEFT_OUTPUT'])))).toBeUndefined();
  });
});

/**
 * A fake iptables per namespace: `save` prints the current table; `restore` replaces it with
 * the applied or empty table depending on what the input does (the real parsing is covered by
 * the root test on both backends). `failRestore` makes one family's restore fail.
 */
function fakeIptables(initial: Partial<Record<4 | 6, string>> = {}) {
  const tables: Record<4 | 6, string> = { 4: initial[4] ?? table([], []), 6: initial[6] ?? table([], []) };
  const calls: string[] = [];
  const fail: { restore?: 4 | 6; stderr?: string; save?: boolean } = {};
  const backend: Backend = { name: 'nft', save: { 4: 'iptables-nft-save', 6: 'ip6tables-nft-save' }, restore: { 4: 'iptables-nft-restore', 6: 'ip6tables-nft-restore' } };
  const familyOf = (file: string): 4 | 6 => (file.startsWith('ip6') ? 6 : 4);
  const runIn = (nsPath: string): AsyncRunner => async (file, args, input) => {
    calls.push(`${nsPath} ${file} ${args.join(' ')}`);
    const family = familyOf(file);
    if (file.endsWith('-save')) {
      if (fail.save) return { status: 1, stdout: '', stderr: 'iptables-nft-save: Permission denied (you must be root)' };
      return { status: 0, stdout: tables[family], stderr: '' };
    }
    if (fail.restore === family) return { status: 1, stdout: '', stderr: fail.stderr ?? 'line 3 failed' };
    if (/-I OUTPUT 1/.test(input ?? '')) tables[family] = table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], [...JUMPS, ...redirectRules(REDIRECT_DEFAULTS, family).rules]);
    else if (/-X WEFT_AMB_/.test(input ?? '')) tables[family] = table([], []);
    return { status: 0, stdout: '', stderr: '' };
  };
  return { tables, calls, fail, runIn, backends: () => [backend] };
}

describe('iptablesRedirector over a fake iptables', () => {
  it('installs once, in the pod\'s namespace, and then finds it applied', async () => {
    const ipt = fakeIptables();
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends });
    expect(await r.verify('/run/netns/pod')).toEqual({ backend: 'nft', kind: 'absent', problems: [] });
    expect(await r.apply('/run/netns/pod')).toEqual({ backend: 'nft', changed: true, repaired: [] });
    expect(ipt.calls.filter((c) => c.includes('restore'))).toEqual(['/run/netns/pod iptables-nft-restore --noflush --wait=5']);
    expect(ipt.calls.every((c) => c.startsWith('/run/netns/pod '))).toBe(true);
    expect(await r.verify('/run/netns/pod')).toEqual({ backend: 'nft', kind: 'applied', problems: [] });
    expect(await r.apply('/run/netns/pod')).toEqual({ backend: 'nft', changed: false, repaired: [] });
  });

  it('repairs drift and reports what was wrong', async () => {
    const ipt = fakeIptables({ 4: table(['WEFT_AMB_OUTPUT', 'WEFT_AMB_PREROUTING'], []) });
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends });
    const v = await r.verify('/ns');
    expect(v.kind).toBe('drifted');
    const report = await r.apply('/ns');
    expect(report.changed).toBe(true);
    expect(report.repaired).toEqual(v.problems);
    expect(await r.verify('/ns')).toMatchObject({ kind: 'applied' });
  });

  it('rolls IPv4 back when IPv6 fails, so that nothing is half-installed', async () => {
    const ipt = fakeIptables();
    ipt.fail.restore = 6;
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends, ipv6: true });
    await expect(r.apply('/ns')).rejects.toThrow(/ip6tables-nft-restore --noflush failed: line 3 failed/);
    expect(ipt.tables[4]).toBe(table([], []));
    expect(ipt.calls.filter((c) => c.includes('restore'))).toEqual([
      '/ns iptables-nft-restore --noflush --wait=5',
      '/ns ip6tables-nft-restore --noflush --wait=5',
      '/ns iptables-nft-restore --noflush --wait=5',
    ]);
  });

  it('refuses next to another capture, changing nothing', async () => {
    const ipt = fakeIptables({ 4: table(['ISTIO_OUTPUT'], ['-A OUTPUT -p tcp -j ISTIO_OUTPUT']) });
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends });
    expect(await r.verify('/ns')).toMatchObject({ kind: 'conflict', problems: [expect.stringMatching(/chain ISTIO_OUTPUT of another traffic capture/)] });
    const err = await r.apply('/ns').catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.CONFIG_INVALID)).toBe(true);
    expect((err as Error).message).toMatch(/cannot redirect the pod's traffic in \/ns: iptables-nft: chain ISTIO_OUTPUT/);
    expect(ipt.calls.some((c) => c.includes('restore'))).toBe(false);
  });

  it('says which capability is missing', async () => {
    const ipt = fakeIptables();
    ipt.fail.save = true;
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends });
    const err = await r.apply('/ns').catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.PERMISSION_DENIED)).toBe(true);
    expect((err as { hint?: string }).hint).toMatch(/CAP_NET_ADMIN/);
  });

  it('removes from every family, and is idempotent', async () => {
    const ipt = fakeIptables();
    const r = iptablesRedirector({ runIn: ipt.runIn, backends: ipt.backends, ipv6: true });
    await r.apply('/ns');
    expect(await r.remove('/ns')).toEqual(['nft/ipv4', 'nft/ipv6']);
    expect(await r.remove('/ns')).toEqual([]);
    expect(await r.verify('/ns')).toMatchObject({ kind: 'absent' });
  });

  it('runs programs in the namespace with nsenter --net', async () => {
    const seen: string[] = [];
    const run = inNetns('/proc/42/ns/net', async (file, args) => {
      seen.push([file, ...args].join(' '));
      return { status: 0, stdout: '', stderr: '' };
    });
    await run('/usr/sbin/iptables-nft-save', ['-t', 'nat']);
    expect(seen).toEqual(['nsenter --net=/proc/42/ns/net -- /usr/sbin/iptables-nft-save -t nat']);
  });
});

describe("the node's rules for kubelet probes", () => {
  const SNAT = (ip: string) => `-A WEFT_AMB_PROBES -d ${ip}/32 -p tcp -m owner --socket-exists -m tcp ! --dport 15008 -j SNAT --to-source 169.254.7.127`;
  const JUMP = '-A POSTROUTING -j WEFT_AMB_PROBES';

  it("SNATs the node's own TCP to each pod of the family, HBONE excepted, in a stable order", () => {
    const rs = hostProbeRules(['10.0.0.9', 'fd00::9', '10.0.0.3', '10.0.0.9'], REDIRECT_DEFAULTS, 4);
    expect(rs.rules).toEqual([SNAT('10.0.0.3'), SNAT('10.0.0.9')]);
    expect(rs.jumps).toEqual([JUMP]);
    expect(hostProbeRules(['10.0.0.3', 'fd00::9'], REDIRECT_DEFAULTS, 6).rules).toEqual([
      '-A WEFT_AMB_PROBES -d fd00::9/128 -p tcp -m owner --socket-exists -m tcp ! --dport 15008 -j SNAT --to-source fd16:9254:7127:1337:ffff:ffff:ffff:ffff',
    ]);
  });

  it('names what differs', () => {
    const want = hostProbeRules(['10.0.0.3'], REDIRECT_DEFAULTS, 4);
    expect(checkHostProbes(parseSave(table(['WEFT_AMB_PROBES'], [JUMP, SNAT('10.0.0.3')])), want)).toEqual([]);
    expect(checkHostProbes(parseSave(table([], [])), want)).toEqual(['chain WEFT_AMB_PROBES is missing', `jump "${JUMP}" is missing`]);
    expect(checkHostProbes(parseSave(table(['WEFT_AMB_PROBES'], [JUMP, JUMP, SNAT('10.0.0.4')])), want)).toEqual([
      `chain WEFT_AMB_PROBES changed (1 rules installed, 1 wanted; first difference: installed "${SNAT('10.0.0.4')}" vs wanted "${SNAT('10.0.0.3')}")`,
      `jump "${JUMP}" is installed 2 times`,
    ]);
  });

  /** A fake node table: restore keeps the chain's -A lines and the inserted jump of the input. */
  function fakeNode(initial = table([], [])) {
    let current = initial;
    const restores: string[] = [];
    const run: AsyncRunner = async (file, _args, input) => {
      if (file.endsWith('-save')) return { status: 0, stdout: current, stderr: '' };
      restores.push(input ?? '');
      const lines = (input ?? '').split('\n');
      const rules = lines.filter((l) => l.startsWith('-A WEFT_AMB_PROBES '));
      const jumps = lines.filter((l) => l.startsWith('-I POSTROUTING 1 ')).map((l) => l.replace('-I POSTROUTING 1 ', '-A POSTROUTING '));
      current = table(['WEFT_AMB_PROBES'], [...jumps, ...rules]);
      return { status: 0, stdout: '', stderr: '' };
    };
    const backend: Backend = { name: 'legacy', save: { 4: 'iptables-legacy-save', 6: 'ip6tables-legacy-save' }, restore: { 4: 'iptables-legacy-restore', 6: 'ip6tables-legacy-restore' } };
    return { run, restores, backends: () => [backend], table: () => current };
  }

  it('writes only when the pods change or the rules drifted, and leaves a node without pods alone', async () => {
    const node = fakeNode();
    const probes = iptablesHostProbes({ run: node.run, backends: node.backends });
    expect(await probes.sync([])).toBe(false);
    expect(node.restores).toHaveLength(0);
    expect(await probes.sync(['10.0.0.3'])).toBe(true);
    expect(await probes.sync(['10.0.0.3'])).toBe(false);
    expect(await probes.sync(['10.0.0.3', '10.0.0.4'])).toBe(true);
    expect(parseSave(node.table()).rules.get('WEFT_AMB_PROBES')).toEqual([SNAT('10.0.0.3'), SNAT('10.0.0.4')]);
    // Someone flushed the chain: put back on the next pass.
    const flushed = fakeNode(table(['WEFT_AMB_PROBES'], [JUMP]));
    expect(await iptablesHostProbes({ run: flushed.run, backends: flushed.backends }).sync(['10.0.0.3'])).toBe(true);
    // The last pod left: the chain stays, empty, with its jump.
    expect(await probes.sync([])).toBe(true);
    expect(parseSave(node.table()).rules.get('WEFT_AMB_PROBES') ?? []).toEqual([]);
  });
});
