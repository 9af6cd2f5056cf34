// `weft ca init`, `show`, `rotate-root` and `remove-root`: create, describe and rotate the CA kept
// in a state dir. Each returns the text to print; the CLI entry point wires them to flags. A
// running control plane watches these files and follows (control-plane/ca/rotation.ts). With
// --kubernetes the same commands work on the CA Secret of a control plane in a cluster (onCa).
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

/** The trust domain a CA was made for: its root's organizationName, as createSelfSignedRoot writes it. */
function trustDomainOf(cert: X509Certificate): string | undefined {
  return /^O=(.+)$/m.exec(cert.subject)?.[1];
}

const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

async function openCa(stateDir: string): Promise<CertificateAuthority> {
  const stored = await readSelfSigned(stateDir);
  if (!stored) {
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `no CA in ${selfSignedDir(stateDir)}`, {
      hint: 'run `weft ca init --state-dir DIR --trust-domain TD`, or start the control plane once',
    });
  }
  const trustDomain = trustDomainOf(parseCertificate(stored.signer.certPem, CA_FILES.cert)) ?? 'cluster.local';
  return CertificateAuthority.loadOrCreate({ trustDomain, stateDir, create: false, log: silent });
}


/**
 * Step 1 of a root rotation: a new root, added to the trust bundle, signing from now on (the old
 * root stays trusted). A running control plane pushes the bundle to every proxy first and signs
 * under the new root once they all trust it; proxies move to it at their next renewal.
 */
export async function caRotateRoot(opts: { stateDir: string; /** How the next command names this CA (default: --state-dir DIR). */ where?: string }): Promise<string> {
  const ca = await openCa(opts.stateDir);
  const old = ca.signingCertificate();
  const root = parseCertificate(await ca.rotateRoot(), 'new root');
  return [
    `Created a new root and made it the signing CA; the old root stays in the trust bundle.`,
    `  new root: ${oneLine(root.subject)}  SHA256 ${root.fingerprint256}`,
    `  old root: ${oneLine(old.subject)}  SHA256 ${old.fingerprint256}`,
    'A running control plane picks this up by itself: it sends the bundle (ROOTCA) to every proxy,',
    'signs under the new root once they all trust it, and proxies change certificates at their next',
    'renewal. When every workload has renewed (after the longest certificate lifetime, 24 h by',
    'default), stop trusting the old root:',
    `  weft ca remove-root ${opts.where ?? `--state-dir ${opts.stateDir}`} ${old.fingerprint256}`,
  ].join('\n');
}

/** Last step of a rotation: stop trusting an old root (never the one the CA signs under). */
export async function caRemoveRoot(opts: { stateDir: string; fingerprint: string }): Promise<string> {
  const ca = await openCa(opts.stateDir);
  const before = ca.bundle().roots;
  await ca.removeRoot(opts.fingerprint);
  const after = new Set(ca.bundle().roots.map((r) => r.fingerprint256));
  const gone = before.filter((r) => !after.has(r.fingerprint256));
  return [
    ...gone.map((r) => `Removed root ${oneLine(r.subject)}  SHA256 ${r.fingerprint256} from the trust bundle.`),
    `The trust bundle now holds ${after.size} root(s). A running control plane sends it to every proxy;`,
    'from then on certificates that chain to the removed root are refused on new connections.',
  ].join('\n');
}

/** Where a `weft ca` command works: a state dir, or a cluster's CA Secret. */
export type CaTarget = { readonly stateDir: string } | { readonly kubernetes: { readonly namespace: string; readonly kubeconfig?: string } };

/**
 * Runs `command` on the target's CA. For a cluster, on a copy of the control plane's CA Secret,
 * written back if the command changed it (control-plane/sources/kubernetes/ca-secret.ts);
 * every replica follows the Secret.
 */
export async function onCa(target: CaTarget, command: (stateDir: string) => Promise<string>): Promise<string> {
  if ('stateDir' in target) return command(target.stateDir);
  // Loaded on use: the Kubernetes client is large, and local mode does not need it.
  const { loadKubeConfig } = await import('../control-plane/sources/kubernetes/client.js');
  const { changeCaSecret } = await import('../control-plane/sources/kubernetes/ca-secret.js');
  const kc = loadKubeConfig(target.kubernetes.kubeconfig ? { kubeconfig: target.kubernetes.kubeconfig } : {});
  return changeCaSecret(kc, target.kubernetes.namespace, command);
}
