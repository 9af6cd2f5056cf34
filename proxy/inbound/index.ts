// The inbound listener's public face for the composition root and the identity engineer.
export { createInboundListener, type InboundListener, type InboundListenerOptions } from './listener.js';
export { allowAll, type AuthorizeHook, type AuthzDecision, type PeerInfo } from './authz.js';
export { selectFilterChain, routesFor } from './chain.js';
export { setClientCertHeader, XFCC } from './xfcc.js';
