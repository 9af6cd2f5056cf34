// The lean HTTP/2 path's entry, per stream: the request head as Weft's engine decoded it. The
// listener decides (a plain forward to an HTTP/2 cluster?); a stream it takes becomes an
// Exchange, any other goes back to the frontend untouched, which relays it to node:http2's
// compat objects and handle.ts (bridge.ts).
import type { Duplex } from 'node:stream';
import type { ConnectionInfo } from '../http/frontend.js';
import type { FastForward } from '../http1/exchange.js';
import type { H2Stream } from './connection.js';
import { H2Exchange, type H2Env, type H2Host } from './exchange.js';

/** The listener's part: may this stream go the lean way? undefined hands it to compat's path.
 *  Called once per stream with all its fields (name, value…; pseudo-headers first); may throw
 *  (a request that cannot be read: compat's path answers it); must not do I/O. `stash` is where
 *  to keep a handover for compat's path (proxy/http1/decide.ts). */
export type H2Decide = (fields: readonly string[], conn: ConnectionInfo, socket: Duplex, stash: object) => FastForward | undefined;

export interface H2PathOptions {
  readonly decide: H2Decide;
  readonly env: H2Env;
}

/** The frontend's side of a connection whose streams the path may take. */
export interface H2PathHost extends H2Host {
  requestStarted(): void;
}

export interface H2Path {
  /** Takes the stream (true), or leaves it to the caller (false) with nothing read from it. */
  serve(stream: H2Stream, fields: string[], endStream: boolean, conn: ConnectionInfo, socket: Duplex, host: H2PathHost): boolean;
}

export function createH2Path(opts: H2PathOptions): H2Path {
  const { decide, env } = opts;
  return {
    serve(stream, fields, endStream, conn, socket, host) {
      // CONNECT and Expect are answered by compat's path (405 / 100-continue, 417).
      if (hasField(fields, ':method', 'CONNECT') || hasField(fields, 'expect')) return false;
      let fwd: FastForward | undefined;
      try {
        fwd = decide(fields, conn, socket, stream);
      } catch {
        fwd = undefined; // whatever went wrong, compat's path says it properly
      }
      if (!fwd) return false;
      const exchange = new H2Exchange(env, host, stream, fwd, conn, fields, endStream);
      host.requestStarted();
      try {
        exchange.start();
      } catch (err) {
        exchange.bug(err);
      }
      return true;
    },
  };
}

/** Whether `fields` has a field `name` (with `value`, when given). */
function hasField(fields: readonly string[], name: string, value?: string): boolean {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name && (value === undefined || fields[i + 1] === value)) return true;
  return false;
}
