// `weft iptables apply|remove|print` for real, in a scratch network namespace, on both iptables
// backends: rules exactly as printed, idempotence, refusal of conflicting rules with nothing
// changed, roll-back when the second family fails, backend detection, and the operator-facing
// errors without privileges or without iptables. Needs root (CI runs as root).
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertPrerequisites, CLI, NODE, nsh, removeLeftovers, sh } from './support/host.js';

const PREFIX = 'wcipt';
const NS = `${PREFIX}-scratch`;
/** Absolute, so that tests can run weft with a PATH of their choosing. */
const IP = sh('which', ['ip']).stdout.trim();

function weft(args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  return sh(IP, ['netns', 'exec', NS, NODE, CLI, 'iptables', ...args], { allowFail: true, env });
}

function nat(backend: 'nft' | 'legacy', family: 4 | 6 = 4): string {
  return nsh(NS, `${family === 4 ? 'ip' : 'ip6'}tables-${backend}-save`, ['-t', 'nat']).stdout.replace(/^#.*\n/gm, '');
}

/** `-A` and `:chain` lines of ours, normalised to the order and spelling iptables-save uses. */
function ours(save: string): string[] {
  return save.split('\n').filter((l) => /WEFT_/.test(l) && !l.startsWith(':')).sort();
}

/** The rules `weft iptables print` shows for one family, as iptables-save spells them. */
function printed(args: readonly string[] = [], family: 4 | 6 = 4): string[] {
  const [v4 = '', v6 = ''] = weft(['print', ...args]).stdout.split('# IPv6');
  return (family === 4 ? v4 : v6)
    .split('\n')
    .filter((l) => l.startsWith('-A ') || l.startsWith('-I '))
    .map((l) => l.replace(/^-I (\S+) 1 /, '-A $1 '))
    .sort();
}

describe('weft iptables in a network namespace', () => {
  beforeAll(() => {
    assertPrerequisites();
    removeLeftovers(PREFIX);
  });
  beforeEach(() => {
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  });
  afterEach(() => {
    sh('ip', ['netns', 'del', NS], { allowFail: true });
  });

  describe.each(['nft', 'legacy'] as const)('iptables-%s', (backend) => {
    it('installs exactly what print shows, once; a second apply changes nothing; remove restores', () => {
      const flags = ['--exclude-inbound-ports', '22', '--exclude-outbound-cidrs', '169.254.169.254/32'];
      const r = weft(['apply', '--backend', backend, ...flags]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(`installed (IPv4) with iptables-${backend}`);
      const first = nat(backend);
      expect(ours(first)).toEqual(printed(flags));

      const again = weft(['apply', '--backend', backend, ...flags]);
      expect(again.stdout).toMatch('already in place, nothing changed');
      expect(nat(backend)).toBe(first);

      expect(weft(['remove']).stdout).toMatch(`removed (${backend}/ipv4)`);
      expect(nat(backend)).not.toMatch(/WEFT_/);
      expect(weft(['remove']).stdout).toMatch('nothing installed');
    });

    it('refuses rules applied with other settings, changing nothing', () => {
      expect(weft(['apply', '--backend', backend]).status).toBe(0);
      const before = nat(backend);
      const r = weft(['apply', '--backend', backend, '--outbound-capture-port', '16001']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/conflicting iptables nat rules .*chain WEFT_REDIRECT holds other rules/);
      expect(r.stderr).toMatch(/weft iptables remove/);
      expect(nat(backend)).toBe(before);
    });

    it("refuses to install next to another mesh's capture", () => {
      nsh(NS, `iptables-${backend}-restore`, ['--noflush'], { input: '*nat\n:ISTIO_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j ISTIO_OUTPUT\nCOMMIT\n' });
      const r = weft(['apply', '--backend', backend]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/chain ISTIO_OUTPUT of another mesh's traffic capture/);
      expect(nat(backend)).not.toMatch(/WEFT_/);
    });
  });

  it('finds the backend that holds the namespace\'s rules (legacy here), and IPv6 with --ipv6', () => {
    nsh(NS, 'iptables-legacy-restore', ['--noflush'], { input: '*nat\n:KUBE-SERVICES - [0:0]\n-A OUTPUT -j KUBE-SERVICES\nCOMMIT\n' });
    const r = weft(['apply', '--ipv6']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch('installed (IPv4, IPv6) with iptables-legacy');
    expect(nat('nft')).not.toMatch(/WEFT_/);
    expect(ours(nat('legacy'))).toEqual(printed(['--ipv6'], 4));
    expect(ours(nat('legacy', 6))).toEqual(printed(['--ipv6'], 6));
    expect(nat('legacy', 6)).toMatch(/-A WEFT_OUTPUT -s ::6\/128 -o lo -j RETURN/);
    expect(weft(['remove']).stdout).toMatch('removed (legacy/ipv4, legacy/ipv6)');
    expect(nat('legacy') + nat('legacy', 6)).not.toMatch(/WEFT_/);
  });

  it('rolls IPv4 back when IPv6 fails, so nothing is half-applied', () => {
    // A PATH whose ip6tables-nft-restore fails (as on a kernel without IPv6 nat).
    const bin = mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-bin-`));
    try {
      for (const p of ['iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-save']) symlinkSync(sh('which', [p]).stdout.trim(), path.join(bin, p));
      writeFileSync(path.join(bin, 'ip6tables-nft-restore'), '#!/bin/sh\necho "ip6tables-restore: line 2 failed" >&2\nexit 1\n');
      chmodSync(path.join(bin, 'ip6tables-nft-restore'), 0o755);
      const r = weft(['apply', '--ipv6'], { ...process.env, PATH: bin });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/ip6tables-nft-restore --noflush failed: ip6tables-restore: line 2 failed/);
      expect(nat('nft')).not.toMatch(/WEFT_/);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('says what is wrong without privileges, and without iptables', () => {
    const unprivileged = sh(IP, ['netns', 'exec', NS, 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', '--', NODE, CLI, 'iptables', 'apply'], { allowFail: true });
    expect(unprivileged.status).toBe(1);
    expect(unprivileged.stderr).toMatch(/CAP_NET_ADMIN/);
    const noIptables = weft(['apply'], { ...process.env, PATH: '/nonexistent' });
    expect(noIptables.status).toBe(1);
    expect(noIptables.stderr).toMatch(/no iptables found/);
    expect(nat('nft') + nat('legacy')).not.toMatch(/WEFT_/);
  });

  it('rejects bad flags as usage errors', () => {
    const r = weft(['apply', '--exclude-outbound-cidrs', '10.0.0.0/99']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--exclude-outbound-cidrs: "10.0.0.0\/99" has an invalid prefix length/);
  });
});
