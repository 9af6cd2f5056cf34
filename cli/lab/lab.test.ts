// The lab's refusals that need no root: not root, and a missing tool, each named with the fix.
// Building real labs (root): test/netns/up-ambient.test.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { assertLabPrerequisites, buildLab } from './lab.js';

describe('lab prerequisites', () => {
  const path = process.env.PATH;
  afterEach(() => {
    vi.restoreAllMocks();
    process.env.PATH = path;
  });

  it('refuses without root, saying why root is needed', async () => {
    vi.spyOn(process as { getuid(): number }, 'getuid').mockReturnValue(1000);
    expect(() => assertLabPrerequisites()).toThrow(/needs root: it creates network namespaces, veth pairs and a bridge/);
    const err = await buildLab({ prefix: 'wlabunit', podCidr: '10.251.0.0/24' }).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.PERMISSION_DENIED)).toBe(true);
  });

  it('names the tools it cannot find', () => {
    vi.spyOn(process as { getuid(): number }, 'getuid').mockReturnValue(0);
    process.env.PATH = '/nonexistent';
    expect(() => assertLabPrerequisites(['wrk'])).toThrow(/needs ip, iptables, nsenter, wrk, not found on PATH/);
  });
});
