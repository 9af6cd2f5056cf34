// HBONE (HTTP/2 CONNECT over mTLS, Istio ambient's tunnel): the client that sidecars, waypoints
// and the node proxy open tunnels with, and the server that node proxies and waypoints accept
// them on. See ARCHITECTURE.md "Ambient mode".
export { HboneClient, HboneRefusedError, type Dial, type HboneConnectTarget, type HboneStream } from './client.js';
export { createHboneServer, type HboneAnswer, type HboneHandler, type HboneRequest, type HboneServer, type HboneServerOptions } from './server.js';
export { HBONE_PORT, REASON_HEADER, formatAuthority, parseAuthority, type TunnelTarget } from './stream.js';
