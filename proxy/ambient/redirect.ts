// The in-pod redirect rules of ambient mode: generated as data (iptables-save's canonical
// spelling), compared with what a pod's nat table holds (saying exactly what differs), and
// installed, repaired or removed inside the pod's network namespace (nsenter) with one atomic
// iptables-restore per address family. On the node itself the agent keeps one chain of its own
// (WEFT_AMB_PROBES, below): the kubelet's probes to enrolled pods, and nothing else.
import { ErrorCode, WeftError } from '../../core/errors.js';
import {
  chooseBackend,
  failure,
  findBackends,
  inNetns,
  spawnAsyncRunner,
  spawnRunner,
  type AsyncRunner,
  type Backend,
  type BackendName,
  type BackendProbe,
} from '../capture/iptables-exec.js';
import { CHAINS as SIDECAR_CHAINS, parseSave, type Family, type RuleSet, type TableState } from '../capture/iptables.js';
import { PROXY_MARK } from './netns.js';

export const AMBIENT_PREFIX = 'WEFT_AMB_';
/** PREROUTING → WEFT_AMB_PREROUTING, OUTPUT → WEFT_AMB_OUTPUT. */
export const AMBIENT_CHAINS = ['WEFT_AMB_PREROUTING', 'WEFT_AMB_OUTPUT'] as const;

export interface RedirectSpec {
  /** The in-pod outbound listener: the pod's TCP to anywhere but itself goes there. */
  readonly outboundPort: number;
  /** The in-pod plaintext inbound listener: TCP to the pod goes there... */
  readonly inboundPort: number;
  /** ...except HBONE, accepted in place. */
  readonly hbonePort: number;
  /** Packets of sockets with this SO_MARK (under `markMask`) are the node proxy's: never redirected. */
  readonly mark: number;
  readonly markMask: number;
}

/**
 * Where the kubelet's probes come from, as a pod sees them. Under STRICT mTLS a pod refuses
 * plaintext, and the kubelet's probes are plaintext from the node. So, as Istio's CNI does, the
 * node SNATs the TCP its own sockets open to an enrolled pod to this link-local address, and the
 * pod lets that source past the redirect, straight to the app. What it costs: a process in the
 * node's network namespace (hostNetwork) reaches enrolled pods without the mesh, as the kubelet
 * must.
 */
export const PROBE_SOURCE: Readonly<Record<Family, string>> = Object.freeze({ 4: '169.254.7.127', 6: 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff' });

const hostBits = (family: Family): number => (family === 4 ? 32 : 128);

export const REDIRECT_DEFAULTS: RedirectSpec = Object.freeze({ outboundPort: 15001, inboundPort: 15006, hbonePort: 15008, mark: PROXY_MARK, markMask: 0xfff });

/** Validates a spec: ports in range and distinct, the mark inside its mask. */
export function redirectSpec(input: Partial<RedirectSpec> = {}): RedirectSpec {
  const s = { ...REDIRECT_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) } as RedirectSpec;
  for (const [name, p] of [['outboundPort', s.outboundPort], ['inboundPort', s.inboundPort], ['hbonePort', s.hbonePort]] as const) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new WeftError(ErrorCode.USAGE, `redirect ${name}: ${JSON.stringify(p)} is not a port number (1-65535)`);
  }
  if (new Set([s.outboundPort, s.inboundPort, s.hbonePort]).size !== 3) {
    throw new WeftError(ErrorCode.USAGE, `redirect ports must differ (outbound ${s.outboundPort}, inbound ${s.inboundPort}, HBONE ${s.hbonePort})`);
  }
  for (const [name, v] of [['mark', s.mark], ['markMask', s.markMask]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) throw new WeftError(ErrorCode.USAGE, `redirect ${name}: ${JSON.stringify(v)} is not a non-zero 32-bit value`);
  }
  if ((s.mark & s.markMask) >>> 0 !== s.mark) {
    throw new WeftError(ErrorCode.USAGE, `redirect mark 0x${s.mark.toString(16)} has bits outside its mask 0x${s.markMask.toString(16)}`);
  }
  return Object.freeze({ ...s });
}

