// PEM text <-> DER bytes, and splitting a PEM bundle into its certificates.
import { X509Certificate } from 'node:crypto';
import { ErrorCode, WeftError } from '../core/errors.js';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, each normalised to end with one newline. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(CERT_BLOCK) ?? []).map((block) => `${block.trim()}\n`);
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The DER inside the first PEM block with `label`; throws CERT_INVALID naming `what`. */
export function pemToDer(pem: string, label: string, what: string): Buffer {
  const begin = `-----BEGIN ${label}-----`;
  const end = `-----END ${label}-----`;
  const from = pem.indexOf(begin);
  const to = pem.indexOf(end, from + begin.length);
  if (from < 0 || to < 0) throw new WeftError(ErrorCode.CERT_INVALID, `${what} is not PEM: no "${begin}" block`);
  const body = pem.slice(from + begin.length, to).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length === 0) {
    throw new WeftError(ErrorCode.CERT_INVALID, `${what} has a PEM block that is not valid base64`);
  }
  return Buffer.from(body, 'base64');
}

/** Parses one PEM certificate; throws CERT_INVALID naming `what` when it does not parse. */
export function parseCertificate(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new WeftError(ErrorCode.CERT_INVALID, `${what} is not a valid X.509 certificate`, { cause: err });
  }
}

/** X509Certificate's validFrom/validTo strings ("Nov 21 11:36:00 2025 GMT") as epoch ms. */
export function certTime(text: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new WeftError(ErrorCode.CERT_INVALID, `unreadable certificate time ${JSON.stringify(text)}`);
  return t;
}
