// What both listeners ask before a request takes the fast path: is the plan a plain forward (no
// mirror, no retry: nothing needs the body twice) to a cluster reached over HTTP/1.1 by the
// shared pools? And when it is not, node:http's path plans the request again: the random draws
// the first plan made are replayed to it, so a seeded or weighted choice comes out the same.
import type { Endpoint } from '../../api/domain.js';
import { endpointsOf, type Balancers, type ClusterChoice } from '../balance/registry.js';
import type { AuthzDecision } from '../inbound/authz.js';
import type { Plan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';

const tunnelled = new WeakMap<readonly Endpoint[], boolean>();

/** Endpoints reached some other way than a plain or mTLS connection (HBONE tunnels). */
function anyTunnel(config: ProxyConfig, choice: ClusterChoice): boolean {
  const endpoints = endpointsOf(config, choice.cluster);
  let t = tunnelled.get(endpoints);
  if (t === undefined) {
    t = endpoints.some((e) => (e as { tunnel?: unknown }).tunnel !== undefined);
    tunnelled.set(endpoints, t);
  }
  return t;
}

/** The cluster of a plan the fast path can carry out, or undefined (node:http's path will). */
export function fastChoice(plan: Plan, config: ProxyConfig, balancers: Balancers): ClusterChoice | undefined {
  if (plan.kind !== 'forward' || plan.mirrors.length > 0 || plan.retry !== undefined) return undefined;
  const choice = balancers.forCluster(config, plan.cluster);
  if (!choice || choice.cluster.protocol === 'http2' || anyTunnel(config, choice)) return undefined;
  return choice;
}

const HANDOVER = Symbol('weft.http1.handover');

/** What the fast path decided about a request it then handed to node:http's path. */
export interface Handover {
  /** The random draws its plan made. */
  readonly draws: readonly number[];
  /** Inbound: the authorization verdict (asked once per request, logged once). */
  readonly verdict?: AuthzDecision;
}
type Tagged = { [HANDOVER]?: Handover };

/**
 * A random source that remembers what it returned since `start`. One per listener: a decision
 * is synchronous, so no two overlap (and no closure or array is made per request).
 */
export class DrawRecorder {
  private source: () => number = Math.random;
  private readonly taken: number[] = [];
  private readonly next = (): number => {
    const v = this.source();
    this.taken.push(v);
    return v;
  };

  /** Starts recording draws from `source`; returns the recording source. */
  start(source: () => number): () => number {
    this.source = source;
    this.taken.length = 0;
    return this.next;
  }

  /** The draws since `start` (valid until the next start). */
  get draws(): readonly number[] {
    return this.taken;
  }
}

/** Keeps what was decided about a request the fast path does not carry out, for node:http's
 *  path, which gets that request next on this socket. */
export function stashHandover(socket: object, h: Handover): void {
  if (h.draws.length > 0 || h.verdict) (socket as Tagged)[HANDOVER] = { draws: [...h.draws], verdict: h.verdict };
}

/**
 * What node:http's path should use for the next request on `socket`: the stashed draws first,
 * then `random`; the stashed verdict for the first authorization. Undefined when nothing is
 * stashed (the common case: the listener's own context).
 */
export function takeHandover(socket: unknown, random: () => number): { random: () => number; verdict: AuthzDecision | undefined } | undefined {
  const tagged = socket as Tagged | null | undefined;
  const h = tagged?.[HANDOVER];
  if (!h) return undefined;
  tagged![HANDOVER] = undefined;
  const draws = [...h.draws];
  return { random: () => (draws.length > 0 ? draws.shift()! : random()), verdict: h.verdict };
}
