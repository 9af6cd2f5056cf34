// The lab's address plan, pure: a pod range (an IPv4 CIDR) with the node's bridge on its first
// host address and pods on the others, checked up front so a wrong address is named before
// anything is built.
import { ErrorCode, WeftError } from '../../core/errors.js';

export interface PodRange {
  /** As given, e.g. `10.244.0.0/24`. */
  readonly cidr: string;
  readonly prefixLength: number;
  /** The network address as a 32-bit number. */
  readonly network: number;
  /** The node's bridge (default gateway of every pod): the first host address. */
  readonly gateway: string;
  /** How many pod addresses the range holds (all host addresses but the gateway). */
  readonly capacity: number;
}

export function ipToNumber(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + p, 0);
}

export function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/**
 * Parses a pod range. Between /16 and /29: large enough for a node and a pod, small enough that
 * scanning it stays cheap; the address must be the network's own (no host bits).
 */
export function podRange(cidr: string): PodRange {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  const base = m ? ipToNumber(m[1]!) : undefined;
  const len = m ? Number(m[2]) : NaN;
  if (!m || base === undefined || !(len >= 16 && len <= 29)) {
    throw new WeftError(ErrorCode.USAGE, `pod range ${JSON.stringify(cidr)} is not an IPv4 CIDR between /16 and /29 (e.g. 10.244.0.0/24)`);
  }
  const size = 2 ** (32 - len);
  if (base % size !== 0) {
    throw new WeftError(ErrorCode.USAGE, `pod range ${cidr} has host bits set: the network is ${numberToIp(base - (base % size))}/${len}`);
  }
  return Object.freeze({ cidr, prefixLength: len, network: base, gateway: numberToIp(base + 1), capacity: size - 3 });
}

/** Why `ip` cannot be a pod's address in `range`, or undefined when it can. */
export function podAddressProblem(range: PodRange, ip: string): string | undefined {
  const n = ipToNumber(ip);
  if (n === undefined) return `${JSON.stringify(ip)} is not an IPv4 address`;
  const size = 2 ** (32 - range.prefixLength);
  if (n < range.network || n >= range.network + size) return `${ip} is outside the lab's pod range ${range.cidr}`;
  if (n === range.network) return `${ip} is the network address of ${range.cidr}`;
  if (n === range.network + size - 1) return `${ip} is the broadcast address of ${range.cidr}`;
  if (n === range.network + 1) return `${ip} is the node's bridge address in ${range.cidr}`;
  return undefined;
}

/**
 * Addresses for pods: each `wanted` one as given (checked: in range, not taken twice), the rest
 * (undefined) the lowest free addresses from the third host address up. Throws naming the pod.
 */
export function assignAddresses(range: PodRange, pods: ReadonlyArray<{ name: string; ip?: string | undefined }>, taken: Iterable<string> = []): Map<string, string> {
  const used = new Map<string, string>();
  for (const ip of taken) used.set(ip, '(already in the lab)');
  const out = new Map<string, string>();
  for (const p of pods) {
    if (p.ip === undefined) continue;
    const problem = podAddressProblem(range, p.ip);
    if (problem) throw new WeftError(ErrorCode.USAGE, `pod ${p.name}: ${problem}`);
    const other = used.get(p.ip);
    if (other) throw new WeftError(ErrorCode.USAGE, `pod ${p.name}: ${p.ip} is already the address of pod ${other}`);
    used.set(p.ip, p.name);
    out.set(p.name, p.ip);
  }
  let next = range.network + 2;
  const last = range.network + 2 ** (32 - range.prefixLength) - 2;
  for (const p of pods) {
    if (p.ip !== undefined) continue;
    while (next <= last && used.has(numberToIp(next))) next++;
    if (next > last) throw new WeftError(ErrorCode.USAGE, `pod ${p.name}: no free address left in ${range.cidr} (${range.capacity} pods at most)`);
    const ip = numberToIp(next++);
    used.set(ip, p.name);
    out.set(p.name, ip);
  }
  return out;
}
