// Public surface of the config model: object types, parsing, the Model and shared route semantics.
export * from './types.js';
export { parseObject, supportedKinds, type ParseResult } from './parse.js';
export { buildModel, EMPTY_MODEL, labelsMatch, type Model } from './model.js';
export { waypointNameOf } from './ambient.js';
export { portProtocol, usesHttp2, type PortProtocol } from './protocol.js';
export { SERVICE_NAME_LABEL } from './parse-core.js';
export { GATEWAY_GROUP } from './parse-gateway-common.js';
export {
  DEFAULT_ROUTE_SEMANTICS,
  describePorts,
  isCoreGroup,
  regexProblem,
  resolveBackend,
  resolveParent,
  hasExtensionRef,
  routeBackendRefs,
  routeExtensionRefs,
  routeKey,
  routeProblems,
  type BackendResolution,
  type ExtensionRefUse,
  type ParentResolution,
  type RouteProblem,
  type RouteSemanticsOptions,
} from './routes.js';