/** `--mark` as iptables-save prints it (a full mask is left out). */
function markMatch(spec: RedirectSpec): string {
  const mark = `0x${spec.mark.toString(16)}`;
  return spec.markMask >>> 0 === 0xffffffff ? mark : `${mark}/0x${spec.markMask.toString(16)}`;
}

/**
 * The nat-table rules in a pod's namespace (Istio's in-pod redirection):
 * OUTPUT → WEFT_AMB_OUTPUT: the node proxy's marked packets and loopback return; other TCP →
 * REDIRECT to the outbound port. PREROUTING → WEFT_AMB_PREROUTING: TCP to HBONE returns
 * (accepted in place), so does the kubelet's (PROBE_SOURCE) and loopback; other TCP → REDIRECT
 * to the inbound port.
 */
export function redirectRules(spec: RedirectSpec, family: Family): RuleSet {
  return {
    family,
    table: 'nat',
    chains: [...AMBIENT_CHAINS],
    rules: [
      `-A WEFT_AMB_PREROUTING -p tcp -m tcp --dport ${spec.hbonePort} -j RETURN`,
      `-A WEFT_AMB_PREROUTING -s ${PROBE_SOURCE[family]}/${hostBits(family)} -p tcp -j RETURN`,
      '-A WEFT_AMB_PREROUTING -i lo -j RETURN',
      `-A WEFT_AMB_PREROUTING -p tcp -j REDIRECT --to-ports ${spec.inboundPort}`,
      `-A WEFT_AMB_OUTPUT -m mark --mark ${markMatch(spec)} -j RETURN`,
      '-A WEFT_AMB_OUTPUT -o lo -j RETURN',
      `-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports ${spec.outboundPort}`,
    ],
    jumps: ['-A PREROUTING -p tcp -j WEFT_AMB_PREROUTING', '-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT'],
  };
}

// ---- Comparing -------------------------------------------------------------------------------

/** Capture chains that must not share a pod with ours: a sidecar's (Weft's own or Istio's,
 *  Linkerd's) or Istio's ambient. Two redirections would send traffic round in circles. */
const FOREIGN_CAPTURE = new RegExp(`^(${SIDECAR_CHAINS.join('|')}|ISTIO_(INBOUND|OUTPUT|REDIRECT|IN_REDIRECT|PRERT)|PROXY_INIT_(OUTPUT|REDIRECT))$`);

export type RedirectCheck =
  /** Nothing of ours is installed. */
  | { readonly kind: 'absent' }
  /** Exactly the wanted rules. */
  | { readonly kind: 'applied' }
  /** Ours, but not as wanted: repairable by re-installing. */
  | { readonly kind: 'drifted'; readonly problems: readonly string[] }
  /** Another capture is installed: installing ours would fight it. */
  | { readonly kind: 'conflict'; readonly problems: readonly string[] };

function isOurs(chain: string): boolean {
  return chain.startsWith(AMBIENT_PREFIX);
}

/** Rules of other chains that jump to one of ours. */
function ourJumps(state: TableState): string[] {
  const out: string[] = [];
  for (const [chain, list] of state.rules) {
    if (isOurs(chain)) continue;
    for (const r of list) if (/ -j WEFT_AMB_\S+$/.test(r)) out.push(r);
  }
  return out;
}

/** Another mesh's or a sidecar's capture in the table (none: an empty list). */
export function foreignCapture(state: TableState): string[] {
  const problems: string[] = [];
  for (const c of state.chains) if (FOREIGN_CAPTURE.test(c)) problems.push(`chain ${c} of another traffic capture (a sidecar's, or another mesh's) is installed`);
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    for (const r of state.rules.get(chain) ?? []) if (/ -j REDIRECT\b/.test(r)) problems.push(`foreign REDIRECT rule in ${chain}: ${r}`);
  }
  return problems;
}

