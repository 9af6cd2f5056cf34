// x-forwarded-client-cert on the inbound side, as Envoy's SANITIZE_SET: whatever the client
// sent is removed; an authenticated peer gets `By=<our id>;URI=<peer id>`.
import type { HeaderMap } from '../http/headers.js';

export const XFCC = 'x-forwarded-client-cert';

/** Returns a copy of `headers` with XFCC removed, then set when `peer` is authenticated. */
export function setClientCertHeader(headers: HeaderMap, peer: string | undefined, own: string | undefined): HeaderMap {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== XFCC) out[k] = v;
  if (peer) out[XFCC] = own ? `By=${own};URI=${peer}` : `URI=${peer}`;
  return out;
}
