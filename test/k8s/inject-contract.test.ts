// The injected containers' command lines are ones the `weft` CLI accepts: weft-init's flags are
// parsed by the real `weft iptables` command (its `print` twin, which changes nothing), and every
// flag the weft-proxy container passes is an option of `weft proxy`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerIptables } from '../../cli/iptables.js';
import { readOverrides } from '../../control-plane/injector/overrides.js';
import { injectorSettings } from '../../control-plane/injector/settings.js';
import { captureArgs, proxyContainer } from '../../control-plane/injector/template.js';

afterEach(() => vi.restoreAllMocks());

describe('injected command lines', () => {
  it('weft-init: `weft iptables` parses its flags, with and without annotation overrides', async () => {
    const { overrides } = readOverrides({
      'weft.dev/exclude-inbound-ports': '9090',
      'weft.dev/exclude-outbound-ports': '5432,6379',
      'weft.dev/exclude-outbound-cidrs': '169.254.169.254/32',
    });
    for (const o of [readOverrides({}).overrides, overrides]) {
      const args = captureArgs(o);
      expect(args.slice(0, 2)).toEqual(['iptables', 'apply']);
      const program = new Command('weft').exitOverride();
      registerIptables(program);
      let printed = '';
      vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
        printed += String(chunk);
        return true;
      });
      await program.parseAsync(['iptables', 'print', ...args.slice(2)], { from: 'user' });
      vi.restoreAllMocks();
      expect(printed).toContain('15001');
      expect(printed).toContain('15006');
      if (o === overrides) {
        expect(printed).toContain('169.254.169.254/32');
        expect(printed).toContain('5432');
      }
    }
  });

  it('weft-proxy: every flag is an option of `weft proxy`', () => {
    const cli = readFileSync(path.resolve(import.meta.dirname, '../../cli/main.ts'), 'utf8');
    const args = proxyContainer(injectorSettings(), readOverrides({}).overrides, true).args as string[];
    expect(args[0]).toBe('proxy');
    for (const flag of args.filter((a) => a.startsWith('--'))) expect(cli, `cli/main.ts declares ${flag}`).toContain(`'${flag}`);
  });
});
