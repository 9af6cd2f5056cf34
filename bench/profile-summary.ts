// Summarises a V8 .cpuprofile: self time by area and by function, inclusive time of Weft code.
// A .heapprofile (bench/profile.js --heap) is summarised as bytes allocated by function, and by
// function with its caller: where the garbage comes from.
// Usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top 25] [--callers NAME [--depth 2]]
//        node dist/bench/profile-summary.js FILE.heapprofile [--top 25]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { callersOf, profileMarkdown, summariseProfile, type CpuProfile } from './lib/cpuprofile.js';
import { flags, num } from './load/args.js';

const file = process.argv[2];
if (!file || file.startsWith('--')) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile|FILE.heapprofile [--top 25]\n');
  process.exit(2);
}
const f = flags(process.argv.slice(3));
if (file.endsWith('.heapprofile')) {
  process.stdout.write(heapSummary(JSON.parse(readFileSync(file, 'utf8')) as HeapProfile, num(f, 'top', 25)));
} else {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const callers = f.get('callers');
  if (callers) {
    for (const c of callersOf(profile, callers, num(f, 'depth', 1), num(f, 'top', 15))) process.stdout.write(`${(c.us / 1000).toFixed(0).padStart(7)} ms  ${c.key}\n`);
  } else {
    process.stdout.write(profileMarkdown(summariseProfile(profile, { top: num(f, 'top', 25) }), path.basename(file)));
  }
}

interface HeapNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children?: readonly HeapNode[];
}
interface HeapProfile {
  readonly head: HeapNode;
}

/** Sampled bytes by allocating function, and by function with its caller, as shares. */
function heapSummary(p: HeapProfile, top: number): string {
  const self = new Map<string, number>();
  const withCaller = new Map<string, number>();
  let total = 0;
  const key = (n: HeapNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;
  const stack: [HeapNode, HeapNode | undefined][] = [[p.head, undefined]];
  while (stack.length > 0) {
    const [n, parent] = stack.pop()!;
    total += n.selfSize;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + n.selfSize);
    const kc = parent ? `${k} ← ${key(parent)}` : k;
    withCaller.set(kc, (withCaller.get(kc) ?? 0) + n.selfSize);
    for (const c of n.children ?? []) stack.push([c, n]);
  }
  const rows = (m: Map<string, number>) =>
    [...m].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `| ${k} | ${(v / 1e6).toFixed(1)} | ${((100 * v) / total).toFixed(1)} % |`).join('\n');
  return `## Allocations (sampled): ${(total / 1e6).toFixed(1)} MB\n\n| function | MB | share |\n|---|---|---|\n${rows(self)}\n\n` +
    `### With the caller\n\n| function ← caller | MB | share |\n|---|---|---|\n${rows(withCaller)}\n`;
}