/** How a pod's nat table relates to `want`, saying exactly what differs. Pure. */
export function checkRedirect(state: TableState, want: RuleSet): RedirectCheck {
  const foreign = foreignCapture(state);
  if (foreign.length > 0) return { kind: 'conflict', problems: foreign };
  const ours = [...state.chains].filter(isOurs);
  const jumps = ourJumps(state);
  if (ours.length === 0 && jumps.length === 0) return { kind: 'absent' };

  const problems: string[] = [];
  for (const c of want.chains) {
    if (!state.chains.has(c)) {
      problems.push(`chain ${c} is missing`);
      continue;
    }
    const have = state.rules.get(c) ?? [];
    const expect = want.rules.filter((r) => r.startsWith(`-A ${c} `));
    if (have.length === 0) problems.push(`chain ${c} is empty (${expect.length} rules wanted)`);
    else if (have.length !== expect.length || have.some((r, i) => r !== expect[i])) {
      problems.push(`chain ${c} changed (${have.length} rules installed, ${expect.length} wanted; first difference: ${firstDifference(have, expect)})`);
    }
  }
  for (const c of ours) if (!(want.chains as readonly string[]).includes(c)) problems.push(`unexpected chain ${c}`);
  problems.push(...jumpProblems(jumps, want));
  return problems.length === 0 ? { kind: 'applied' } : { kind: 'drifted', problems };
}

/** Each wanted jump installed exactly once, and no other jump to a chain of ours. */
function jumpProblems(jumps: readonly string[], want: RuleSet): string[] {
  const problems: string[] = [];
  for (const j of want.jumps) {
    const n = jumps.filter((r) => r === j).length;
    if (n !== 1) problems.push(n === 0 ? `jump "${j}" is missing` : `jump "${j}" is installed ${n} times`);
  }
  for (const j of jumps) if (!want.jumps.includes(j)) problems.push(`unexpected jump "${j}"`);
  return problems;
}

function firstDifference(have: readonly string[], want: readonly string[]): string {
  for (let i = 0; i < Math.max(have.length, want.length); i++) {
    if (have[i] !== want[i]) return `installed "${have[i] ?? '(none)'}" vs wanted "${want[i] ?? '(none)'}"`;
  }
  return 'none';
}

/**
 * iptables-restore input (with --noflush) that replaces whatever of ours `state` holds with
 * `want` in one atomic commit: old jumps deleted, our chains declared and flushed, stray chains
 * of ours dropped, the rules written, the jumps inserted first in PREROUTING and OUTPUT.
 */
export function renderInstall(state: TableState, want: RuleSet): string {
  const lines = [`*${want.table}`, ...want.chains.map((c) => `:${c} - [0:0]`)];
  for (const j of ourJumps(state)) lines.push(j.replace(/^-A /, '-D '));
  for (const c of want.chains) lines.push(`-F ${c}`);
  const stray = [...state.chains].filter((c) => isOurs(c) && !(want.chains as readonly string[]).includes(c));
  for (const c of stray) lines.push(`-F ${c}`);
  for (const c of stray) lines.push(`-X ${c}`);
  lines.push(...want.rules);
  for (const j of want.jumps) lines.push(j.replace(/^-A (\S+) /, '-I $1 1 '));
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

/** iptables-restore input (with --noflush) removing our jumps and chains; undefined when
 *  there is nothing of ours. The sidecar's WEFT_ chains are not ours and stay. */
export function renderRemove(state: TableState): string | undefined {
  const jumps = ourJumps(state);
  const ours = [...state.chains].filter(isOurs);
  if (jumps.length === 0 && ours.length === 0) return undefined;
  const lines = ['*nat', ...jumps.map((j) => j.replace(/^-A /, '-D '))];
  for (const c of ours) lines.push(`-F ${c}`);
  for (const c of ours) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}

// ---- In a pod's namespace ---------------------------------------------------------------------

export interface Verification {
  /** The backend read (undefined: none works there). */
  readonly backend: BackendName | undefined;
  readonly kind: RedirectCheck['kind'];
  /** What differs (drifted) or conflicts, one sentence each; empty otherwise. */
  readonly problems: readonly string[];
}

export interface RedirectReport {
  readonly backend: BackendName;
  /** True when rules were written (installed or repaired); false when already in place. */
  readonly changed: boolean;
  /** What was wrong before (empty for a first install or when nothing changed). */
  readonly repaired: readonly string[];
}

/** The agent's view of the rules (injectable for tests). Every method takes the pod's netns path. */
export interface Redirector {
  /** Reads the pod's rules and compares them with the wanted ones. Changes nothing. */
  verify(nsPath: string): Promise<Verification>;
  /** Installs the rules or repairs them, atomically per family. Idempotent. Refuses (nothing
   *  changed, WEFT_CONFIG_INVALID) when another capture is installed; rolls a family back when a
   *  later one fails. */
  apply(nsPath: string): Promise<RedirectReport>;
  /** Removes our rules from every backend and family: the pod's traffic goes direct again.
   *  Idempotent. Resolves with `backend/ipvN` entries that held rules. */
  remove(nsPath: string): Promise<string[]>;
  /** The caller stopped following this namespace (gone, or replaced): drop what is remembered
   *  about it. */
  forget(nsPath: string): void;
}

export interface RedirectOptions {
  readonly spec?: Partial<RedirectSpec>;
  /** Also redirect IPv6 (ip6tables). Default false. */
  readonly ipv6?: boolean;
  readonly backend?: BackendName | 'auto';
  /** Runs a program in a pod's namespace (default: nsenter --net=<path>). */
  readonly runIn?: (nsPath: string) => AsyncRunner;
  /** Which iptables programs exist (default: found in PATH once). */
  readonly backends?: () => Backend[];
}

/** A small lock: iptables-legacy takes a host-wide lock (/run/xtables.lock), so restores from
 *  this process run one at a time rather than fail on each other. */
function serial(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (fn) => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => {});
    return next;
  };
}

