// The reference CNI plugins invoked exactly as a container runtime does: CNI_COMMAND=ADD/DEL,
// CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH in the environment, the network config JSON
// on stdin, the result JSON on stdout — run inside the node's namespace, which is the plugin's
// "host" side.
import { nsh } from './host.js';

export interface CniResult {
  /** The pod's address (without prefix length), e.g. 10.100.1.2. */
  readonly ip: string;
  readonly raw: unknown;
}

export interface CniCall {
  /** The node's namespace: where the plugin runs (bridge, host-side veths, routes go there). */
  readonly nodeNs: string;
  /** The pod's namespace name (`/var/run/netns/<pod>`). */
  readonly podNs: string;
  readonly ifname: string;
  readonly cniPath: string;
  /** The network configuration (its `type` names the plugin). */
  readonly config: Record<string, unknown>;
}

function env(c: CniCall, command: 'ADD' | 'DEL'): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `${c.podNs}-${c.ifname}`,
    CNI_NETNS: `/var/run/netns/${c.podNs}`,
    CNI_IFNAME: c.ifname,
    CNI_PATH: c.cniPath,
  };
}

function invoke(c: CniCall, command: 'ADD' | 'DEL'): string {
  const plugin = `${c.cniPath}/${String(c.config.type)}`;
  const r = nsh(c.nodeNs, plugin, [], { input: JSON.stringify(c.config), env: env(c, command), allowFail: true });
  if (r.status !== 0) throw new Error(`CNI ${command} ${String(c.config.type)} for ${c.podNs} failed: ${r.stdout.trim()} ${r.stderr.trim()}`);
  return r.stdout;
}

/** CNI ADD; returns the pod's first IPv4 address from the result. */
export function cniAdd(c: CniCall): CniResult {
  const out = invoke(c, 'ADD');
  const raw = JSON.parse(out) as { ips?: Array<{ address: string }> };
  const ip = raw.ips?.[0]?.address.split('/')[0];
  if (!ip && c.config.type !== 'loopback') throw new Error(`CNI ADD ${String(c.config.type)} returned no IP: ${out}`);
  return { ip: ip ?? '127.0.0.1', raw };
}

/** CNI DEL (releases the IPAM lease; the runtime calls it before deleting the namespace). */
export function cniDel(c: CniCall): void {
  invoke(c, 'DEL');
}
