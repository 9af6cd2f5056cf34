// Re-renders the Markdown report from a results JSON written by run.ts (e.g. after changing how
// the tables look), to stdout. Usage: node dist/bench/report.js bench/results/<timestamp>.json
import { readFileSync } from 'node:fs';
import { markdown, type BenchResults } from './lib/report.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node dist/bench/report.js bench/results/<timestamp>.json\n');
  process.exit(2);
}
// run.ts writes non-finite numbers as strings; turn them back into numbers.
const results = JSON.parse(readFileSync(file, 'utf8'), (_k, v: unknown) =>
  v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v === 'NaN' ? NaN : v,
) as BenchResults;
process.stdout.write(markdown(results));
