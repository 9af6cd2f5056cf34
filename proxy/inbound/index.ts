// The inbound listener's public face for the composition root and the identity engineer.
export { createInboundListener, type InboundListener, type InboundListenerOptions } from './listener.js';
export {
  allowAll, evaluateRbac, namespaceOf, rbacAuthorizer, type AuthorizeHook, type AuthzDecision, type AuthzRequest, type PeerInfo,
} from './authz.js';
export { acceptsPlaintext, plaintextRefusal, selectFilterChain, routesFor } from './chain.js';
export { createDetectingServer, TLS_HANDSHAKE } from './detect.js';
export { setClientCertHeader, XFCC } from './xfcc.js';
