// The proxy's side of the CA API: one CreateCertificate call over grpc-js, with the bearer token
// in the metadata and gRPC failures turned into WeftErrors an operator can act on.
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '../../api/codec.js';
import { caService, type IstioCertificateRequest } from '../../api/services.js';
import { ErrorCode, WeftError } from '../../core/errors.js';

export interface CaClientOptions {
  /** host:port of the CA (the control plane's xDS port). */
  readonly address: string;
  /** Plaintext by default (port 15010, loopback); TLS credentials for port 15012. */
  readonly credentials?: grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
  readonly timeoutMs?: number;
}

export class CaClient {
  private readonly client: grpc.Client;

  constructor(private readonly opts: CaClientOptions) {
    this.client = new grpc.Client(opts.address, opts.credentials ?? grpc.credentials.createInsecure(), opts.channelOptions ?? {});
  }

  /** Sends a CSR; resolves with the PEM chain (leaf first). */
  createCertificate(req: { csr: string; ttlSeconds?: number; token: string; metadata?: Record<string, unknown> }): Promise<string[]> {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${req.token}`);
    const request: IstioCertificateRequest = {
      csr: req.csr,
      ...(req.ttlSeconds ? { validity_duration: req.ttlSeconds } : {}),
      ...(req.metadata ? { metadata: toStruct(req.metadata) } : {}),
    };
    const m = caService.CreateCertificate;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 10_000);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, { deadline }, (err, res) => {
        if (err) reject(this.describe(err));
        else resolve(res?.cert_chain ?? []);
      });
    });
  }

  close(): void {
    this.client.close();
  }

  private describe(err: grpc.ServiceError): WeftError {
    const at = `the CA at ${this.opts.address}`;
    switch (err.code) {
      case grpc.status.UNAUTHENTICATED:
        return new WeftError(ErrorCode.AUTH_FAILED, `${at} did not accept our token: ${err.details}`, {
          cause: err,
          hint: 'check --token-file and that the control plane still has this workload',
        });
      case grpc.status.PERMISSION_DENIED:
        return new WeftError(ErrorCode.PERMISSION_DENIED, `${at} refused the request: ${err.details}`, { cause: err });
      case grpc.status.INVALID_ARGUMENT:
        return new WeftError(ErrorCode.CERT_INVALID, `${at} rejected our CSR: ${err.details}`, { cause: err });
      default:
        return new WeftError(ErrorCode.XDS_UNAVAILABLE, `${at} is unavailable: ${err.details || grpc.status[err.code]}`, { cause: err });
    }
  }
}
