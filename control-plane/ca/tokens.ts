// Bootstrap tokens for local mode: one secret per WorkloadEntry at
// <state-dir>/tokens/<namespace>/<name>.token, and one per node that workloads name at
// <state-dir>/tokens/nodes/<node>.token (0600, dirs 0700). A sidecar presents its token to prove
// which workload it is, a node proxy to prove which node it serves; the control plane looks
// tokens up here.
import crypto from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, WeftError } from '../../core/errors.js';

/** Whose token it is: a workload's (namespace and name) or a node proxy's (node). */
export type TokenOwner =
  | { readonly namespace: string; readonly name: string; readonly node?: undefined }
  | { readonly node: string; readonly namespace?: undefined; readonly name?: undefined };

interface Entry {
  readonly owner: TokenOwner;
  readonly token: Buffer;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** The directory of node tokens, beside the per-namespace ones: no workload namespace may take it. */
export const NODE_TOKEN_DIR = 'nodes';

function ownerKey(o: TokenOwner): string {
  return o.node !== undefined ? `node:${o.node}` : `${o.namespace}/${o.name}`;
}

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
    if (namespace === NODE_TOKEN_DIR) {
      // Its tokens would share a directory with the node proxies': a workload could hold a node's.
      throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot make a token for "${name}.${namespace}": in local mode the namespace "${NODE_TOKEN_DIR}" is reserved (<state-dir>/tokens/${NODE_TOKEN_DIR}/ holds the node proxies' tokens)`, {
        hint: 'move the workload to another namespace',
      });
    }
    return path.join(this.stateDir, 'tokens', namespace, `${name}.token`);
  }

  /** Where the token of the node proxy of `node` lives. */
  nodePathFor(node: string): string {
    if (node.length > 253 || !DNS_SUBDOMAIN.test(node)) {
      throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot make a token for node "${node}": not a valid Kubernetes node name`);
    }
    return path.join(this.stateDir, 'tokens', NODE_TOKEN_DIR, `${node}.token`);
  }

  /**
   * Returns the token of `namespace/name`, creating it if missing (32 random bytes, base64url).
   * Synchronous: called by the control plane whenever its model changes, once per WorkloadEntry.
   * A token edited on disk (rotation by hand) is picked up by the next call.
   */
  ensure(namespace: string, name: string): string {
    return this.ensureFile(this.pathFor(namespace, name), { namespace, name });
  }

  /** The same for the node proxy of `node` (called once per node some workload names). */
  ensureNode(node: string): string {
    return this.ensureFile(this.nodePathFor(node), { node });
  }

  private ensureFile(file: string, owner: TokenOwner): string {
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
    this.index({ owner, token: Buffer.from(token) });
    return token;
  }

  /** The workload or node a token belongs to, or undefined. Only tokens ensured by this process count. */
  lookup(token: string): TokenOwner | undefined {
    if (token.length === 0) return undefined;
    const given = Buffer.from(token);
    const entry = this.byDigest.get(digest(given));
    if (!entry || entry.token.length !== given.length || !crypto.timingSafeEqual(entry.token, given)) return undefined;
    return entry.owner.node !== undefined ? { node: entry.owner.node } : { namespace: entry.owner.namespace, name: entry.owner.name };
  }

  /** Forgets a workload's token and deletes its file (the workload was removed, or for rotation). */
  remove(namespace: string, name: string): void {
    this.forget({ namespace, name }, this.pathFor(namespace, name));
  }

  /** Forgets a node proxy's token and deletes its file. */
  removeNode(node: string): void {
    this.forget({ node }, this.nodePathFor(node));
  }

  private forget(owner: TokenOwner, file: string): void {
    const key = ownerKey(owner);
    const d = this.byOwner.get(key);
    if (d) this.byDigest.delete(d);
    this.byOwner.delete(key);
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private index(entry: Entry): void {
    const key = ownerKey(entry.owner);
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
