// x-forwarded-client-cert on the inbound side, as Envoy's SANITIZE_SET: whatever the client
// sent is removed; an authenticated peer gets `By=<our id>;URI=<peer id>`.
import type { HeaderMap } from '../http/headers.js';
import { removeFields } from '../http/headers.js';
import type { FieldAdjust } from '../http2/fields.js';

export const XFCC = 'x-forwarded-client-cert';

/** Returns a copy of `headers` with XFCC removed, then set when `peer` is authenticated. */
export function setClientCertHeader(headers: HeaderMap, peer: string | undefined, own: string | undefined): HeaderMap {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== XFCC) out[k] = v;
  if (peer) out[XFCC] = xfccValue(peer, own);
  return out;
}

/** setClientCertHeader on an HTTP/2 field list (lower-case names), from index `from` on, in
 *  place; returns the value set, or undefined. */
export function setClientCertField(fields: string[], from: number, peer: string | undefined, own: string | undefined): string | undefined {
  removeFields(fields, from, XFCC);
  if (!peer) return undefined;
  const value = xfccValue(peer, own);
  fields.push(XFCC, value);
  return value;
}

function xfccValue(peer: string, own: string | undefined): string {
  return own ? `By=${own};URI=${peer}` : `URI=${peer}`;
}

// The last adjustment made: a connection's requests (and, in practice, most of a listener's)
// share one peer and our own identity, so they share one function, not a closure each.
let last: FieldAdjust | undefined;
let lastPeer: string | undefined;
let lastOwn: string | undefined;

/** The listener's XFCC adjustment for `peer` (on a HeaderMap, and on an HTTP/2 field list for
 *  the lean path's plain forwards). */
export function clientCertAdjust(peer: string | undefined, own: string | undefined): FieldAdjust {
  if (last !== undefined && peer === lastPeer && own === lastOwn) return last;
  const adjust = ((h: HeaderMap) => setClientCertHeader(h, peer, own)) as FieldAdjust;
  adjust.fields = (fields, from) => setClientCertField(fields, from, peer, own);
  last = adjust;
  lastPeer = peer;
  lastOwn = own;
  return adjust;
}
