// What the control plane accepts as a port from a proxy or the state it saved: node metadata
// and annotations arrive as strings, saved state as JSON numbers.

/** `v` as a port number (an integer from 1 to 65535, given as a number or a decimal string), or undefined. */
export function portNumber(v: unknown): number | undefined {
  const n = typeof v === 'string' && /^[0-9]{1,5}$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}
