// Parsing of object metadata and the core Kubernetes kinds Weft reads: v1 Service, v1 Namespace
// and discovery.k8s.io/v1 EndpointSlice, with the API server's defaults and validation.
import { isIP } from 'node:net';
import { at, DNS_LABEL, DNS_SUBDOMAIN, IANA_SVC_NAME, LABEL_KEY, Reader, show, type Obj } from './read.js';
import type { EndpointSlice, EndpointSliceEndpoint, EndpointSlicePort, Namespace, ObjectMeta, Service, ServicePort } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export interface MetaOpts {
  readonly namespaced: boolean;
  /** Names of this kind are DNS labels (Services, Namespaces) rather than DNS subdomains. */
  readonly nameIsLabel?: 'dns1035' | 'dns1123';
}

export function parseMetadata(r: Reader, value: unknown, opts: MetaOpts): ObjectMeta | undefined {
  const m = r.object('metadata', value, { required: true });
  if (!m) return undefined;
  const nameRule =
    opts.nameIsLabel === 'dns1035'
      ? { pattern: DNS_1035_LABEL, patternHint: 'a DNS label starting with a letter (lower-case letters, digits, "-")', maxLength: 63 }
      : opts.nameIsLabel === 'dns1123'
        ? { pattern: DNS_LABEL, patternHint: 'a DNS label (lower-case letters, digits, "-")', maxLength: 63 }
        : { pattern: DNS_SUBDOMAIN, patternHint: 'a DNS subdomain (lower-case letters, digits, "-", ".")', maxLength: 253 };
  const name = r.string('metadata.name', m.name, { required: true, ...nameRule });
  let namespace = '';
  if (opts.namespaced) {
    namespace =
      r.string('metadata.namespace', m.namespace, {
        pattern: DNS_LABEL,
        patternHint: 'a DNS label (lower-case letters, digits, "-")',
        maxLength: 63,
      }) ?? 'default';
  }
  const labels = r.stringMap('metadata.labels', m.labels, { keyPattern: LABEL_KEY, keyHint: 'a label key such as "app" or "example.com/tier"' });
  const annotations = r.stringMap('metadata.annotations', m.annotations);
  const creationTimestamp = r.string('metadata.creationTimestamp', m.creationTimestamp);
  if (creationTimestamp !== undefined && Number.isNaN(Date.parse(creationTimestamp))) {
    r.fail('metadata.creationTimestamp', `must be an RFC 3339 time such as "2024-01-02T15:04:05Z", got ${show(creationTimestamp)}`);
  }
  const generation = r.int('metadata.generation', m.generation, { min: 0 });
  if (name === undefined) return undefined;
  return {
    name,
    namespace,
    labels,
    annotations,
    ...(creationTimestamp === undefined ? {} : { creationTimestamp }),
    ...(generation === undefined ? {} : { generation }),
  };
}

export function parseService(r: Reader, doc: Obj, metadata: ObjectMeta): Service | undefined {
  const spec = r.object('spec', doc.spec, { required: true });
  if (!spec) return undefined;
  const type = (r.string('spec.type', spec.type, { enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] }) ??
    'ClusterIP') as Service['spec']['type'];
  const selector = spec.selector === undefined ? undefined : r.stringMap('spec.selector', spec.selector, { keyPattern: LABEL_KEY });
  const ports = r.list('spec.ports', spec.ports, (f, v) => parseServicePort(r, f, v), {
    required: type !== 'ExternalName',
    minItems: type === 'ExternalName' ? 0 : 1,
  });
  // Names are optional only for a single port, and must be unique (the API server's rules).
  if (ports.length > 1) {
    ports.forEach((p, i) => {
      if (p.name === undefined) r.fail(`spec.ports[${i}].name`, 'is required when a Service has more than one port');
    });
  }
  const seenNames = new Set<string>();
  const seenPorts = new Set<string>();
  ports.forEach((p, i) => {
    if (p.name !== undefined) {
      if (seenNames.has(p.name)) r.fail(`spec.ports[${i}].name`, `duplicate port name ${show(p.name)}`);
      seenNames.add(p.name);
    }
    const key = `${p.port}/${p.protocol}`;
    if (seenPorts.has(key)) r.fail(`spec.ports[${i}].port`, `duplicate port ${p.port}/${p.protocol}`);
    seenPorts.add(key);
  });
  const clusterIP = r.string('spec.clusterIP', spec.clusterIP);
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata,
    spec: {
      type,
      ...(selector && Object.keys(selector).length > 0 ? { selector } : {}),
      ports,
      ...(clusterIP === undefined ? {} : { clusterIP }),
    },
  };
}

