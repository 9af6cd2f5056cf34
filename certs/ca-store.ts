// Where CA material lives on disk: Weft's own state dir (<state-dir>/ca, created on first start)
// and a plugged-in CA in Istio's `cacerts` layout. Reading and writing only; checks are in ca.ts.
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCode, WeftError } from '../core/errors.js';
import { parseCertificate, splitPemCertificates } from './pem.js';

/** The certificate that signs leaves, its key, and its chain up to (and including) its root. */
export interface SigningMaterial {
  readonly certPem: string;
  /** PEM private key. Secret: never logged, never sent. */
  readonly keyPem: string;
  /** Issuing certificate first, root last; [certPem] when the signer is itself the root. */
  readonly chainPem: readonly string[];
}

export interface StoredCa {
  readonly signer: SigningMaterial;
  /** Trusted roots, one PEM certificate per element. */
  readonly roots: readonly string[];
}

export const CA_FILES = {
  cert: 'ca-cert.pem',
  key: 'ca-key.pem',
  roots: 'root-cert.pem',
  chain: 'cert-chain.pem',
} as const;

export function selfSignedDir(stateDir: string): string {
  return path.join(stateDir, 'ca');
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Weft's own CA from `<state-dir>/ca`, or undefined when none has been created yet. */
export async function readSelfSigned(stateDir: string): Promise<StoredCa | undefined> {
  const dir = selfSignedDir(stateDir);
  const [certPem, keyPem, rootsPem] = await Promise.all([
    readOptional(path.join(dir, CA_FILES.cert)),
    readOptional(path.join(dir, CA_FILES.key)),
    readOptional(path.join(dir, CA_FILES.roots)),
  ]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) {
    const missing = certPem === undefined ? CA_FILES.cert : CA_FILES.key;
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `the CA in ${dir} is incomplete: ${missing} is missing`, {
      hint: `restore it from a backup, or move ${dir} away to create a new CA (every workload certificate then changes)`,
    });
  }
  const roots = rootsPem === undefined ? [] : splitPemCertificates(rootsPem);
  const cert = splitPemCertificates(certPem)[0] ?? certPem;
  return { signer: { certPem: cert, keyPem, chainPem: [cert] }, roots: roots.length > 0 ? roots : [cert] };
}

/** Writes Weft's own CA atomically (temp file + rename); the key 0600, the dir 0700. */
export async function writeSelfSigned(stateDir: string, ca: StoredCa): Promise<void> {
  const dir = selfSignedDir(stateDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const put = async (name: string, text: string, mode: number) => {
    const file = path.join(dir, name);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, text, { mode });
    await chmod(tmp, mode); // the umask may have narrowed `mode`; make it exact
    await rename(tmp, file);
  };
  // Key before certificate: a crash in between leaves a mismatch that loading reports, never a
  // certificate whose key is lost.
  await put(CA_FILES.key, ca.signer.keyPem, 0o600);
  await put(CA_FILES.cert, ca.signer.certPem, 0o644);
  await put(CA_FILES.roots, ca.roots.join(''), 0o644);
}

/** Whether the key file is readable by group or others (the caller warns). */
export async function keyTooOpen(stateDir: string): Promise<boolean> {
  const s = await stat(path.join(selfSignedDir(stateDir), CA_FILES.key));
  return (s.mode & 0o077) !== 0;
}

/**
 * A plugged-in CA in Istio's layout: ca-cert.pem (the signing, usually intermediate, CA),
 * ca-key.pem, root-cert.pem (one or more roots) and cert-chain.pem (ca-cert up to the root).
 */
export async function readPlugged(dir: string): Promise<StoredCa> {
  const [certPem, keyPem, rootsPem, chainText] = await Promise.all(
    [CA_FILES.cert, CA_FILES.key, CA_FILES.roots, CA_FILES.chain].map((name) => readOptional(path.join(dir, name))),
  );
  const missing = [
    [CA_FILES.cert, certPem],
    [CA_FILES.key, keyPem],
    [CA_FILES.roots, rootsPem],
  ].flatMap(([name, text]) => (text === undefined ? [name] : []));
  if (missing.length > 0) {
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `plugged-in CA directory ${dir} has no ${missing.join(', ')}`, {
      hint: `expected Istio's cacerts layout: ${Object.values(CA_FILES).join(', ')}`,
    });
  }
  const cert = splitPemCertificates(certPem ?? '')[0];
  if (!cert) throw new WeftError(ErrorCode.CERT_INVALID, `${path.join(dir, CA_FILES.cert)} holds no certificate`);
  const roots = splitPemCertificates(rootsPem ?? '');
  if (roots.length === 0) throw new WeftError(ErrorCode.CERT_INVALID, `${path.join(dir, CA_FILES.roots)} holds no certificate`);

  const chain = splitPemCertificates(chainText ?? '');
  const fingerprint = (pem: string, what: string) => parseCertificate(pem, what).fingerprint256;
  const certPrint = fingerprint(cert, CA_FILES.cert);
  if (chain.length === 0 || fingerprint(chain[0] as string, CA_FILES.chain) !== certPrint) chain.unshift(cert);
  // Istio's cert-chain.pem normally ends with the root; add it when it does not, so that the
  // chain handed to workloads is always leaf ... root.
  const last = parseCertificate(chain[chain.length - 1] as string, CA_FILES.chain);
  const lastIsRoot = roots.some((r) => fingerprint(r, CA_FILES.roots) === last.fingerprint256);
  if (!lastIsRoot) {
    const issuer = roots.find((r) => {
      const root = parseCertificate(r, CA_FILES.roots);
      return last.checkIssued(root) && last.verify(root.publicKey);
    });
    if (issuer) chain.push(issuer);
  }
  return { signer: { certPem: cert, keyPem: keyPem ?? '', chainPem: chain }, roots };
}