/** The Redirector that runs iptables(-save/-restore) in the pod's namespace. */
export function iptablesRedirector(opts: RedirectOptions = {}): Redirector {
  const spec = redirectSpec(opts.spec);
  const families: Family[] = opts.ipv6 ? [4, 6] : [4];
  const wanted = opts.backend ?? 'auto';
  const runIn = opts.runIn ?? ((nsPath: string) => inNetns(nsPath, spawnAsyncRunner));
  let found: Backend[] | undefined;
  const backends = () => (found ??= opts.backends?.() ?? findBackends(spawnRunner));
  const exclusive = serial();
  /** The backend each pod's rules were installed with, so that verify reads one table. */
  const used = new Map<string, Backend>();

  const save = async (run: AsyncRunner, b: Backend, family: Family): Promise<string> => {
    const r = await run(b.save[family], ['-t', 'nat']);
    if (r.status !== 0) throw failure(`${b.save[family]} -t nat failed`, r);
    return r.stdout;
  };
  const restore = async (run: AsyncRunner, b: Backend, family: Family, input: string): Promise<void> => {
    const r = await exclusive(() => run(b.restore[family], ['--noflush', '--wait=5'], input));
    if (r.status !== 0) throw failure(`${b.restore[family]} --noflush failed`, r);
  };
  const probeAll = async (run: AsyncRunner): Promise<Array<BackendProbe & { table?: string }>> =>
    Promise.all(
      backends().map(async (backend) => {
        try {
          const table = await save(run, backend, 4);
          const ours = parseSave(table);
          return { backend, works: true, rules: [...ours.rules.values()].reduce((n, l) => n + l.length, 0), ours: [...ours.chains].some(isOurs), table };
        } catch (err) {
          return { backend, works: false, rules: 0, ours: false, error: err as WeftError };
        }
      }),
    );

  return {
    async verify(nsPath) {
      const run = runIn(nsPath);
      let backend = used.get(nsPath);
      if (!backend) {
        const probes = await probeAll(run);
        const withOurs = probes.find((p) => p.works && p.ours);
        if (!withOurs) {
          const working = probes.filter((p) => p.works);
          if (working.length === 0) chooseBackend(probes, 'auto'); // throws the reason
          const foreign = working.flatMap((p) => foreignCapture(parseSave(p.table ?? '')));
          return { backend: working[0]?.backend.name, kind: foreign.length > 0 ? 'conflict' : 'absent', problems: foreign };
        }
        backend = withOurs.backend;
        used.set(nsPath, backend);
      }
      const checks = await Promise.all(families.map(async (family) => ({ family, check: checkRedirect(parseSave(await save(run, backend, family)), redirectRules(spec, family)) })));
      const label = (family: Family, p: string) => (families.length > 1 ? `IPv${family}: ${p}` : p);
      const problems = checks.flatMap(({ family, check }) =>
        check.kind === 'drifted' || check.kind === 'conflict' ? check.problems.map((p) => label(family, p)) : check.kind === 'absent' ? [label(family, 'no rules installed')] : [],
      );
      const kinds = new Set(checks.map((c) => c.check.kind));
      // Some families without rules while others have them is drift, not absence.
      const kind: RedirectCheck['kind'] = kinds.has('conflict') ? 'conflict' : kinds.size === 1 ? checks[0]!.check.kind : 'drifted';
      if (kind === 'absent') used.delete(nsPath);
      return { backend: backend.name, kind, problems: kind === 'absent' ? [] : problems };
    },

    async apply(nsPath) {
      const run = runIn(nsPath);
      const probes = await probeAll(run);
      const chosen = chooseBackend(probes, wanted).backend;
      const foreign = probes.filter((p) => p.works).flatMap((p) => foreignCapture(parseSave(p.table ?? '')).map((x) => `iptables-${p.backend.name}: ${x}`));
      if (foreign.length > 0) {
        throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot redirect the pod's traffic in ${nsPath}: ${foreign.join('; ')}`, {
          hint: 'nothing was changed; a pod with a sidecar (or another mesh\'s capture) cannot be ambient: remove the sidecar or label the pod weft.dev/dataplane-mode=none',
        });
      }
      const plans = await Promise.all(
        families.map(async (family) => {
          const state = parseSave(await save(run, chosen, family));
          const want = redirectRules(spec, family);
          return { family, state, want, check: checkRedirect(state, want) };
        }),
      );
      const written: Array<{ family: Family; before: TableState }> = [];
      try {
        for (const p of plans) {
          if (p.check.kind === 'applied') continue;
          written.push({ family: p.family, before: p.state });
          await restore(run, chosen, p.family, renderInstall(p.state, p.want));
          const after = checkRedirect(parseSave(await save(run, chosen, p.family)), p.want);
          if (after.kind !== 'applied') {
            throw new WeftError(ErrorCode.INTERNAL, `rules read back after iptables-restore in ${nsPath} differ from what was written: ${after.kind === 'absent' ? 'nothing installed' : after.problems.join('; ')}`);
          }
        }
      } catch (err) {
        // Roll back what this call wrote: families that held nothing of ours before lose ours
        // again; a repair keeps the (complete) rules it wrote, since the broken ones are gone.
        for (const w of written) {
          if ([...w.before.chains].some(isOurs)) continue;
          try {
            const input = renderRemove(parseSave(await save(run, chosen, w.family)));
            if (input) await restore(run, chosen, w.family, input);
          } catch {
            // The original error is the one to report.
          }
        }
        throw err;
      }
      used.set(nsPath, chosen);
      const repaired = plans.flatMap((p) => (p.check.kind === 'drifted' ? p.check.problems.map((x) => (families.length > 1 ? `IPv${p.family}: ${x}` : x)) : []));
      return { backend: chosen.name, changed: written.length > 0, repaired };
    },

    forget(nsPath) {
      used.delete(nsPath);
    },

    async remove(nsPath) {
      const run = runIn(nsPath);
      used.delete(nsPath);
      const probes = await probeAll(run);
      const working = probes.filter((p) => p.works);
      if (working.length === 0) chooseBackend(probes, 'auto'); // throws the reason
      const removed: string[] = [];
      for (const p of working) {
        for (const family of [4, 6] as const) {
          try {
            const input = renderRemove(parseSave(family === 4 && p.table !== undefined ? p.table : await save(run, p.backend, family)));
            if (!input) continue;
            await restore(run, p.backend, family, input);
            removed.push(`${p.backend.name}/ipv${family}`);
          } catch (err) {
            // IPv6 is cleaned whenever ip6tables works there; without IPv6 redirection its
            // failure (no ip6tables, no IPv6 nat) is not ours to report.
            if (family === 4 || opts.ipv6) throw err;
          }
        }
      }
      return removed;
    },
  };
}

