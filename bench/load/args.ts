// Flag parsing for the benchmark's child processes: `--name value` pairs, with defaults.

export function flags(argv: readonly string[] = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out.set(a.slice(2), 'true');
    else {
      out.set(a.slice(2), next);
      i++;
    }
  }
  return out;
}

export function num(f: Map<string, string>, name: string, dflt: number): number {
  const v = f.get(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: expected a number, got "${v}"`);
  return n;
}

export function str(f: Map<string, string>, name: string, dflt?: string): string {
  const v = f.get(name) ?? dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

/** Prints the one result line the parent reads (see lib/proc.ts resultLine). */
export function emitResult(result: unknown): void {
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
}

/** Marks the measured window for the parent, which samples CPU and RSS between the two marks. */
export function mark(which: 'start' | 'end'): void {
  process.stdout.write(`BENCH_MEASURE ${which}\n`);
}

/** Prints `start` at `fromMs` and `end` at `toMs` (performance.now() times). */
export function markWindow(fromMs: number, toMs: number): void {
  setTimeout(() => mark('start'), Math.max(0, fromMs - performance.now()));
  setTimeout(() => mark('end'), Math.max(0, toMs - performance.now()));
}
