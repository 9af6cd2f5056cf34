// Output helpers shared by the inspection commands (status, config-dump, analyze, simulate):
// plain-text tables for people, JSON for scripts, and reading JSON from a monitoring or admin
// port with an error message that says what to check.
import { ErrorCode, WeftError } from '../core/errors.js';
import type { Logger } from '../core/log.js';

export type OutputFormat = 'table' | 'json';

/** `-o` values the commands accept. */
export function outputFormat(value: string): OutputFormat {
  if (value === 'table' || value === 'json') return value;
  throw new WeftError(ErrorCode.USAGE, `-o: table or json, got "${value}"`);
}

/** Left-aligned columns separated by two spaces; the header row in capitals. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `HOST:PORT` → base URL, checked. */
export function hostPort(flag: string, value: string): string {
  if (!/^[^:\s]+:\d+$/.test(value) && !/^\[[^\]]+\]:\d+$/.test(value)) {
    throw new WeftError(ErrorCode.USAGE, `${flag}: expected HOST:PORT, got "${value}"`);
  }
  return `http://${value}`;
}

/** GET a JSON document; errors name the address and the likely cause. */
export async function fetchJson(url: string, what: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string } }).cause;
    const cause = c?.code ?? c?.message ?? (err as Error).message;
    throw new WeftError(ErrorCode.XDS_UNAVAILABLE, `cannot reach ${what} at ${new URL(url).host} (${cause})`, {
      hint: 'is it running, and is this its monitoring/admin port? (--monitor HOST:PORT, --admin HOST:PORT)',
    });
  }
  const text = await res.text();
  if (res.status !== 200) throw new WeftError(ErrorCode.USAGE, `${what} answered ${res.status}: ${text.trim()}`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new WeftError(ErrorCode.INTERNAL, `${what} at ${url} did not answer JSON`);
  }
}

/** For reading config offline: problems are reported as findings, not logged. */
export const quietLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quietLogger };
