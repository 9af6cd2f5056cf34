// Summarises a V8 .cpuprofile: self time by area and by function, inclusive time of Weft code.
// Usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top 25] [--callers NAME [--depth 2]]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { callersOf, profileMarkdown, summariseProfile, type CpuProfile } from './lib/cpuprofile.js';
import { flags, num } from './load/args.js';

const file = process.argv[2];
if (!file || file.startsWith('--')) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top 25]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
const f = flags(process.argv.slice(3));
const callers = f.get('callers');
if (callers) {
  for (const c of callersOf(profile, callers, num(f, 'depth', 1), num(f, 'top', 15))) process.stdout.write(`${(c.us / 1000).toFixed(0).padStart(7)} ms  ${c.key}\n`);
} else {
  process.stdout.write(profileMarkdown(summariseProfile(profile, { top: num(f, 'top', 25) }), path.basename(file)));
}
