// The sidecar-injection admission webhook: AdmissionReview (admission.k8s.io/v1) in, the same
// AdmissionReview out with an RFC 6902 JSON patch (computed from injectPod's result), served
// over HTTPS on 15017 with a certificate from Weft's own CA.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../core/log.js';
import { injectPod, type InjectionContext } from './inject.js';
import { diff, type Json } from './patch.js';
import type { InjectorSettings } from './settings.js';

type JsonObject = { [key: string]: Json };

export const WEBHOOK_PATH = '/inject';
const MAX_BODY = 8 * 1024 * 1024;

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** Base64 of the JSON patch. */
  readonly patch?: string;
  readonly status?: { readonly code: number; readonly message: string; readonly reason?: string };
  readonly warnings?: readonly string[];
}

export interface AdmissionReview {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

export interface WebhookOptions {
  readonly settings: () => InjectorSettings;
  /** The labels of a namespace if the control plane knows it (see InjectionContext). */
  readonly namespaceLabels: (namespace: string) => Readonly<Record<string, string>> | undefined;
  readonly log: Logger;
  /** Called once per review with what happened (metrics). */
  readonly onReview?: (outcome: 'injected' | 'skipped' | 'rejected' | 'invalid') => void;
}

function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** Answers one AdmissionReview request object. Pure apart from logging; never throws. */
export function review(body: unknown, opts: WebhookOptions): AdmissionReview {
  const request = obj(obj(body).request);
  const uid = typeof request.uid === 'string' ? request.uid : '';
  const answer = (response: Omit<AdmissionResponse, 'uid'>): AdmissionReview => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid, ...response },
  });
  const kind = obj(request.kind);
  if (obj(body).apiVersion !== 'admission.k8s.io/v1' || uid === '') {
    opts.onReview?.('invalid');
    return answer({ allowed: false, status: { code: 400, reason: 'BadRequest', message: 'expected an admission.k8s.io/v1 AdmissionReview with request.uid' } });
  }
  // Only pod creation is ours; anything else the configuration sends us is let through untouched.
  if (kind.kind !== 'Pod' || (kind.group ?? '') !== '' || request.operation !== 'CREATE' || request.subResource) {
    opts.onReview?.('skipped');
    return answer({ allowed: true });
  }
  const pod = obj(request.object);
  const namespace = String(request.namespace ?? obj(pod.metadata).namespace ?? 'default');
  const ctx: InjectionContext = { settings: opts.settings(), namespace, namespaceLabels: opts.namespaceLabels(namespace) };
  const name = String(obj(pod.metadata).name ?? obj(pod.metadata).generateName ?? '');
  const result = injectPod(pod, ctx);
  opts.onReview?.(result.kind);
  if (result.kind === 'rejected') {
    opts.log.info('rejected a pod', { namespace, pod: name, reason: result.message });
    return answer({ allowed: false, status: { code: 400, reason: 'BadRequest', message: `weft sidecar injection: ${result.message}` } });
  }
  if (result.kind === 'skipped') {
    opts.log.debug('not injecting', { namespace, pod: name, reason: result.reason });
    return answer({ allowed: true });
  }
  const patch = diff(pod, result.pod);
  opts.log.debug('injected', { namespace, pod: name, operations: patch.length });
  return answer({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
}

export interface WebhookServer {
  readonly address: AddressInfo;
  /** Swaps the serving certificate (new connections use it). */
  setCertificate(keyPem: string, chainPem: readonly string[]): void;
  close(): Promise<void>;
}

/** Serves POST /inject (and GET /ready) over HTTPS. */
export async function startWebhookServer(
  host: string,
  port: number,
  cert: { keyPem: string; chainPem: readonly string[] },
  opts: WebhookOptions,
): Promise<WebhookServer> {
  const server = https.createServer({ key: cert.keyPem, cert: cert.chainPem.join(''), minVersion: 'TLSv1.2' }, (req, res) => handle(req, res, opts));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: server.address() as AddressInfo,
    setCertificate: (keyPem, chainPem) => server.setSecureContext({ key: keyPem, cert: chainPem.join('') }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse, opts: WebhookOptions): void {
  const url = new URL(req.url ?? '/', 'https://webhook');
  const send = (code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
  if (req.method === 'GET' && url.pathname === '/ready') return send(200, 'ready\n');
  if (url.pathname !== WEBHOOK_PATH) return send(404, `no such endpoint: ${url.pathname}; the injection webhook is POST ${WEBHOOK_PATH}\n`);
  if (req.method !== 'POST') return send(405, `use POST ${WEBHOOK_PATH}\n`);
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_BODY) {
      send(413, 'AdmissionReview too large\n');
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on('end', () => {
    if (res.headersSent) return;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(400, 'the body is not JSON: expected an AdmissionReview\n');
    }
    send(200, review(body, opts));
  });
}
