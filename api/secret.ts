// SDS: the Secret resource (trust anchors, certificate chains) and the TLS contexts of listeners
// and clusters, which Weft accepts only in their SDS-by-name form (TlsContextRef).
import type { Plain } from './codec.js';
import type { SecretValue, TlsContextRef } from './domain.js';
import type { ResourceRef, ResourceType } from './resource.js';
import { TypeUrl } from './types.js';
import {
  Problems, decodeStringMatcher, deepEqual, field, has, inlineData, list, obj, result, str, strings, unpackChecked,
  wrappedBool,
} from './matchers.js';

/** The parts of a CommonTlsContext Weft uses: SDS names, ALPN and expected peer SANs. */
export interface CommonTlsRef {
  readonly certificateSecret?: string;
  readonly validationSecret?: string;
  readonly alpn: readonly string[];
  readonly matchSans: readonly string[];
}

function sdsName(cfg: Plain | undefined, path: string, p: Problems): string | undefined {
  const name = str(cfg, 'name');
  if (!name) p.add(field(path, 'name'), 'an SDS secret name is required');
  return name || undefined;
}

/** CertificateValidationContext: only the expected SANs are read (trust comes from SDS). */
function decodeValidationContext(cvc: Plain | undefined, path: string, p: Problems): string[] {
  const sans: string[] = [];
  if (has(cvc, 'trusted_ca')) {
    p.add(field(path, 'trusted_ca'), 'inline trusted_ca is not supported; name the trust bundle through SDS');
  }
  list(cvc, 'match_subject_alt_names').forEach((m, i) => {
    const at = field(field(path, 'match_subject_alt_names'), i);
    const sm = decodeStringMatcher(m, at, p);
    if (sm && sm.kind !== 'exact') p.add(at, `only exact subject alt name matches are supported, got ${sm.kind}`);
    else if (sm) sans.push(sm.value);
  });
  list(cvc, 'match_typed_subject_alt_names').forEach((m, i) => {
    const at = field(field(field(path, 'match_typed_subject_alt_names'), i), 'matcher');
    const sm = decodeStringMatcher(obj(m, 'matcher'), at, p);
    if (sm && sm.kind !== 'exact') p.add(at, `only exact subject alt name matches are supported, got ${sm.kind}`);
    else if (sm) sans.push(sm.value);
  });
  return sans;
}

export function decodeCommonTlsContext(ctx: Plain | undefined, path: string, p: Problems): CommonTlsRef {
  if (list(ctx, 'tls_certificates').length > 0) {
    p.add(field(path, 'tls_certificates'), 'inline certificates are not supported; use tls_certificate_sds_secret_configs');
  }
  for (const k of ['tls_certificate_provider_instance', 'tls_certificate_certificate_provider', 'tls_certificate_certificate_provider_instance']) {
    if (has(ctx, k)) p.add(field(path, k), 'certificate providers are not supported; use SDS');
  }
  const certs = list(ctx, 'tls_certificate_sds_secret_configs');
  if (certs.length > 1) p.add(field(path, 'tls_certificate_sds_secret_configs'), 'at most one certificate is supported');
  const certificateSecret = certs[0] && sdsName(certs[0], field(field(path, 'tls_certificate_sds_secret_configs'), 0), p);

  let validationSecret: string | undefined;
  let matchSans: string[] = [];
  if (has(ctx, 'validation_context_sds_secret_config')) {
    validationSecret = sdsName(obj(ctx, 'validation_context_sds_secret_config'), field(path, 'validation_context_sds_secret_config'), p);
  } else if (has(ctx, 'combined_validation_context')) {
    const at = field(path, 'combined_validation_context');
    const combined = obj(ctx, 'combined_validation_context');
    validationSecret = sdsName(obj(combined, 'validation_context_sds_secret_config'), field(at, 'validation_context_sds_secret_config'), p);
    matchSans = decodeValidationContext(obj(combined, 'default_validation_context'), field(at, 'default_validation_context'), p);
  } else if (has(ctx, 'validation_context')) {
    matchSans = decodeValidationContext(obj(ctx, 'validation_context'), field(path, 'validation_context'), p);
  } else {
    for (const k of ['validation_context_certificate_provider', 'validation_context_certificate_provider_instance']) {
      if (has(ctx, k)) p.add(field(path, k), 'certificate providers are not supported; use SDS');
    }
  }
  return {
    ...(certificateSecret ? { certificateSecret } : {}),
    ...(validationSecret ? { validationSecret } : {}),
    alpn: strings(ctx, 'alpn_protocols'),
    matchSans,
  };
}

/** DownstreamTlsContext (a listener's transport socket) → TlsContextRef. */
export function decodeDownstreamTls(ctx: Plain, path: string, p: Problems): TlsContextRef {
  const common = decodeCommonTlsContext(obj(ctx, 'common_tls_context'), field(path, 'common_tls_context'), p);
  if (!common.certificateSecret) {
    p.add(field(path, 'common_tls_context.tls_certificate_sds_secret_configs'), 'a server certificate (SDS name) is required');
  }
  const requireClientCertificate = wrappedBool(ctx, 'require_client_certificate') ?? false;
  if (requireClientCertificate && !common.validationSecret) {
    p.add(field(path, 'require_client_certificate'), 'requiring client certificates needs a validation context SDS name');
  }
  return {
    ...(common.certificateSecret ? { certificateSecret: common.certificateSecret } : {}),
    ...(common.validationSecret ? { validationSecret: common.validationSecret } : {}),
    requireClientCertificate,
    alpn: common.alpn,
  };
}

/** SDS names a TLS context refers to, as xDS references. */
export function secretRefs(tls: { certificateSecret?: string; validationSecret?: string } | undefined): ResourceRef[] {
  const out: ResourceRef[] = [];
  if (tls?.certificateSecret) out.push({ typeUrl: TypeUrl.Secret, name: tls.certificateSecret });
  if (tls?.validationSecret) out.push({ typeUrl: TypeUrl.Secret, name: tls.validationSecret });
  return out;
}

function decodeSecret(s: Plain, p: Problems): SecretValue {
  const name = str(s, 'name') ?? '';
  if (!name) p.add('name', 'a secret name is required');
  if (has(s, 'tls_certificate')) {
    const cert = obj(s, 'tls_certificate');
    const chain = inlineData(obj(cert, 'certificate_chain'), 'tls_certificate.certificate_chain', p);
    if (!chain) p.add('tls_certificate.certificate_chain', 'a PEM certificate chain is required');
    return { name, ...(chain ? { certificateChain: chain } : {}) };
  }
  if (has(s, 'validation_context')) {
    const trusted = inlineData(obj(obj(s, 'validation_context'), 'trusted_ca'), 'validation_context.trusted_ca', p);
    if (!trusted) p.add('validation_context.trusted_ca', 'PEM trust anchors are required');
    return { name, ...(trusted ? { trustedCa: trusted } : {}) };
  }
  for (const k of ['session_ticket_keys', 'generic_secret']) {
    if (has(s, k)) p.add(k, `${k} secrets are not supported`);
  }
  if (p.empty) p.add('', 'one of tls_certificate or validation_context is required');
  return { name };
}

export const secretType: ResourceType<SecretValue> = {
  typeUrl: TypeUrl.Secret,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.Secret, p);
    if (!plain) return result<SecretValue>(undefined, undefined, p);
    const value = decodeSecret(plain, p);
    return result(str(plain, 'name'), value, p);
  },
  references: () => [],
  equals: (a, b) => deepEqual(a, b),
};
