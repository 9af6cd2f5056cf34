// Reads a V8 .cpuprofile (node --cpu-prof) and summarises where the time went: self time per
// function, self time per area (Weft module, dependency, Node internals, GC, idle), and inclusive
// time per function (each sample counted once per function on its stack).

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Entry {
  readonly key: string;
  readonly area: string;
  /** Microseconds. */
  readonly us: number;
  /** Share of all sampled time, and of the time the process was not idle. */
  readonly pct: number;
  readonly busyPct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly busyMs: number;
  readonly samples: number;
  readonly selfByFunction: Entry[];
  readonly selfByArea: Entry[];
  readonly inclusive: Entry[];
}

/** Where a function lives, in words a reader of this repo recognises. */
export function areaOf(cf: CallFrame): string {
  const name = cf.functionName;
  if (!cf.url) {
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)' || name === '(root)') return name;
    return 'V8 builtins / native';
  }
  const url = cf.url.replace(/^file:\/\//, '');
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return `dependency ${nm[1]}`;
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url.slice(5)}`;
  }
  const weft = /\/dist\/(proxy|core|api|certs|cli|control-plane)\/(?:([^/]+)\/)?/.exec(url);
  if (weft) return `weft ${weft[1]}${weft[2] && !weft[2].endsWith('.js') ? `/${weft[2]}` : ''}`;
  return url;
}

function keyOf(cf: CallFrame): string {
  const file = cf.url ? cf.url.replace(/^file:\/\/.*\/dist\//, '').replace(/^file:\/\/.*\/node_modules\//, '') : '';
  return `${cf.functionName || '(anonymous)'}${file ? ` ${file}:${cf.lineNumber + 1}` : ''}`;
}

export interface SummaryOptions {
  /** Rows per table. */
  readonly top?: number;
  /** Only samples taken in this window, in µs of CLOCK_MONOTONIC (process.hrtime.bigint() / 1000n
   *  in any process on this machine, the clock V8 stamps profiles with). */
  readonly window?: { readonly fromUs: number; readonly toUs: number };
}

export function summariseProfile(p: CpuProfile, opts: SummaryOptions = {}): ProfileSummary {
  const top = opts.top ?? 25;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, { area: string; us: number }>();
  const area = new Map<string, number>();
  const incl = new Map<string, { area: string; us: number }>();
  let total = 0;
  let idle = 0;
  let counted = 0;
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    // The delta before the next sample is the time this sample stands for.
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!);
    if (!node || dt <= 0) continue;
    if (opts.window && (at < opts.window.fromUs || at > opts.window.toUs)) continue;
    counted++;
    total += dt;
    const a = areaOf(node.callFrame);
    if (a === '(idle)') idle += dt;
    const k = keyOf(node.callFrame);
    const s = self.get(k) ?? { area: a, us: 0 };
    s.us += dt;
    self.set(k, s);
    area.set(a, (area.get(a) ?? 0) + dt);
    // Inclusive: each function once per stack.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id, guard = 0; id !== undefined && guard < 1000; id = parent.get(id), guard++) {
      const n = byId.get(id)!;
      const kk = keyOf(n.callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      const e = incl.get(kk) ?? { area: areaOf(n.callFrame), us: 0 };
      e.us += dt;
      incl.set(kk, e);
    }
  }
  const busy = total - idle;
  const entries = (m: Map<string, { area: string; us: number }>) =>
    [...m.entries()]
      .map(([key, v]) => ({ key, area: v.area, us: v.us, pct: (100 * v.us) / total, busyPct: (100 * v.us) / busy }))
      .sort((a, b) => b.us - a.us);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    samples: counted,
    selfByFunction: entries(self).filter((e) => e.area !== '(idle)').slice(0, top),
    selfByArea: [...area.entries()]
      .map(([key, us]) => ({ key, area: key, us, pct: (100 * us) / total, busyPct: key === '(idle)' ? NaN : (100 * us) / busy }))
      .sort((a, b) => b.us - a.us),
    inclusive: entries(incl)
      .filter((e) => e.area.startsWith('weft ') || e.area.startsWith('dependency ') || /^(node:(http|_http|http2|net|stream|tls|streams))/.test(e.area))
      .slice(0, top),
  };
}

export function profileMarkdown(s: ProfileSummary, title: string): string {
  const row = (e: Entry) => `| ${e.key.replace(/\|/g, '\\|')} | ${e.area} | ${(e.us / 1000).toFixed(0)} | ${e.busyPct.toFixed(1)} % |`;
  return [
    `## ${title}`,
    '',
    `${s.samples} samples, ${(s.totalMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s not idle. Percentages are of the non-idle time.`,
    '',
    '### Self time by area',
    '',
    '| area | | ms | share |',
    '|---|---|---|---|',
    ...s.selfByArea.map((e) => `| ${e.key} | | ${(e.us / 1000).toFixed(0)} | ${Number.isFinite(e.busyPct) ? `${e.busyPct.toFixed(1)} %` : '(idle)'} |`),
    '',
    '### Top functions by self time',
    '',
    '| function | area | ms | share |',
    '|---|---|---|---|',
    ...s.selfByFunction.map(row),
    '',
    '### Inclusive time (Weft code, dependencies, Node HTTP/stream internals)',
    '',
    '| function | area | ms | share |',
    '|---|---|---|---|',
    ...s.inclusive.map(row),
    '',
  ].join('\n');
}

/** Who calls `fn` (functions whose name contains it), weighted by the time spent in it below them. */
export function callersOf(p: CpuProfile, fn: string, depth = 1, top = 15): { key: string; us: number }[] {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) byId.set(n.id, n);
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const out = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    let id: number | undefined = p.samples[i];
    // Find the innermost frame matching `fn` on this stack, then its callers.
    for (let guard = 0; id !== undefined && guard < 1000; id = parent.get(id), guard++) {
      if (byId.get(id)!.callFrame.functionName.includes(fn)) break;
    }
    if (id === undefined) continue;
    const chain: string[] = [];
    for (let up = parent.get(id), d = 0; up !== undefined && d < depth; up = parent.get(up), d++) chain.push(keyOf(byId.get(up)!.callFrame));
    const k = chain.join(' ← ') || '(top)';
    out.set(k, (out.get(k) ?? 0) + dt);
  }
  return [...out.entries()].map(([key, us]) => ({ key, us })).sort((a, b) => b.us - a.us).slice(0, top);
}
