// `weft ca init` and `weft ca show`: create or describe the CA kept in a state dir. Both return
// the text to print; the CLI entry point wires them to flags.
import type { X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { CertificateAuthority } from '../certs/ca.js';
import { CA_FILES, readSelfSigned, selfSignedDir } from '../certs/ca-store.js';
import { certTime, parseCertificate } from '../certs/pem.js';
import { ErrorCode, WeftError } from '../core/errors.js';

/** Creates the CA in `<stateDir>/ca` unless one is there already; describes what is there after. */
export async function caInit(opts: { stateDir: string; trustDomain: string }): Promise<string> {
  const existed = (await readSelfSigned(opts.stateDir)) !== undefined;
  await CertificateAuthority.loadOrCreate({ trustDomain: opts.trustDomain, stateDir: opts.stateDir });
  const headline = existed
    ? `A CA already exists in ${selfSignedDir(opts.stateDir)}; nothing was changed.`
    : `Created a new root CA for trust domain ${opts.trustDomain} in ${selfSignedDir(opts.stateDir)}.`;
  return `${headline}\n${await caShow({ stateDir: opts.stateDir })}`;
}

/** Describes the CA in `<stateDir>/ca`: the signing certificate and every root in the trust bundle. */
export async function caShow(opts: { stateDir: string }): Promise<string> {
  const stored = await readSelfSigned(opts.stateDir);
  if (!stored) {
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `no CA in ${selfSignedDir(opts.stateDir)}`, {
      hint: 'run `weft ca init --state-dir DIR --trust-domain TD`, or start the control plane once',
    });
  }
  const signer = parseCertificate(stored.signer.certPem, CA_FILES.cert);
  const roots = stored.roots.map((r, i) => parseCertificate(r, `${CA_FILES.roots} #${i + 1}`));
  const keyFile = path.join(selfSignedDir(opts.stateDir), CA_FILES.key);
  const mode = (await stat(keyFile)).mode & 0o777;
  const lines = [
    'Signing certificate:',
    ...describe(signer).map((l) => `  ${l}`),
    `  key file:     ${keyFile} (mode ${mode.toString(8).padStart(4, '0')}${mode & 0o077 ? ', readable by others: fix with chmod 600' : ''})`,
    `Trust bundle: ${roots.length} root(s)`,
    ...roots.flatMap((r) => [
      `  - ${oneLine(r.subject)}${r.fingerprint256 === signer.fingerprint256 ? ' (signing)' : ''}`,
      ...describe(r)
        .slice(1)
        .map((l) => `    ${l}`),
    ]),
  ];
  return lines.join('\n');
}

function describe(cert: X509Certificate): string[] {
  const expiresInDays = Math.floor((certTime(cert.validTo) - Date.now()) / 86_400_000);
  return [
    `subject:      ${oneLine(cert.subject)}`,
    `fingerprint:  SHA256 ${cert.fingerprint256}`,
    `not before:   ${new Date(certTime(cert.validFrom)).toISOString()}`,
    `not after:    ${new Date(certTime(cert.validTo)).toISOString()} (${expiresInDays < 0 ? 'EXPIRED' : `${expiresInDays} days left`})`,
  ];
}

function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}
