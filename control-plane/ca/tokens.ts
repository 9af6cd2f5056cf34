// Bootstrap tokens for local mode: one secret per WorkloadEntry at
// <state-dir>/tokens/<namespace>/<name>.token (0600, dirs 0700). A sidecar presents its token to
// prove which workload it is; the control plane looks tokens up here.
import crypto from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, WeftError } from '../../core/errors.js';

export interface TokenOwner {
  readonly namespace: string;
  readonly name: string;
}

interface Entry extends TokenOwner {
  readonly token: Buffer;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function digest(token: string | Buffer): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export class TokenStore {
  /** Keyed by the SHA-256 of the token, so a lookup's timing says nothing about the secret. */
  private readonly byDigest = new Map<string, Entry>();
  private readonly byOwner = new Map<string, string>();

  constructor(private readonly stateDir: string) {}

  /** Where the token of `namespace/name` lives. */
  pathFor(namespace: string, name: string): string {
    if (namespace.length > 63 || !DNS_LABEL.test(namespace) || name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
      throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot make a token for "${name}.${namespace}": not a valid Kubernetes name and namespace`);
    }
    return path.join(this.stateDir, 'tokens', namespace, `${name}.token`);
  }

  /**
   * Returns the token of `namespace/name`, creating it if missing (32 random bytes, base64url).
   * Synchronous: called by the control plane whenever its model changes, once per WorkloadEntry.
   * A token edited on disk (rotation by hand) is picked up by the next call.
   */
  ensure(namespace: string, name: string): string {
    const file = this.pathFor(namespace, name);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    let token = this.read(file);
    if (token === undefined) {
      token = crypto.randomBytes(32).toString('base64url');
      // Write aside then link into place: readers never see a half-written file, and if another
      // process made the token first, linking fails and we use theirs.
      const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
      try {
        linkSync(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        token = this.read(file) ?? token;
      } finally {
        unlinkSync(tmp);
      }
    }
    this.index({ namespace, name, token: Buffer.from(token) });
    return token;
  }

  /** The workload a token belongs to, or undefined. Only tokens ensured by this process count. */
  lookup(token: string): TokenOwner | undefined {
    if (token.length === 0) return undefined;
    const given = Buffer.from(token);
    const entry = this.byDigest.get(digest(given));
    if (!entry || entry.token.length !== given.length || !crypto.timingSafeEqual(entry.token, given)) return undefined;
    return { namespace: entry.namespace, name: entry.name };
  }

  /** Forgets a workload's token and deletes its file (the workload was removed, or for rotation). */
  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const d = this.byOwner.get(key);
    if (d) this.byDigest.delete(d);
    this.byOwner.delete(key);
    try {
      unlinkSync(this.pathFor(namespace, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private index(entry: Entry): void {
    const key = `${entry.namespace}/${entry.name}`;
    const previous = this.byOwner.get(key);
    if (previous) this.byDigest.delete(previous);
    const d = digest(entry.token);
    this.byDigest.set(d, entry);
    this.byOwner.set(key, d);
  }

  private read(file: string): string | undefined {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `cannot read token file ${file}: ${(err as Error).message}`, { cause: err });
    }
    const token = text.trim();
    if (token.length === 0) {
      // An empty file is a crash leftover, never a usable secret: replace it.
      unlinkSync(file);
      return undefined;
    }
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return token;
  }
}
