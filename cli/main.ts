#!/usr/bin/env node
// The `weft` command: parses flags, builds each process's config once, and hands it to that
// process's composition root. Errors reach the user as one clear line and a non-zero exit.
import v8 from 'node:v8';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CONTROL_PLANE_DEFAULTS, KUBERNETES_DEFAULTS, controlPlaneConfig } from '../control-plane/config.js';
import { ErrorCode, WeftError, errorMessage, isWeftError } from '../core/errors.js';
import { APP_PROBES_ENV, parseAppProbes } from '../core/app-probes.js';
import { createLogger } from '../core/log.js';
import { PROXY_DEFAULTS, proxyConfig } from '../proxy/config.js';

// Each command imports what it runs when it runs (`await import()` in its action): `weft proxy`
// must not load the control plane's model, the injector, yaml or the CA's node-forge code, which
// stay in its memory for as long as it lives.

/** Registers one file's commands on the program. */
type Registrar = (program: Command) => void;

/** The commands other files define, by file: imported only when named, or for help. */
const COMMAND_FILES: readonly { readonly commands: readonly string[]; readonly load: () => Promise<Registrar> }[] = [
  { commands: ['inject', 'wait-ready'], load: async () => (await import('./inject.js')).registerInject },
  { commands: ['status', 'config-dump', 'analyze', 'simulate'], load: async () => (await import('./inspect.js')).registerInspect },
  { commands: ['iptables'], load: async () => (await import('./iptables.js')).registerIptables },
  { commands: ['waypoint'], load: async () => (await import('./waypoint.js')).registerWaypoint },
];

