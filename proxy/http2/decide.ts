// What both listeners ask before an HTTP/2 stream takes the lean path: is the plan a plain
// forward (no mirror, no retry: nothing needs the body twice) to a cluster reached over HTTP/2?
// When it is not, node:http2's compat objects and handle.ts serve the stream (through the
// bridge), planning it again with the random draws the first plan made (proxy/http1/decide.ts's
// handover), which are kept on the stream: an HTTP/2 connection carries many requests at once,
// so not on the socket.
import type { Balancers, ClusterChoice } from '../balance/registry.js';
import type { DownstreamRequest } from '../http/facts.js';
import type { Plan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';

/** The cluster of a plan the lean HTTP/2 path can carry out, or undefined (compat's path will). */
export function leanChoice(plan: Plan, config: ProxyConfig, balancers: Balancers): ClusterChoice | undefined {
  if (plan.kind !== 'forward' || plan.mirrors.length > 0 || plan.retry !== undefined) return undefined;
  const choice = balancers.forCluster(config, plan.cluster);
  return choice !== undefined && choice.cluster.protocol === 'http2' ? choice : undefined;
}

const HOLDER = Symbol('weft.http2.handoverHolder');
type Held = { [HOLDER]?: object };

/** The compat stream that carries a bridged request (bridge.ts) finds the handover kept on the
 *  client's stream through this. */
export function attachHolder(stream: object, holder: object): void {
  (stream as Held)[HOLDER] = holder;
}

/** Where a decision about `req` was stashed for node's path: on the client's HTTP/2 stream (a
 *  bridged one's holder), or (HTTP/1.1, one request at a time) its socket. */
export function handoverKey(req: DownstreamRequest): unknown {
  if (!('stream' in req)) return req.socket;
  return (req.stream as Held)[HOLDER] ?? req.stream;
}
