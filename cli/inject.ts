// `weft inject -f FILE`: sidecar injection without a cluster, on Deployments, StatefulSets,
// DaemonSets, Jobs, CronJobs and Pods (multi-document YAML in, YAML out), through the same code
// the admission webhook runs. Also `weft wait-ready`, the injected proxy's postStart hook.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { injectManifests } from '../control-plane/injector/manifests.js';
import { INJECTOR_DEFAULTS, injectorSettings, type InjectorSettings } from '../control-plane/injector/settings.js';
import { delay } from '../core/backoff.js';
import { ErrorCode, WeftError } from '../core/errors.js';

export interface InjectOptions {
  readonly filename: string;
  readonly output?: string;
  readonly settings: Partial<InjectorSettings>;
  /** Where skip notes go (stderr). */
  readonly note?: (line: string) => void;
}

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`);
  }
}

/** Runs the injection; returns the YAML written (to --output, or for stdout). */
export function runInject(opts: InjectOptions): string {
  const settings = injectorSettings(opts.settings);
  const { output, results } = injectManifests(readInput(opts.filename), settings);
  for (const r of results) {
    if (r.outcome === 'skipped') opts.note?.(`${r.object}: not injected: ${r.detail ?? ''}`);
  }
  if (opts.output) writeFileSync(opts.output, output);
  return output;
}

/** Polls `url` until it answers 200 (the proxy is ready), or fails after `timeoutSeconds`. */
export async function waitReady(url: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${(await res.text()).trim().slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await delay(500);
  }
  throw new WeftError(ErrorCode.XDS_UNAVAILABLE, `${url} did not become ready within ${timeoutSeconds} s (${last})`, {
    hint: 'check the weft-proxy container log: it may not reach the control plane, or its token may be refused',
  });
}

export function registerInject(program: Command): void {
  program
    .command('inject')
    .description('add the Weft sidecar to the workloads in a YAML file (what the admission webhook does), print the result')
    .requiredOption('-f, --filename <file>', 'YAML with Pods, Deployments, StatefulSets, DaemonSets, Jobs, CronJobs ("-" for stdin)')
    .option('-o, --output <file>', 'write here instead of stdout')
    .option('--image <ref>', 'the weft image', INJECTOR_DEFAULTS.image)
    .option('--image-pull-policy <policy>', 'Always, IfNotPresent or Never', INJECTOR_DEFAULTS.imagePullPolicy)
    .option('--revision <rev>', 'control-plane revision (label weft.dev/rev)', INJECTOR_DEFAULTS.revision)
    .option('--control-plane-namespace <ns>', "the control plane's namespace", INJECTOR_DEFAULTS.controlPlaneNamespace)
    .option('--xds-address <host:port>', 'control plane TLS xDS address (default: its Service in that namespace, port 15012)')
    .option('--no-native-sidecars', 'run the proxy as a regular container (clusters before Kubernetes 1.29)')
    .option('--proxy-cpu <quantity>', 'proxy CPU request', INJECTOR_DEFAULTS.proxyCpu)
    .option('--proxy-memory <quantity>', 'proxy memory request and limit', INJECTOR_DEFAULTS.proxyMemory)
    .option('--log-level <level>', 'proxy log level', INJECTOR_DEFAULTS.logLevel)
    .action((o) => {
      const output = runInject({
        filename: o.filename,
        output: o.output,
        settings: {
          image: o.image,
          imagePullPolicy: o.imagePullPolicy,
          revision: o.revision,
          controlPlaneNamespace: o.controlPlaneNamespace,
          xdsAddress: o.xdsAddress,
          nativeSidecars: o.nativeSidecars !== false,
          proxyCpu: o.proxyCpu,
          proxyMemory: o.proxyMemory,
          logLevel: o.logLevel,
        },
        note: (line) => process.stderr.write(`${line}\n`),
      });
      if (!o.output) process.stdout.write(output);
    });

  program
    .command('wait-ready')
    .description("wait until the proxy is ready (the injected proxy's postStart hook, so apps start after it)")
    .option('--url <url>', 'readiness URL', 'http://127.0.0.1:15021/healthz/ready')
    .option('--timeout-seconds <n>', 'give up after', (v) => Number(v), 120)
    .action(async (o) => {
      if (!(o.timeoutSeconds > 0)) throw new WeftError(ErrorCode.USAGE, `--timeout-seconds: must be a positive number, got ${o.timeoutSeconds}`);
      await waitReady(o.url, o.timeoutSeconds);
    });
}
