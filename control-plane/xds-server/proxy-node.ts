// Who a new ADS stream is: its node id and metadata (`MODE`, `NODE_NAME`) checked against what
// the caller's credential proves, then the ProxyNode the translator serves. A sidecar or a
// waypoint is `name.namespace` of the workload its token belongs to; a node proxy is
// `ambient~<node>` of the node its token belongs to, and nothing else.
import type { Node } from '../../api/services.js';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { CallerIdentity } from '../ca/authenticator.js';
import type { ProxyNode } from '../translate/index.js';
import { nodeMetadata, type ProxyInfo } from './server.js';

export const NODE_PROXY_ID_PREFIX = 'ambient~';
const MODES = ['sidecar', 'waypoint', 'ambient'] as const;

function refuse(message: string, hint?: string): never {
  throw new WeftError(ErrorCode.AUTH_FAILED, message, hint ? { hint } : {});
}

/** Checks the stream's node against the caller; throws WeftError(AUTH_FAILED) saying what does not match. */
export function identifyProxy(node: Node, caller: CallerIdentity): ProxyInfo {
  const metadata = nodeMetadata(node);
  const mode = metadata.MODE ?? 'sidecar';
  if (!(MODES as readonly unknown[]).includes(mode)) {
    refuse(`node metadata MODE ${JSON.stringify(mode)} is not one Weft serves (sidecar, waypoint or ambient)`);
  }
  const id = node.id ?? '';
  if (mode === 'ambient') {
    if (!caller.nodeProxy || caller.node === undefined) {
      const who = caller.workload ? `workload ${caller.workload}` : `ServiceAccount ${caller.namespace}/${caller.serviceAccount}`;
      refuse(`MODE "ambient" is for node proxies, and the token belongs to ${who}`, 'a node proxy presents its node token (local mode: <state-dir>/tokens/nodes/<node>.token)');
    }
    const want = `${NODE_PROXY_ID_PREFIX}${caller.node}`;
    if (id !== want) refuse(`node id "${id}" does not match the node its token belongs to (want "${want}")`);
    if (metadata.NODE_NAME !== undefined && metadata.NODE_NAME !== caller.node) {
      refuse(`node metadata NODE_NAME ${JSON.stringify(metadata.NODE_NAME)} does not match the node its token belongs to ("${caller.node}")`);
    }
    return { id, workload: '', namespace: '', metadata, mode: 'ambient', node: caller.node };
  }
  if (caller.nodeProxy) {
    refuse(`a node proxy's token (node ${caller.node ?? '?'}) opens only a node proxy's stream: MODE "ambient", node id "${NODE_PROXY_ID_PREFIX}${caller.node ?? '<node>'}"`);
  }
  const workload = caller.workload ?? '';
  if (!id || id !== workload) refuse(`node id "${id}" does not match the workload its token belongs to ("${workload}")`);
  return { id, workload, namespace: caller.namespace, metadata, mode: mode as 'sidecar' | 'waypoint' };
}

/** What the translator serves an identified proxy. */
export function proxyNodeOf(info: ProxyInfo): ProxyNode {
  if (info.mode === 'ambient') return { id: info.id, workload: '', namespace: '', mode: 'ambient', ...(info.node ? { nodeName: info.node } : {}) };
  const [name = ''] = info.workload.split('.');
  return { id: info.id, workload: name, namespace: info.namespace, mode: info.mode ?? 'sidecar' };
}
