// `weft proxy` refuses bad app probes (from --app-probes or, as injection sets it, the
// WEFT_APP_PROBES env) before it starts anything, naming where they came from, the probe, the
// field and the value: a sidecar must not come up answering probes it cannot run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = process.env.WEFT_TEST_CLI ?? path.join(ROOT, 'dist/cli/main.js');
const proxy = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, 'proxy', '--xds', '127.0.0.1:1', '--workload', 'web.shop', '--token-file', '/nonexistent', ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, ...env },
  });

describe('weft proxy --app-probes', () => {
  it('refuses a probe it cannot run, from the env injection sets', () => {
    const r = proxy([], { WEFT_APP_PROBES: '{"/app-health/web/livez":{"tcpSocket":{"port":"http"}}}' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('--app-probes (or $WEFT_APP_PROBES): /app-health/web/livez.tcpSocket.port: must be a port number, got "http"');
  });

  it('refuses JSON that does not parse, from the flag', () => {
    const r = proxy(['--app-probes', '{"/app-health/web/livez":']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('--app-probes (or $WEFT_APP_PROBES): not JSON:');
  });
});
