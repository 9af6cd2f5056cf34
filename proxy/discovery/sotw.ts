// State-of-the-world ADS on one stream: every response holds a type's whole set (by-name types:
// the requested names), ACK and NACK repeat the subscription with a version and the nonce.
import * as grpc from '@grpc/grpc-js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import type { TypeUrl } from '../../api/types.js';
import { runStream, type StreamContext } from './stream.js';

export function sotwStream(ctx: StreamContext): Promise<string> {
  const { held } = ctx;
  /** The last nonce received per type on this stream (nonces mean nothing across streams). */
  const nonces = new Map<TypeUrl, string>();
  let nodeSent = false;

  /** A request for one type: the names we want, the version we hold, the nonce it answers. */
  const request = (write: (r: DiscoveryRequest) => void, typeUrl: TypeUrl, names: readonly string[], nonce?: string, nack?: string) => {
    if (nonce !== undefined) nonces.set(typeUrl, nonce);
    const req: DiscoveryRequest = {
      type_url: typeUrl,
      resource_names: [...names],
      version_info: held.version(typeUrl),
      response_nonce: nonces.get(typeUrl) ?? '',
    };
    if (!nodeSent) {
      nodeSent = true;
      req.node = ctx.node;
    }
    if (nack !== undefined) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: nack };
    write(req);
  };

  return runStream<DiscoveryRequest, DiscoveryResponse>(ctx, adsService.StreamAggregatedResources, {
    begin(write) {
      // Wildcards first, then whatever we already know we need (after a reconnect).
      for (const t of held.wildcardTypes) request(write, t, []);
      for (const t of held.byNameTypes) if (held.names(t).length > 0) request(write, t, held.names(t));
    },
    respond(res, write) {
      const typeUrl = res.type_url as TypeUrl;
      const type = held.type(typeUrl);
      if (!type) {
        ctx.log.warn('xDS response of an unknown type; rejecting', { type: res.type_url });
        request(write, typeUrl, [], res.nonce, `unsupported type ${res.type_url}`);
        return;
      }
      const { decoded, problems } = held.decode(typeUrl, type, res.resources.map((any) => ({ any })));
      const names = held.wildcardTypes.includes(typeUrl) ? [] : held.names(typeUrl);
      if (problems.length > 0) {
        const message = problems.join('\n');
        held.reject(typeUrl, message, res.version_info, res.nonce);
        request(write, typeUrl, names, res.nonce, message);
        return;
      }
      const changed = held.accept(typeUrl, decoded, res.version_info, res.nonce);
      request(write, typeUrl, names, res.nonce);
      // The server answers a changed subscription with the new set; what it omits is gone then.
      if (changed) for (const c of held.resubscribe()) request(write, c.typeUrl, c.names);
    },
  });
}
