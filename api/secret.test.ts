// Tests for SDS decoding: trust anchors and certificate chains from inline data sources;
// file sources and other secret kinds are rejected with their paths.
import { describe, expect, it } from 'vitest';
import { pack } from './codec.js';
import { secretType } from './secret.js';
import { TypeUrl } from './types.js';

function problemFields(r: { ok: boolean; problems?: readonly { field: string }[] }): string[] {
  expect(r.ok).toBe(false);
  return (r.problems ?? []).map((p) => p.field);
}
describe('secretType.decode', () => {
  it('a validation context (ROOTCA) and a certificate chain', () => {
    const ca = secretType.decode(pack(TypeUrl.Secret, { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: '-----BEGIN CERTIFICATE-----' } } }));
    expect(ca.ok && ca.value).toEqual({ name: 'ROOTCA', trustedCa: '-----BEGIN CERTIFICATE-----' });
    const chain = secretType.decode(pack(TypeUrl.Secret, { name: 'default', tls_certificate: { certificate_chain: { inline_bytes: Buffer.from('PEM') } } }));
    expect(chain.ok && chain.value).toEqual({ name: 'default', certificateChain: 'PEM' });
  });

  it('rejects file data sources and unsupported secret kinds', () => {
    expect(problemFields(secretType.decode(pack(TypeUrl.Secret, { name: 'x', validation_context: { trusted_ca: { filename: '/etc/ca.pem' } } }))))
      .toEqual(['validation_context.trusted_ca.filename', 'validation_context.trusted_ca']);
    expect(problemFields(secretType.decode(pack(TypeUrl.Secret, { name: 'x', generic_secret: { secret: { inline_string: 's' } } }))))
      .toEqual(['generic_secret']);
  });
});
