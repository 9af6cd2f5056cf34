// Per-pod injection overrides, read from `weft.dev/*` annotations and validated: every invalid
// one is reported with the annotation's name and value, and the pod is rejected rather than
// injected with a setting the user did not ask for.
import { isIP } from 'node:net';
import { portNumber } from '../../core/port.js';
import { ANNOTATIONS, INJECT_ANNOTATION, STATUS_ANNOTATION } from './names.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface Overrides {
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  readonly excludeOutboundCidrs: readonly string[];
  readonly proxyCpu?: string;
  readonly proxyMemory?: string;
  readonly logLevel?: LogLevel;
  /** Point the app's HTTP, TCP and gRPC probes at the sidecar (probes.ts); true unless turned off. */
  readonly rewriteAppProbes: boolean;
  readonly proxyConcurrency?: number;
}

export interface AnnotationProblem {
  readonly annotation: string;
  readonly value: string;
  readonly message: string;
}

const KNOWN = new Set<string>([...Object.values(ANNOTATIONS), INJECT_ANNOTATION, STATUS_ANNOTATION]);
// A Kubernetes resource quantity (a positive number with an optional SI or binary suffix).
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$/;

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function ports(annotation: string, value: string, problems: AnnotationProblem[]): number[] {
  const out: number[] = [];
  for (const item of list(value)) {
    const n = portNumber(item);
    if (n === undefined) {
      problems.push({ annotation, value, message: `"${item}" is not a port number (1-65535); write ports separated by commas, e.g. "8080,9090"` });
    } else if (!out.includes(n)) {
      out.push(n);
    }
  }
  return out;
}

function cidrs(annotation: string, value: string, problems: AnnotationProblem[]): string[] {
  const out: string[] = [];
  for (const item of list(value)) {
    const [address = '', prefix, extra] = item.split('/');
    const family = isIP(address);
    const bits = prefix !== undefined && /^\d+$/.test(prefix) ? Number(prefix) : NaN;
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || !(bits >= 0 && bits <= max)) {
      problems.push({ annotation, value, message: `"${item}" is not a CIDR such as "10.0.0.0/8" or "fd00::/8"` });
    } else {
      out.push(item);
    }
  }
  return out;
}

function quantity(annotation: string, value: string, problems: AnnotationProblem[]): string | undefined {
  const v = value.trim();
  if (!QUANTITY.test(v) || Number.parseFloat(v) <= 0) {
    problems.push({ annotation, value, message: 'must be a positive Kubernetes quantity such as "100m", "0.5", "128Mi" or "1G"' });
    return undefined;
  }
  return v;
}

/** Reads every `weft.dev/*` annotation of a pod. Unknown `weft.dev/` keys are problems too (typos). */
export function readOverrides(annotations: Readonly<Record<string, string>>): { overrides: Overrides; problems: AnnotationProblem[] } {
  const problems: AnnotationProblem[] = [];
  const get = (key: string) => (Object.hasOwn(annotations, key) ? String(annotations[key]) : undefined);
  for (const [key, value] of Object.entries(annotations)) {
    if (key.startsWith('weft.dev/') && !KNOWN.has(key)) {
      problems.push({ annotation: key, value: String(value), message: `is not an annotation Weft reads (it reads: ${[...KNOWN].sort().join(', ')})` });
    }
  }
  const inject = get(INJECT_ANNOTATION);
  if (inject !== undefined && inject !== 'true' && inject !== 'false') {
    problems.push({ annotation: INJECT_ANNOTATION, value: inject, message: 'must be "true" or "false"' });
  }
  const inbound = get(ANNOTATIONS.excludeInboundPorts);
  const outbound = get(ANNOTATIONS.excludeOutboundPorts);
  const nets = get(ANNOTATIONS.excludeOutboundCidrs);
  const cpu = get(ANNOTATIONS.proxyCpu);
  const memory = get(ANNOTATIONS.proxyMemory);
  const level = get(ANNOTATIONS.logLevel);
  const rewrite = get(ANNOTATIONS.rewriteAppProbes);
  const concurrency = get(ANNOTATIONS.proxyConcurrency);
  let proxyConcurrency: number | undefined;
  if (concurrency !== undefined) {
    if (/^\d+$/.test(concurrency.trim()) && Number(concurrency) >= 1 && Number(concurrency) <= 64) proxyConcurrency = Number(concurrency);
    else problems.push({ annotation: ANNOTATIONS.proxyConcurrency, value: concurrency, message: 'must be a whole number of worker processes from 1 to 64' });
  }
  if (rewrite !== undefined && rewrite !== 'true' && rewrite !== 'false') {
    problems.push({ annotation: ANNOTATIONS.rewriteAppProbes, value: rewrite, message: 'must be "true" or "false"' });
  }
  let logLevel: LogLevel | undefined;
  if (level !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(level)) logLevel = level as LogLevel;
    else problems.push({ annotation: ANNOTATIONS.logLevel, value: level, message: `must be one of ${LOG_LEVELS.join(', ')}` });
  }
  const proxyCpu = cpu === undefined ? undefined : quantity(ANNOTATIONS.proxyCpu, cpu, problems);
  const proxyMemory = memory === undefined ? undefined : quantity(ANNOTATIONS.proxyMemory, memory, problems);
  const overrides: Overrides = {
    excludeInboundPorts: inbound === undefined ? [] : ports(ANNOTATIONS.excludeInboundPorts, inbound, problems),
    excludeOutboundPorts: outbound === undefined ? [] : ports(ANNOTATIONS.excludeOutboundPorts, outbound, problems),
    excludeOutboundCidrs: nets === undefined ? [] : cidrs(ANNOTATIONS.excludeOutboundCidrs, nets, problems),
    ...(proxyCpu ? { proxyCpu } : {}),
    ...(proxyMemory ? { proxyMemory } : {}),
    ...(logLevel ? { logLevel } : {}),
    rewriteAppProbes: rewrite !== 'false',
    ...(proxyConcurrency ? { proxyConcurrency } : {}),
  };
  return { overrides, problems };
}

/** One line naming every bad annotation and its value, for the AdmissionReview status and the CLI. */
export function describeProblems(problems: readonly AnnotationProblem[]): string {
  return problems.map((p) => `annotation ${p.annotation}=${JSON.stringify(p.value)}: ${p.message}`).join('; ');
}
