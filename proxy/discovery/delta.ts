// Incremental (delta) ADS on one stream, as Envoy's xDS protocol describes it: wildcard types
// subscribe `*`, the others subscribe and unsubscribe names as references come and go; a
// response carries only changed resources and the names removed; ACK and NACK carry the nonce
// alone. A new stream tells the server what is held (initial_resource_versions), so that after a
// reconnect only what changed meanwhile is sent.
import * as grpc from '@grpc/grpc-js';
import { adsService, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from '../../api/services.js';
import { SHORT_NAME, type TypeUrl } from '../../api/types.js';
import { runStream, type StreamContext } from './stream.js';

export function deltaStream(ctx: StreamContext): Promise<string> {
  const { held } = ctx;
  /** Types that have had their first request on this stream. */
  const opened = new Set<TypeUrl>();
  let nodeSent = false;

  const send = (write: (r: DeltaDiscoveryRequest) => void, req: DeltaDiscoveryRequest & { type_url: TypeUrl }) => {
    if (!nodeSent) {
      nodeSent = true;
      req.node = ctx.node;
    }
    // The first request of a type on a stream says what we hold; only that one may.
    if (!opened.has(req.type_url)) {
      opened.add(req.type_url);
      req.initial_resource_versions = held.initialVersions(req.type_url);
    }
    write(req);
  };

  return runStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(ctx, adsService.DeltaAggregatedResources, {
    begin(write) {
      for (const t of held.wildcardTypes) send(write, { type_url: t, resource_names_subscribe: ['*'] });
      for (const t of held.byNameTypes) {
        const names = held.names(t);
        if (names.length > 0) send(write, { type_url: t, resource_names_subscribe: [...names] });
      }
    },
    respond(res, write) {
      const typeUrl = res.type_url as TypeUrl;
      const type = held.type(typeUrl);
      const nack = (message: string) =>
        send(write, { type_url: typeUrl, response_nonce: res.nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message } });
      if (!type) {
        ctx.log.warn('xDS response of an unknown type; rejecting', { type: res.type_url });
        nack(`unsupported type ${res.type_url}`);
        return;
      }
      const { decoded, problems } = held.decode(typeUrl, type, res.resources.map((r) => ({ name: r.name, any: r.resource })));
      const removed = res.removed_resources ?? [];
      for (const name of removed) {
        if (decoded.has(name)) problems.push(`${SHORT_NAME[typeUrl]} ${name}: both updated and removed in one response`);
      }
      if (problems.length > 0) {
        const message = problems.join('\n');
        held.reject(typeUrl, message, res.system_version_info, res.nonce);
        nack(message);
        return;
      }
      const next = new Map(held.resources(typeUrl));
      const versions = held.versionsOf(typeUrl);
      for (const r of res.resources) {
        // A name we just unsubscribed from may still be on its way: it is not ours any more.
        if (!held.wants(typeUrl, r.name)) continue;
        next.set(r.name, decoded.get(r.name));
        versions.set(r.name, r.version);
      }
      for (const name of removed) {
        next.delete(name);
        versions.delete(name);
      }
      const changed = held.accept(typeUrl, next, res.system_version_info, res.nonce, versions);
      send(write, { type_url: typeUrl, response_nonce: res.nonce });
      if (!changed) return;
      for (const c of held.resubscribe()) {
        send(write, { type_url: c.typeUrl, resource_names_subscribe: [...c.added], resource_names_unsubscribe: [...c.removed] });
        held.drop(c.typeUrl, c.removed);
      }
    },
  });
}
