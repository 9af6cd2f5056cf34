// Connecting to the Kubernetes API with @kubernetes/client-node: a kubeconfig file or the
// in-cluster ServiceAccount, and helpers to read the API's errors (status code, Status reason).
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { ErrorCode, WeftError } from '../../../core/errors.js';

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeConnection {
  /** A kubeconfig file; absent: in-cluster (the pod's ServiceAccount), else $KUBECONFIG / ~/.kube/config. */
  readonly kubeconfig?: string;
}

/** Loads the client configuration once, at startup. Throws WeftError(USAGE) with a hint when there is none. */
export function loadKubeConfig(conn: KubeConnection): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (conn.kubeconfig) kc.loadFromFile(conn.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST && existsSync(IN_CLUSTER_TOKEN)) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new WeftError(ErrorCode.USAGE, `cannot load the Kubernetes client configuration: ${(err as Error).message}`, {
      cause: err,
      hint: 'pass --kubeconfig FILE, or run inside a pod with a ServiceAccount',
    });
  }
  if (!kc.getCurrentCluster()) {
    throw new WeftError(ErrorCode.USAGE, 'the Kubernetes client configuration names no cluster', {
      hint: 'pass --kubeconfig FILE with a current-context, or run inside a pod',
    });
  }
  return kc;
}

/** The HTTP status of a failed API call (client-node's ApiException or a watch error), if any. */
export function apiStatusCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** A short description of a failed API call for logs: status code and the Status message. */
export function apiErrorMessage(err: unknown): string {
  const code = apiStatusCode(err);
  const body = (err as { body?: unknown } | undefined)?.body;
  let message: string | undefined;
  if (typeof body === 'string') {
    try {
      message = (JSON.parse(body) as { message?: string }).message;
    } catch {
      message = body.slice(0, 200);
    }
  } else if (typeof body === 'object' && body !== null) {
    message = (body as { message?: string }).message;
  }
  const base = message ?? (err instanceof Error ? err.message : String(err));
  return code === undefined ? base : `HTTP ${code}: ${base}`;
}

export function isNotFound(err: unknown): boolean {
  return apiStatusCode(err) === 404;
}

export function isConflict(err: unknown): boolean {
  return apiStatusCode(err) === 409;
}
