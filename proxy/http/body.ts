// Request bodies on the data path: none, buffered (small, so a retry or a mirror can resend it)
// or streamed once (never buffered: large uploads flow with backpressure).
import type http2 from 'node:http2';
import { PassThrough, type Readable } from 'node:stream';
import type { DownstreamRequest } from './facts.js';
import { firstValue, type HeaderMap } from './headers.js';

export type RequestBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'buffered'; readonly data: Buffer }
  /** Single use: only the first upstream try may send it. */
  | { readonly kind: 'stream'; readonly source: Readable };

export const NO_BODY: RequestBody = Object.freeze({ kind: 'none' });

/** Default: bodies up to 64 KiB with a known length are buffered when replay is wanted. */
export const DEFAULT_REPLAY_LIMIT = 64 * 1024;

/** True when the request carries no body at all (so it can always be replayed). */
export function hasNoBody(req: DownstreamRequest, headers: Readonly<HeaderMap>): boolean {
  const len = firstValue(headers, 'content-length');
  if (len !== undefined) return Number(len) === 0;
  if (req.httpVersionMajor === 2) return (req as http2.Http2ServerRequest).stream.endAfterHeaders || req.readableEnded;
  return firstValue(headers, 'transfer-encoding') === undefined;
}

/**
 * Prepares the request body. When `replay` is wanted (retries or mirrors) and the body has a
 * known length up to `limit`, it is read into memory first; otherwise it streams. Bodies of
 * unknown length are never buffered: a gRPC stream may wait for responses before it ends.
 */
export async function prepareBody(
  req: DownstreamRequest,
  headers: Readonly<HeaderMap>,
  opts: { replay: boolean; limit: number },
): Promise<RequestBody> {
  if (hasNoBody(req, headers)) return NO_BODY;
  const len = Number(firstValue(headers, 'content-length') ?? NaN);
  if (!opts.replay || !Number.isFinite(len) || len > opts.limit) return { kind: 'stream', source: req };
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return { kind: 'buffered', data: Buffer.concat(chunks) };
}

/** True when the body can be sent again (retry, mirror). */
export function isReplayable(body: RequestBody): boolean {
  return body.kind !== 'stream';
}

/**
 * A fresh stream for one upstream try. A streamed body goes through a PassThrough so that an
 * upstream failure (which destroys what it was writing from) never destroys the downstream
 * request, and so the downstream connection survives to carry the error answer.
 */
export function bodyForTry(body: RequestBody): Readable | Buffer | null {
  switch (body.kind) {
    case 'none':
      return null;
    case 'buffered':
      return body.data;
    case 'stream': {
      const pt = new PassThrough();
      const source = body.source;
      // pipe() does not forward errors: a client that aborts its upload must end the try too.
      const onClose = () => {
        if (!source.readableEnded) pt.destroy(new Error('downstream request body aborted'));
      };
      source.once('close', onClose);
      pt.once('close', () => source.removeListener('close', onClose));
      source.pipe(pt);
      return pt;
    }
  }
}