// ---- On the node ------------------------------------------------------------------------------

export const HOST_PROBE_CHAIN = 'WEFT_AMB_PROBES';

/**
 * The node's nat rules for the kubelet's probes (PROBE_SOURCE says why): POSTROUTING →
 * WEFT_AMB_PROBES, one SNAT per enrolled pod of `family` for TCP a local socket opened
 * (`--socket-exists`: the node's own traffic, not what it forwards), HBONE excepted (the mesh's
 * own connections are authenticated, and keep their source). Pure.
 */
export function hostProbeRules(podIps: readonly string[], spec: RedirectSpec, family: Family): RuleSet {
  const ips = [...new Set(podIps.filter((ip) => (family === 4) === !ip.includes(':')))].sort();
  return {
    family,
    table: 'nat',
    chains: [HOST_PROBE_CHAIN],
    rules: ips.map((ip) => `-A ${HOST_PROBE_CHAIN} -d ${ip}/${hostBits(family)} -p tcp -m owner --socket-exists -m tcp ! --dport ${spec.hbonePort} -j SNAT --to-source ${PROBE_SOURCE[family]}`),
    jumps: [`-A POSTROUTING -j ${HOST_PROBE_CHAIN}`],
  };
}

/** What differs between the node's table and `want` (empty: in place). Pure. */
export function checkHostProbes(state: TableState, want: RuleSet): string[] {
  const problems: string[] = [];
  const have = state.rules.get(HOST_PROBE_CHAIN) ?? [];
  if (!state.chains.has(HOST_PROBE_CHAIN)) problems.push(`chain ${HOST_PROBE_CHAIN} is missing`);
  else if (have.length !== want.rules.length || have.some((r, i) => r !== want.rules[i])) {
    problems.push(`chain ${HOST_PROBE_CHAIN} changed (${have.length} rules installed, ${want.rules.length} wanted; first difference: ${firstDifference(have, want.rules)})`);
  }
  problems.push(...jumpProblems(ourJumps(state), want));
  return problems;
}

