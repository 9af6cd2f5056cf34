// The inspection commands, registered on the `weft` program: status, config-dump (from the
// control plane's monitoring port or a proxy's admin port), analyze (a config directory, for
// CI) and simulate (one request through the proxy's own planner, offline).
import type { Command } from 'commander';
import { analyzeDir, formatFindings } from './analyze.js';
import { runConfigDump } from './config-dump.js';
import { outputFormat } from './output.js';
import { runSimulate } from './simulate.js';
import { runStatus } from './status.js';

/** Default control-plane monitoring address. */
export const DEFAULT_MONITOR = '127.0.0.1:15014';

const print = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

export function registerInspect(program: Command): void {
  program
    .command('status')
    .description('sync state of every proxy, per xDS type: SYNCED, STALE, NOT SENT or NACKED (like istioctl proxy-status)')
    .option('--monitor <host:port>', "the control plane's monitoring address", DEFAULT_MONITOR)
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (o) => {
      print(await runStatus({ monitor: o.monitor, output: outputFormat(o.output) }));
    });

  program
    .command('config-dump')
    .description("the config of one proxy: as the control plane sends it, or (--admin) as the proxy holds it")
    .argument('<proxy>', 'NAME.NAMESPACE, as `weft status` lists it')
    .option('--monitor <host:port>', "the control plane's monitoring address", DEFAULT_MONITOR)
    .option('--admin <host:port>', "read the proxy's own admin port instead (127.0.0.1:15000 on its host)")
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (proxy: string, o) => {
      print(await runConfigDump({ proxy, monitor: o.monitor, admin: o.admin, output: outputFormat(o.output) }));
    });

  program
    .command('analyze')
    .description('check a config directory: invalid files, dangling references, missing ReferenceGrants, zero weights, shadowed and overlapping rules; exits 1 on errors')
    .argument('[dir]', 'directory of YAML config', '.')
    .option('--strict', 'exit 1 on warnings too')
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (dir: string, o) => {
      const { text, exitCode } = formatFindings(await analyzeDir(dir), outputFormat(o.output), o.strict === true);
      print(text);
      process.exitCode = exitCode;
    });

  program
    .command('simulate')
    .description("what the mesh would do with one request from a workload, offline: rule, backend, filters, policy verdict")
    .argument('<request>', `'METHOD http://host/path [-H name:value ...]' (quoted as one argument)`)
    .requiredOption('--from <workload>', 'the calling WorkloadEntry, NAME or NAME.NAMESPACE')
    .option('--config <dir>', 'directory of YAML config', '.')
    .option('--trust-domain <name>', 'SPIFFE trust domain', 'cluster.local')
    .option('--seed <n>', 'seed for the weighted backend choice (default: random, as the proxy)', (v) => Number(v))
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (request: string, o) => {
      print(await runSimulate({ config: o.config, from: o.from, request, output: outputFormat(o.output), seed: o.seed, trustDomain: o.trustDomain }));
    });
}