const int = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} must be a whole number, got "${v}"`);
  return n;
};

const bool = (flag: string) => (v: string) => {
  if (v === 'true' || v === 'false') return v === 'true';
  throw new InvalidArgumentError(`${flag} must be true or false, got "${v}"`);
};

/** `--release-binary-pages`, for the long-running commands (see settleAfterStartUp). */
const releasePagesOption = () =>
  new Option('--release-binary-pages <bool>', "once ready and every minute after, drop the pages of the node binary and its libraries not used since from the process's memory, and malloc's free ones (~20-30 MiB of RSS; file pages stay in the page cache, and the ones in use come back at once)")
    .argParser(bool('--release-binary-pages'))
    .default(true);

/** The flags node was given, on its command line or in NODE_OPTIONS. */
const nodeFlags = () => [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];

/** Resolves on SIGINT / SIGTERM, so a long-running command can shut down in order. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/**
 * What a proxy or control plane does once it is up (`startedUp(ready)`, polled until ready, or for
 * two minutes at most: one with no control plane yet settles too).
 *
 * The young generation: V8 grows it when many objects survive young collections, which is what
 * start-up is (modules, Envoy's types, the config): left alone, it ends with two 16 MiB
 * semi-spaces and keeps them while idle or lightly loaded (20-30 MiB of RSS). So it keeps its
 * first size until the process is ready; from then on V8 sizes it as usual, since under heavy
 * load a small one costs CPU (held at 1 MiB semi-spaces for the whole run: 3–17 % less
 * throughput per core at saturation, for 1–6 MiB less RSS at 1000 rps, in a same-run A/B). The
 * growth factor is read at each growth, so changing it at run time is safe; a young-generation
 * size given to node (argv or NODE_OPTIONS) wins.
 *
 * Unused pages (`releasePages`, core/binary-pages.ts): from then on, the pages of the node binary
 * and its libraries the process has not used for a minute leave its page tables (start-up's
 * first), and malloc's free pages go back to the kernel.
 */
function settleAfterStartUp(releasePages: boolean): (ready: () => boolean) => void {
  const holdYoung = !nodeFlags().some((f) => /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(f));
  if (holdYoung) v8.setFlagsFromString('--semi-space-growth-factor=1');
  return (ready) => {
    const deadline = Date.now() + 120_000;
    const timer = setInterval(() => {
      if (!ready() && Date.now() < deadline) return;
      clearInterval(timer);
      if (holdYoung) v8.setFlagsFromString('--semi-space-growth-factor=2'); // V8's default
      if (releasePages) void import('../core/binary-pages.js').then((m) => m.trimUnusedPages(createLogger('memory')));
    }, 200).unref();
  };
}

/**
 * A proxy's young collections run on its main thread alone (V8's `--no-parallel-scavenge`). Its
 * young generation is small (1–2 MiB at 1000 req/s) and little of it survives (~20 KiB), so the
 * helper tasks of a parallel scavenge cost more to start and join than they save, and on the one
 * core a proxy has (pinned, or under a CPU limit) they only take turns with the main thread.
 * Measured on the mTLS pair at 1000 req/s (`--node-args trace-gc-nvp`): scavenge pauses 0.3 / 0.6
 * ms p50 / p90 instead of 0.6 / 0.9, and in two same-run A/Bs of the bench, HTTP/1.1 p99 1.5–2.4
 * ms lower (7 runs of 7) at 0.93–0.97× the vCPU; h2c and gRPC, and throughput at saturation, within
 * noise. A `--parallel-scavenge` given to node (argv or NODE_OPTIONS) wins.
 */
function scavengeOnTheMainThread(): void {
  if (nodeFlags().some((f) => /^--(no-)?parallel[-_]scavenge$/.test(f))) return;
  v8.setFlagsFromString('--no-parallel-scavenge');
}

/** `weft proxy --mode ambient`: the node proxy (loaded on use, like every mode). */
async function runNodeProxy(o: Record<string, unknown>, startedUp: (ready: () => boolean) => void): Promise<void> {
  if (typeof o.node !== 'string') throw new WeftError(ErrorCode.USAGE, '--node: the node this ambient proxy serves is required with --mode ambient');
  const { nodeProxyConfig } = await import('../proxy/ambient/config.js');
  const { startNodeProxy } = await import('../proxy/ambient/node-proxy.js');
  const xdsProtocol = o.xdsProtocol;
  if (xdsProtocol !== 'delta' && xdsProtocol !== 'sotw') throw new WeftError(ErrorCode.USAGE, `--xds-protocol: delta or sotw, got "${String(xdsProtocol)}"`);
  const proxy = await startNodeProxy(Object.freeze({
    ...nodeProxyConfig({
      xds: o.xds as string,
      node: o.node,
      tokenFile: o.tokenFile as string,
      xdsRootCert: o.xdsRootCert as string | undefined,
      bindAddress: o.bindAddress as string,
      adminPort: o.adminPort as number,
      statsPort: o.statsPort as number,
      healthPort: o.healthPort as number,
      certTtlSeconds: o.certTtl as number,
      drainSeconds: o.drainSeconds as number,
      reconcileIntervalMs: o.reconcileInterval as number,
      stateFile: o.stateFile as string | undefined,
      kubeletProbeRules: o.kubeletProbeRules as boolean,
    }),
    xdsProtocol,
  }));
  startedUp(() => proxy.ready());
  process.stdout.write(`weft-proxy-listening ${JSON.stringify(proxy.ports)}\n`);
  await Promise.race([untilSignal(), proxy.stopped()]);
  await proxy.stop();
}

/** The program with the commands defined here and those `registrars` add (see COMMAND_FILES). */
export function buildCli(registrars: readonly Registrar[] = []): Command {
  const program = new Command('weft')
    .description('Weft, a service mesh for Node.js: control plane, sidecar and ambient proxies')
    .showHelpAfterError();

  program
    .command('control-plane')
    .description('run the control plane: xDS + CA on 15010/15012, monitoring on 15014')
    .option('--config <dir>', 'directory of YAML config, watched for changes')
    .option('--kubernetes', 'read config from the Kubernetes API instead (in-cluster, or --kubeconfig)')
    .option('--kubeconfig <file>', 'kubeconfig for --kubernetes (default: the pod ServiceAccount, else $KUBECONFIG)')
    .option('--namespace <ns>', "the control plane's namespace (--kubernetes)", process.env.POD_NAMESPACE ?? KUBERNETES_DEFAULTS.namespace)
    .option('--revision <rev>', 'control-plane revision, label weft.dev/rev (--kubernetes)', KUBERNETES_DEFAULTS.revision)
    .option('--webhook-port <port>', 'sidecar-injection webhook, HTTPS (--kubernetes; -1 disables)', int('--webhook-port'), KUBERNETES_DEFAULTS.webhookPort)
    .option('--webhook-config <name>', 'MutatingWebhookConfiguration whose caBundle to keep', KUBERNETES_DEFAULTS.webhookConfigName)
    .option('--native-sidecars <mode>', 'inject native sidecars: auto (Kubernetes >= 1.29), on, off', KUBERNETES_DEFAULTS.nativeSidecars)
    .option('--proxy-image <ref>', 'the image injected pods run', KUBERNETES_DEFAULTS.proxyImage)
    .option('--cluster-domain <domain>', 'cluster DNS domain', KUBERNETES_DEFAULTS.clusterDomain)
    .option('--node-service-account <ns/name>', "the ambient node proxies' ServiceAccount: the CA lets it ask for identities of pods on its own node (--kubernetes)", KUBERNETES_DEFAULTS.nodeServiceAccount)
    .option('--ca-dir <dir>', "plugged-in CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)")
    .option('--state-dir <dir>', 'CA and bootstrap tokens', CONTROL_PLANE_DEFAULTS.stateDir)
    .option('--host <addr>', 'address to bind', CONTROL_PLANE_DEFAULTS.host)
    .option('--xds-port <port>', 'plaintext xDS + CA port', int('--xds-port'), CONTROL_PLANE_DEFAULTS.xdsPort)
    .option('--xds-tls-port <port>', 'xDS + CA over TLS (-1 disables)', int('--xds-tls-port'), CONTROL_PLANE_DEFAULTS.xdsTlsPort)
    .option('--monitor-port <port>', 'monitoring port', int('--monitor-port'), CONTROL_PLANE_DEFAULTS.monitorPort)
    .option('--trust-domain <name>', 'SPIFFE trust domain', CONTROL_PLANE_DEFAULTS.trustDomain)
    .option('--no-mtls', 'plaintext between sidecars (development only)')
    .addOption(releasePagesOption())
    .action(async (o) => {
      const startedUp = settleAfterStartUp(o.releaseBinaryPages);
      const { startControlPlane } = await import('../control-plane/main.js');
      const cfg = controlPlaneConfig({
        configDir: o.config,
        stateDir: o.stateDir,
        host: o.host,
        xdsPort: o.xdsPort,
        xdsTlsPort: o.xdsTlsPort,
        monitorPort: o.monitorPort,
        trustDomain: o.trustDomain,
        mtls: o.mtls,
        caDir: o.caDir,
        kubernetes: o.kubernetes
          ? {
              kubeconfig: o.kubeconfig,
              namespace: o.namespace,
              revision: o.revision,
              webhookPort: o.webhookPort,
              webhookConfigName: o.webhookConfig,
              nativeSidecars: o.nativeSidecars,
              proxyImage: o.proxyImage,
              clusterDomain: o.clusterDomain,
              nodeServiceAccount: o.nodeServiceAccount,
            }
          : undefined,
      });
      const cp = await startControlPlane(cfg);
      startedUp(() => true);
      await untilSignal();
      await cp.stop();
    });

  program
    .command('proxy')
    .description('run a proxy: a sidecar for one workload (default), an ambient node proxy (--mode ambient), or a waypoint (--mode waypoint)')
    .requiredOption('--xds <host:port>', 'control plane xDS address')
    .option('--mode <mode>', 'sidecar, ambient (one per node, carries every enrolled pod on it) or waypoint (L7 for Services that use it)', 'sidecar')
    .option('--workload <name.namespace>', 'sidecar and waypoint: the workload this proxy serves')
    .option('--node <name>', 'ambient: the node this proxy serves')
    .option('--reconcile-interval <ms>', "ambient: how often the node agent re-verifies every pod's rules and listeners", int('--reconcile-interval'), 5000)
    .option('--state-file <file>', 'ambient: where the node agent remembers which pods hold its rules, across restarts (default /var/run/weft/ambient-<node>.json)')
    .option('--kubelet-probe-rules <bool>', "ambient: keep the node's SNAT rule that lets the kubelet's probes reach enrolled pods under STRICT mTLS (false: on a machine that is not a Kubernetes node)", bool('--kubelet-probe-rules'), true)
    .requiredOption('--token-file <file>', "the workload's bootstrap token (ambient: the node proxy's token)")
    .option('--xds-root-cert <file>', "PEM roots to verify the control plane's TLS port (enables TLS)")
    .option('--bind-address <addr>', 'address the listeners bind to', PROXY_DEFAULTS.bindAddress)
    .option('--outbound-port <port>', 'outbound listener', int('--outbound-port'), PROXY_DEFAULTS.outboundPort)
    .option('--inbound-port <port>', 'inbound listener', int('--inbound-port'), PROXY_DEFAULTS.inboundPort)
    .option('--hbone-port <port>', 'HBONE listener (waypoint, and sidecars with --capture: peers tunnel TCP to the app there)', int('--hbone-port'), PROXY_DEFAULTS.hbonePort)
    .option('--admin-port <port>', 'admin (127.0.0.1 only)', int('--admin-port'), PROXY_DEFAULTS.adminPort)
    .option('--stats-port <port>', 'Prometheus stats', int('--stats-port'), PROXY_DEFAULTS.statsPort)
    .option('--health-port <port>', '/healthz/ready for probes', int('--health-port'), PROXY_DEFAULTS.healthPort)
    .option('--cert-ttl <seconds>', 'requested certificate lifetime', int('--cert-ttl'), PROXY_DEFAULTS.certTtlSeconds)
    .option('--outbound-policy <policy>', 'ALLOW_ANY or REGISTRY_ONLY', PROXY_DEFAULTS.outboundPolicy)
    .option('--capture', 'captured mode: the pod\'s TCP arrives through iptables (`weft iptables apply`)')
    .option('--protocol-detection-timeout <ms>', 'captured mode: wait for the first bytes on ports of unknown protocol', int('--protocol-detection-timeout'), PROXY_DEFAULTS.protocolDetectionTimeoutMs)
    .option('--drain-seconds <seconds>', 'on SIGTERM / POST /drain: how long in-flight requests get to finish', int('--drain-seconds'), PROXY_DEFAULTS.drainSeconds)
    .option('--access-log <dest>', 'JSON access log, one line per request: off, stdout or a file path', 'off')
    .option('--otlp-endpoint <url>', 'OTLP/gRPC trace collector (default $OTEL_EXPORTER_OTLP_ENDPOINT; none: tracing off)')
    .option('--trace-sampling <percent>', 'percent of requests without a sampling decision that start a trace', (v) => Number(v), PROXY_DEFAULTS.traceSamplingPercent)
    .option('--decision-header <mode>', 'local: the local app may ask x-weft-debug: 1 for a decision record; off: never', PROXY_DEFAULTS.decisionHeader)
    .option('--http1-fast-path <bool>', 'HTTP/1.1 plain forwards take the byte-level fast path (false: node:http for everything)', bool('--http1-fast-path'), PROXY_DEFAULTS.http1FastPath)
    .option('--http2-fast-path <bool>', 'HTTP/2 and gRPC plain forwards to HTTP/2 clusters take the lean stream path (false: node:http2 compat for everything)', bool('--http2-fast-path'), PROXY_DEFAULTS.http2FastPath)
    .option('--xds-protocol <protocol>', 'xDS from the control plane: delta (incremental, only what changed) or sotw (state of the world)', PROXY_DEFAULTS.xdsProtocol)
    .option('--concurrency <n>', 'worker processes sharing the listeners, one core each (sidecar and waypoint modes)', int('--concurrency'), PROXY_DEFAULTS.concurrency)
    .addOption(new Option('--app-probes <json>', "the app's probes to answer on the health port as /app-health/<container>/<kind> (set by injection)").env(APP_PROBES_ENV))
    .addOption(releasePagesOption())
    .action(async (o) => {
      scavengeOnTheMainThread();
      const startedUp = settleAfterStartUp(o.releaseBinaryPages);
      if (o.mode === 'ambient') {
        if (o.concurrency !== 1) throw new WeftError(ErrorCode.USAGE, '--concurrency: the ambient node proxy runs as one process');
        return runNodeProxy(o, startedUp);
      }
      if (o.mode !== 'sidecar' && o.mode !== 'waypoint') throw new WeftError(ErrorCode.USAGE, `--mode: one of sidecar, ambient, waypoint; got "${o.mode}"`);
      const cfg = proxyConfig({
        mode: o.mode,
        hbonePort: o.hbonePort,
        xds: o.xds,
        workload: o.workload,
        tokenFile: o.tokenFile,
        xdsRootCert: o.xdsRootCert,
        bindAddress: o.bindAddress,
        outboundPort: o.outboundPort,
        inboundPort: o.inboundPort,
        adminPort: o.adminPort,
        statsPort: o.statsPort,
        healthPort: o.healthPort,
        certTtlSeconds: o.certTtl,
        outboundPolicy: o.outboundPolicy,
        capture: o.capture === true,
        protocolDetectionTimeoutMs: o.protocolDetectionTimeout,
        drainSeconds: o.drainSeconds,
        accessLog: o.accessLog,
        otlpEndpoint: o.otlpEndpoint,
        traceSamplingPercent: o.traceSampling,
        decisionHeader: o.decisionHeader,
        http1FastPath: o.http1FastPath,
        http2FastPath: o.http2FastPath,
        xdsProtocol: o.xdsProtocol,
        concurrency: o.concurrency,
        appProbes: typeof o.appProbes === 'string' ? parseAppProbes(o.appProbes, `--app-probes (or $${APP_PROBES_ENV})`) : undefined,
      });
      // --concurrency N: this process supervises N workers (proxy/workers.ts), each running
      // this same command line as a whole proxy on the listeners they share.
      const workers = cfg.concurrency > 1 || process.env.WEFT_PROXY_WORKER !== undefined ? await import('../proxy/workers.js') : undefined;
      // A supervisor does not load the proxy itself: its workers do.
      const startProxy = async (c: typeof cfg, log = createLogger(`proxy ${c.workload}`)) => (await import('../proxy/main.js')).startProxy(c, log);
      if (workers?.isProxyWorker()) {
        const proxy = await startProxy(workers.workerConfig(cfg), createLogger(`proxy ${cfg.workload} worker ${process.env.WEFT_PROXY_WORKER}`));
        startedUp(() => proxy.ready());
        workers.serveSupervisor(proxy);
        await Promise.race([untilSignal(), proxy.stopped()]);
        return proxy.stop();
      }
      let proxy: { readonly ports: object; stop(): Promise<void>; stopped(): Promise<void> };
      if (workers) {
        proxy = await workers.startProxyWorkers(cfg, cfg.concurrency, createLogger(`proxy ${cfg.workload}`));
        startedUp(() => true);
      } else {
        const single = await startProxy(cfg);
        startedUp(() => single.ready());
        proxy = single;
      }
      // One machine-readable line with the bound ports, for `weft up` and scripts using port 0.
      process.stdout.write(`weft-proxy-listening ${JSON.stringify(proxy.ports)}\n`);
      // SIGTERM / SIGINT, or POST /drain on the admin port: drain, then exit.
      await Promise.race([untilSignal(), proxy.stopped()]);
      await proxy.stop();
    });

  program
    .command('up')
    .description('run a whole local mesh from a directory: control plane, sidecars, workloads, live view')
    .argument('<dir>', 'directory of YAML config (see examples/canary)')
    .option('--state-dir <dir>', 'CA and tokens', '.weft/state')
    .option('--no-view', 'print one status line per second instead of the live view')
    .action(async (dir: string, o) => {
      // Loaded on use: it pulls in the whole control plane, which other commands (the init
      // container's `weft iptables`) should not pay for at start-up.
      const { runUp } = await import('./up.js');
      await runUp({ configDir: dir, stateDir: o.stateDir, view: o.view !== false && process.stdout.isTTY === true });
    });

  for (const register of registrars) register(program);

  const ca = program.command('ca').description("operate Weft's certificate authority");
  ca.command('init')
    .description('create the CA in the state dir (no-op if it exists)')
    .option('--state-dir <dir>', 'state dir', CONTROL_PLANE_DEFAULTS.stateDir)
    .option('--trust-domain <name>', 'SPIFFE trust domain', CONTROL_PLANE_DEFAULTS.trustDomain)
    .action(async (o) => {
      const { caInit } = await import('./ca.js');
      process.stdout.write((await caInit({ stateDir: o.stateDir, trustDomain: o.trustDomain })) + '\n');
    });
  /** The state dir's CA, or with --kubernetes the CA Secret of the control plane in --namespace. */
  const caTarget = (o: { stateDir: string; kubernetes?: boolean; namespace: string; kubeconfig?: string }) =>
    o.kubernetes ? { kubernetes: { namespace: o.namespace, ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}) } } : { stateDir: o.stateDir };
  const caCommand = (name: string, description: string) =>
    ca
      .command(name)
      .description(description)
      .option('--state-dir <dir>', 'state dir', CONTROL_PLANE_DEFAULTS.stateDir)
      .option('--kubernetes', "the CA Secret of the control plane in a cluster, instead of the state dir's")
      .option('--namespace <ns>', 'with --kubernetes: the control plane\'s namespace', KUBERNETES_DEFAULTS.namespace)
      .option('--kubeconfig <file>', 'with --kubernetes: kubeconfig (default: in cluster, else $KUBECONFIG)');
  caCommand('show', 'show the CA certificate and the trust bundle').action(async (o) => {
    const { caShow, onCa } = await import('./ca.js');
    process.stdout.write((await onCa(caTarget(o), (stateDir) => caShow({ stateDir }))) + '\n');
  });
  caCommand('rotate-root', 'add a new root to the trust bundle and sign under it from now on (the old root stays trusted)').action(async (o) => {
    const { caRotateRoot, onCa } = await import('./ca.js');
    const where = o.kubernetes ? `--kubernetes --namespace ${o.namespace}` : undefined;
    process.stdout.write((await onCa(caTarget(o), (stateDir) => caRotateRoot({ stateDir, ...(where ? { where } : {}) }))) + '\n');
  });
  caCommand('remove-root', 'stop trusting a root (after every workload has renewed under the new one)')
    .argument('<fingerprint>', 'SHA-256 fingerprint of the root (as `weft ca show` prints it), or 8+ leading hex digits')
    .action(async (fingerprint: string, o) => {
      const { caRemoveRoot, onCa } = await import('./ca.js');
      process.stdout.write((await onCa(caTarget(o), (stateDir) => caRemoveRoot({ stateDir, fingerprint }))) + '\n');
    });

  const demo = program.command('demo').description('demo workloads used by examples/');
  demo
    .command('app')
    .description('an HTTP app that answers with its version and what it saw')
    .option('--service <name>', 'service name to report', 'reviews')
    .requiredOption('--version <v>', 'version to report (and in x-demo-version)')
    .option('--host <addr>', 'address', '127.0.0.1')
    .requiredOption('--port <port>', 'port', int('--port'))
    .action(async (o) => {
      const { startDemoApp } = await import('./demo/app.js');
      const server = await startDemoApp({ service: o.service, version: o.version, host: o.host, port: o.port });
      await untilSignal();
      server.close();
      server.closeAllConnections();
    });
  demo
    .command('client')
    .description('steady traffic through HTTP_PROXY, one stats line per second')
    .requiredOption('--target <url>', 'URL to call')
    .option('--rps <n>', 'requests per second', int('--rps'), 50)
    .option('--duration <seconds>', 'stop after (0 = until signalled)', int('--duration'), 0)
    .action(async (o) => {
      const { runDemoClient } = await import('./demo/client.js');
      const run = runDemoClient({
        target: o.target,
        rps: o.rps,
        proxy: process.env.HTTP_PROXY ?? process.env.http_proxy,
        durationSec: o.duration,
        write: (l) => process.stdout.write(l + '\n'),
      });
      await Promise.race([run.done, untilSignal()]);
      run.stop();
    });

  return program;
}

/** The command files `args` needs: the one defining the command it names; none for a command
 *  defined here; every one for help or an unknown command (so help and suggestions list all). */
async function registrarsFor(args: readonly string[]): Promise<Registrar[]> {
  const named = args.find((a) => !a.startsWith('-'));
  const help = args.some((a) => a === '-h' || a === '--help');
  const files = COMMAND_FILES.filter((f) => !help && named !== undefined && f.commands.includes(named));
  const definedHere = !help && named !== undefined && buildCli().commands.some((c) => c.name() === named || c.aliases().includes(named));
  return Promise.all((files.length > 0 ? files : definedHere ? [] : COMMAND_FILES).map((f) => f.load()));
}

async function main(): Promise<void> {
  const log = createLogger('weft');
  try {
    await buildCli(await registrarsFor(process.argv.slice(2))).parseAsync(process.argv);
    // Long-running commands return after their shutdown; let pending handles close, then go.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  } catch (err) {
    log.error(errorMessage(err), isWeftError(err) ? { code: err.code } : {});
    process.exit(isWeftError(err) && err.code === 'WEFT_USAGE' ? 2 : 1);
  }
}

void main();
