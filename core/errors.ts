// Weft's error catalogue: every error a component raises on purpose carries a stable code,
// a message written for the operator, and (where it helps) a hint naming the likely cause.

export const ErrorCode = {
  CONFIG_INVALID: 'WEFT_CONFIG_INVALID',
  CONFIG_UNREADABLE: 'WEFT_CONFIG_UNREADABLE',
  XDS_INVALID: 'WEFT_XDS_INVALID',
  XDS_UNAVAILABLE: 'WEFT_XDS_UNAVAILABLE',
  ROUTE_NOT_FOUND: 'WEFT_ROUTE_NOT_FOUND',
  NO_HEALTHY_UPSTREAM: 'WEFT_NO_HEALTHY_UPSTREAM',
  UPSTREAM_CONNECT: 'WEFT_UPSTREAM_CONNECT',
  UPSTREAM_RESET: 'WEFT_UPSTREAM_RESET',
  UPSTREAM_TIMEOUT: 'WEFT_UPSTREAM_TIMEOUT',
  CERT_INVALID: 'WEFT_CERT_INVALID',
  AUTH_FAILED: 'WEFT_AUTH_FAILED',
  IDENTITY_MISMATCH: 'WEFT_IDENTITY_MISMATCH',
  PERMISSION_DENIED: 'WEFT_PERMISSION_DENIED',
  USAGE: 'WEFT_USAGE',
  INTERNAL: 'WEFT_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeftError';
    this.code = code;
    this.hint = options.hint;
  }

  /** The message with its hint, as an operator should read it. */
  describe(): string {
    return this.hint ? `${this.message} (hint: ${this.hint})` : this.message;
  }
}

export function isWeftError(err: unknown, code?: ErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}

/** A problem found while validating input: where it is (file, field path) and what is wrong. */
export interface FieldProblem {
  /** Dotted field path, e.g. `spec.rules[0].backendRefs[1].weight`. */
  readonly field: string;
  /** What is wrong, naming the offending value. */
  readonly message: string;
}

export function formatProblems(problems: readonly FieldProblem[], prefix = ''): string {
  return problems.map((p) => `${prefix}${p.field}: ${p.message}`).join('; ');
}

export function errorMessage(err: unknown): string {
  if (err instanceof WeftError) return err.describe();
  if (err instanceof Error) return err.message;
  return String(err);
}
