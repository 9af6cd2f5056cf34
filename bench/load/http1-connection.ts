// One raw HTTP/1.1 keep-alive connection for the latency generator: writes a fixed request,
// parses just enough of the response (status, Content-Length or chunked) to know when it ends.
// Far cheaper per request than node:http's client, so the generator adds little of its own.
import net from 'node:net';

const CRLFCRLF = Buffer.from('\r\n\r\n');

type State =
  | { kind: 'head' }
  | { kind: 'length'; left: number }
  | { kind: 'chunk-size' }
  | { kind: 'chunk-data'; left: number }
  | { kind: 'trailers' };

export class Http1Connection {
  private socket: net.Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private state: State = { kind: 'head' };
  private status = 0;
  private done: ((ok: boolean) => void) | undefined;
  private closed = false;
  private reconnects = 0;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly request: Buffer,
  ) {}

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port, noDelay: true });
      s.once('connect', () => {
        s.removeListener('error', reject);
        s.on('error', () => {});
        resolve();
      });
      s.once('error', reject);
      s.on('data', (chunk: Buffer) => this.onData(chunk));
      s.on('close', () => this.onClose());
      this.socket = s;
      this.buf = Buffer.alloc(0);
      this.state = { kind: 'head' };
    });
  }

  /** Sends the request; the connection must be idle (one request at a time, no pipelining). */
  send(done: (ok: boolean) => void): void {
    this.done = done;
    this.status = 0;
    this.socket!.write(this.request);
  }

  close(): void {
    this.closed = true;
    this.socket?.destroy();
  }

  private finish(ok: boolean): void {
    const d = this.done;
    this.done = undefined;
    this.state = { kind: 'head' };
    d?.(ok);
  }

  private onClose(): void {
    if (this.closed) return;
    // The server (or proxy) closed: the request in flight failed; reconnect, a bounded number of times.
    this.finish(false);
    if (this.reconnects++ < 100) void this.connect().catch(() => {});
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    // Each step consumes bytes or returns to wait for more.
    for (let guard = 0; guard < 10_000; guard++) {
      const st = this.state;
      if (st.kind === 'head') {
        const end = this.buf.indexOf(CRLFCRLF);
        if (end < 0) return;
        const head = this.buf.toString('latin1', 0, end);
        this.buf = this.buf.subarray(end + 4);
        this.status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) this.state = { kind: 'chunk-size' };
        else this.state = { kind: 'length', left: cl ? Number(cl[1]) : 0 };
      } else if (st.kind === 'length') {
        const take = Math.min(st.left, this.buf.length);
        st.left -= take;
        this.buf = this.buf.subarray(take);
        if (st.left > 0) return;
        this.finish(this.status >= 200 && this.status < 300);
        if (this.buf.length === 0) return;
      } else if (st.kind === 'chunk-size') {
        const eol = this.buf.indexOf('\r\n');
        if (eol < 0) return;
        const size = parseInt(this.buf.toString('latin1', 0, eol), 16);
        this.buf = this.buf.subarray(eol + 2);
        this.state = size === 0 ? { kind: 'trailers' } : { kind: 'chunk-data', left: size + 2 };
      } else if (st.kind === 'chunk-data') {
        const take = Math.min(st.left, this.buf.length);
        st.left -= take;
        this.buf = this.buf.subarray(take);
        if (st.left > 0) return;
        this.state = { kind: 'chunk-size' };
      } else {
        const eol = this.buf.indexOf('\r\n');
        if (eol < 0) return;
        this.buf = this.buf.subarray(eol + 2);
        if (eol === 0) {
          this.finish(this.status >= 200 && this.status < 300);
          if (this.buf.length === 0) return;
        }
      }
    }
  }
}