/** The node's probe rules, kept to the enrolled pods (injectable for tests). */
export interface HostProbes {
  /** Makes the node's rules SNAT probes to exactly `podIps` (repairing whatever else changed
   *  them); resolves true when rules were written, false when they were in place. */
  sync(podIps: readonly string[]): Promise<boolean>;
}

/** HostProbes with iptables in this process's network namespace (the node's: the node proxy is
 *  a hostNetwork DaemonSet). */
export function iptablesHostProbes(opts: Omit<RedirectOptions, 'runIn'> & { readonly run?: AsyncRunner } = {}): HostProbes {
  const spec = redirectSpec(opts.spec);
  const families: Family[] = opts.ipv6 ? [4, 6] : [4];
  const run = opts.run ?? spawnAsyncRunner;
  let backend: Backend | undefined;
  const choose = async (): Promise<Backend> => {
    if (backend) return backend;
    const probes: Array<BackendProbe & { table?: string }> = await Promise.all(
      (opts.backends?.() ?? findBackends(spawnRunner)).map(async (b) => {
        const r = await run(b.save[4], ['-t', 'nat']);
        if (r.status !== 0) return { backend: b, works: false, rules: 0, ours: false, error: failure(`${b.save[4]} -t nat failed`, r) };
        const state = parseSave(r.stdout);
        return { backend: b, works: true, rules: [...state.rules.values()].reduce((n, l) => n + l.length, 0), ours: state.chains.has(HOST_PROBE_CHAIN) };
      }),
    );
    // Where our chain already is, else where the node's other rules (kube-proxy's) are.
    backend = (probes.find((p) => p.works && p.ours) ?? chooseBackend(probes, opts.backend ?? 'auto')).backend;
    return backend;
  };
  return {
    async sync(podIps) {
      const b = await choose();
      let changed = false;
      for (const family of families) {
        const saved = await run(b.save[family], ['-t', 'nat']);
        if (saved.status !== 0) throw failure(`${b.save[family]} -t nat failed`, saved);
        const state = parseSave(saved.stdout);
        const want = hostProbeRules(podIps, spec, family);
        // No pod and nothing of ours yet: the node's table is left as it is.
        if (want.rules.length === 0 && !state.chains.has(HOST_PROBE_CHAIN)) continue;
        if (checkHostProbes(state, want).length === 0) continue;
        const restored = await run(b.restore[family], ['--noflush', '--wait=5'], renderInstall(state, want));
        if (restored.status !== 0) throw failure(`${b.restore[family]} --noflush failed`, restored);
        changed = true;
      }
      return changed;
    },
  };
}