function parseServicePort(r: Reader, field: string, value: unknown): ServicePort | undefined {
  const p = r.object(field, value, { required: true });
  if (!p) return undefined;
  const name = r.string(at(field, 'name'), p.name, {
    pattern: DNS_LABEL,
    patternHint: 'a DNS label (lower-case letters, digits, "-")',
    maxLength: 63,
  });
  const port = r.int(at(field, 'port'), p.port, { required: true, min: 1, max: 65535 });
  const protocol = (r.string(at(field, 'protocol'), p.protocol, { enum: ['TCP', 'UDP', 'SCTP'] }) ?? 'TCP') as ServicePort['protocol'];
  const appProtocol = r.string(at(field, 'appProtocol'), p.appProtocol, { minLength: 1 });
  const targetPort = parseIntOrName(r, at(field, 'targetPort'), p.targetPort);
  if (port === undefined) return undefined;
  return {
    ...(name === undefined ? {} : { name }),
    port,
    // The API server's default: the target port is the Service port itself.
    targetPort: targetPort ?? port,
    protocol,
    ...(appProtocol === undefined ? {} : { appProtocol }),
  };
}

function parseIntOrName(r: Reader, field: string, v: unknown): number | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return r.int(field, v, { min: 1, max: 65535 });
  if (typeof v === 'string') {
    return r.string(field, v, { pattern: IANA_SVC_NAME, patternHint: 'a port number or a port name (up to 15 lower-case letters, digits, "-")' });
  }
  return r.fail(field, `must be a port number or a port name, got ${show(v)}`);
}

export function parseNamespace(_r: Reader, _doc: Obj, metadata: ObjectMeta): Namespace {
  return { kind: 'Namespace', apiVersion: 'v1', metadata };
}

export function parseEndpointSlice(r: Reader, doc: Obj, metadata: ObjectMeta): EndpointSlice | undefined {
  const addressType = r.string('addressType', doc.addressType, { required: true, enum: ['IPv4', 'IPv6', 'FQDN'] }) as
    | EndpointSlice['addressType']
    | undefined;
  const endpoints = r.list('endpoints', doc.endpoints, (f, v) => parseSliceEndpoint(r, f, v, addressType, metadata.namespace), {
    required: true,
  });
  const ports = r.list('ports', doc.ports, (f, v) => parseSlicePort(r, f, v));
  const serviceName = metadata.labels[SERVICE_NAME_LABEL];
  if (serviceName === undefined) {
    // Kubernetes accepts such a slice, but nothing would ever use it: say so instead.
    r.fail(`metadata.labels["${SERVICE_NAME_LABEL}"]`, 'is required: it names the Service this slice belongs to');
  }
  if (addressType === undefined || serviceName === undefined) return undefined;
  return { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata, addressType, endpoints, ports, serviceName };
}

function parseSliceEndpoint(
  r: Reader,
  field: string,
  value: unknown,
  addressType: string | undefined,
  namespace: string,
): EndpointSliceEndpoint | undefined {
  const e = r.object(field, value, { required: true });
  if (!e) return undefined;
  const addresses = r.stringList(at(field, 'addresses'), e.addresses, { required: true, minItems: 1 });
  addresses.forEach((a, i) => {
    const family = isIP(a);
    const ok = addressType === 'IPv4' ? family === 4 : addressType === 'IPv6' ? family === 6 : DNS_SUBDOMAIN.test(a);
    if (addressType && !ok) r.fail(`${at(field, 'addresses')}[${i}]`, `must be an ${addressType} address, got ${show(a)}`);
  });
  const conditions = r.object(at(field, 'conditions'), e.conditions);
  const ready = r.bool(at(field, 'conditions.ready'), conditions?.ready);
  const ref = r.object(at(field, 'targetRef'), e.targetRef);
  let targetRef: EndpointSliceEndpoint['targetRef'];
  if (ref) {
    const kind = r.string(at(field, 'targetRef.kind'), ref.kind, { required: true });
    const name = r.string(at(field, 'targetRef.name'), ref.name, { required: true });
    const ns = r.string(at(field, 'targetRef.namespace'), ref.namespace) ?? namespace;
    if (kind !== undefined && name !== undefined) targetRef = { kind, name, namespace: ns };
  }
  return { addresses, ready: ready ?? true, ...(targetRef ? { targetRef } : {}) };
}

function parseSlicePort(r: Reader, field: string, value: unknown): EndpointSlicePort | undefined {
  const p = r.object(field, value, { required: true });
  if (!p) return undefined;
  const name = r.string(at(field, 'name'), p.name) ?? '';
  const port = r.int(at(field, 'port'), p.port, { min: 1, max: 65535 });
  const protocol = (r.string(at(field, 'protocol'), p.protocol, { enum: ['TCP', 'UDP', 'SCTP'] }) ?? 'TCP') as EndpointSlicePort['protocol'];
  const appProtocol = r.string(at(field, 'appProtocol'), p.appProtocol);
  return {
    name,
    ...(port === undefined ? {} : { port }),
    protocol,
    ...(appProtocol === undefined ? {} : { appProtocol }),
  };
}
