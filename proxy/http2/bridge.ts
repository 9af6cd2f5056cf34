// The generic path for the HTTP/2 streams the lean path leaves (local answers, retries, mirrors,
// HTTP/1.1 clusters, CONNECT, anything unusual): each is relayed as it came — head, body,
// trailers, resets — over an in-memory HTTP/2 connection into node:http2's server, whose compat
// objects the frontend serves with handle.ts as before, on the client's connection (the frontend
// tags the bridged session as that connection). Made per client connection on its first such
// stream.
import { Duplex } from 'node:stream';
import { H2Connection, type H2Stream, type StreamHandler } from './connection.js';
import { H2Error } from './frames.js';
import { StreamPipe } from './stream.js';
import { StreamTable } from './stream-table.js';

/** Two connected in-memory ends: what one writes the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex) =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        other().push(chunk);
        cb();
      },
      final(cb) {
        other().push(null);
        cb();
      },
      destroy(err, cb) {
        const o = other();
        if (!o.destroyed) o.destroy();
        cb(err);
      },
    });
  ends.push(make(() => ends[1]!), make(() => ends[0]!));
  return [ends[0]!, ends[1]!];
}

/** One client stream relayed to its bridged stream and back, flow control carried through. */
class Relay implements StreamHandler {
  up!: H2Stream;
  /** down → up and back (`b` is set with `up`). */
  readonly pipe: StreamPipe;

  constructor(
    private readonly down: H2Stream,
    /** The bridged stream is over: forget what was kept for it. */
    private readonly over: (id: number) => void,
  ) {
    this.pipe = new StreamPipe(down, undefined);
  }

  onHead(s: H2Stream, fields: string[], endStream: boolean): void {
    if (s === this.up) this.down.sendHead(fields, endStream);
  }

  onInformational(s: H2Stream, fields: string[]): void {
    if (s === this.up) this.down.sendInformational(fields); // 100-continue from compat's answer to Expect
  }

  onData(s: H2Stream, buf: Buffer, start: number, end: number): void {
    this.pipe.relay(s, buf, start, end);
  }

  onEnd(s: H2Stream, trailers: string[] | undefined): void {
    const to = s === this.down ? this.up : this.down;
    if (to.closed) return;
    if (trailers) to.endWithTrailers(trailers);
    else to.end();
  }

  onClose(s: H2Stream, code: number, byPeer: boolean): void {
    if (s === this.down) {
      if (code !== 0 || !this.up.finishing) this.up.reset(H2Error.Cancel);
      return;
    }
    this.over(s.id);
    // Both sides ended: the client's stream finishes with what is queued for it.
    if (code === 0 && (!byPeer || this.down.finishing)) return;
    // A reset travels on with its code (compat's REFUSED_STREAM / INTERNAL_ERROR, or a
    // destroyed stream's NO_ERROR, reach the client as node:http2 sent them); the bridge
    // lost: an internal error.
    this.down.reset(byPeer ? code : H2Error.InternalError);
  }

  onWritable(s: H2Stream): void {
    this.pipe.writable(s);
  }
}

export interface BridgeOptions {
  /** The client's connection. */
  readonly socket: Duplex;
  /** Hands node:http2 the inner end (the frontend emits it as a connection of its server, and
   *  tags that session as the client's connection). */
  readonly serve: (inner: Duplex) => void;
}

export class Bridge {
  private readonly client: H2Connection;
  /** Bridged stream id → the object a handover was kept on (the client's stream); a StreamTable,
   *  not a Map (stream-table.ts says why). */
  private readonly holders = new StreamTable<object>();
  private closed = false;

  constructor(opts: BridgeOptions) {
    const [inner, outer] = duplexPair();
    this.client = new H2Connection(outer, { role: 'client' });
    this.client.start();
    opts.serve(inner);
  }

  /** Relays a client stream, its head as it came, to node:http2's server. */
  forward(stream: H2Stream, fields: string[], endStream: boolean): void {
    const relay = new Relay(stream, this.forget);
    stream.handler = relay;
    relay.up = relay.pipe.b = this.client.request(fields, endStream, relay);
    if (relay.up.id !== 0) this.holders.set(relay.up.id, stream);
  }

  private readonly forget = (id: number): void => void this.holders.delete(id);

  /** The object a handover for bridged stream `id` was kept on (once). */
  takeHolder(id: number): object | undefined {
    const h = this.holders.get(id);
    if (h !== undefined) this.holders.delete(id);
    return h;
  }

  /** The client's connection is gone: so is the bridge. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
  }
}
