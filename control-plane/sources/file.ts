// FileSource: watches a directory of YAML config (recursively, multi-document files), debounces
// changes, and publishes a new Model each time. A file with any invalid document keeps serving
// its last good objects while the rest of the config moves on; its problems are listed.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { Watch } from '../../core/watch.js';
import {
  buildModel,
  describeObject,
  EMPTY_MODEL,
  formatProblem,
  objectKey,
  parseObject,
  type ConfigObject,
  type ConfigProblem,
  type Model,
} from '../model/index.js';

export interface FieldProblemWithFile extends ConfigProblem {
  readonly file: string;
}

export interface FileSourceOptions {
  /** Quiet time after the last change before the directory is read again. Default 100 ms. */
  readonly debounceMs?: number;
  readonly log?: Logger;
}

interface Located {
  readonly object: ConfigObject;
  /** 1-based, set only when the file holds several documents. */
  readonly document: number | undefined;
}

interface FileState {
  /** undefined when the file could not be read. */
  readonly content: string | undefined;
  /** Objects of the current content's valid documents. */
  readonly parsed: readonly Located[];
  readonly problems: readonly FieldProblemWithFile[];
  /** The objects of the last version of this file that had no problems at all. */
  readonly lastGood: readonly Located[] | undefined;
}

const YAML_FILE = /\.ya?ml$/i;

/** Parses one file's text into its objects and problems. Never throws. */
export function parseFile(file: string, content: string): { objects: Located[]; problems: FieldProblemWithFile[] } {
  const objects: Located[] = [];
  const problems: FieldProblemWithFile[] = [];
  // An empty file parses to an empty stream: simply no objects.
  const lines = new LineCounter();
  const list = parseAllDocuments(content, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  const multi = list.length > 1;
  list.forEach((doc, i) => {
    const document = multi ? i + 1 : undefined;
    const at = (p: Omit<FieldProblemWithFile, 'file' | 'document'>): FieldProblemWithFile => ({
      file,
      ...(document === undefined ? {} : { document }),
      ...p,
    });
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        const pos = lines.linePos(err.pos[0]);
        problems.push(at({ field: `line ${pos.line}, column ${pos.col}`, message: `invalid YAML: ${err.message.split('\n')[0] ?? ''}` }));
      }
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // an empty document, e.g. after a trailing `---`
    const res = parseObject(value);
    if (res.ok) objects.push({ object: res.object, document });
    else for (const p of res.problems) problems.push(at({ ...p, ...(res.object ? { object: res.object } : {}) }));
  });
  return { objects, problems };
}

export class FileSource {
  /** The current Model; subscribers hear of every change. */
  readonly model = new Watch<Model>(EMPTY_MODEL);

  private readonly dir: string;
  private readonly debounceMs: number;
  private readonly log: Logger;
  private readonly files = new Map<string, FileState>();
  private readonly watchers = new Map<string, FSWatcher>();
  private currentProblems: FieldProblemWithFile[] = [];
  private signature = '';
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private stopped = false;

  constructor(dir: string, options: FileSourceOptions = {}) {
    this.dir = dir;
    this.debounceMs = options.debounceMs ?? 100;
    this.log = options.log ?? createLogger('config');
  }

  /** Reads the whole directory once (the Model is ready when this resolves), then watches it. */
  async start(): Promise<void> {
    const info = await stat(this.dir).catch((err: unknown) => {
      throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `cannot read config directory ${this.dir}: ${(err as Error).message}`, {
        cause: err,
        hint: 'pass an existing directory of YAML files with --config',
      });
    });
    if (!info.isDirectory()) {
      throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `config path ${this.dir} is not a directory`, { hint: 'pass a directory of YAML files' });
    }
    this.stopped = false;
    await this.scan();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Every current problem: invalid files and documents, duplicates. */
  problems(): FieldProblemWithFile[] {
    return [...this.currentProblems];
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.scan();
    }, this.debounceMs);
  }

  /** One scan at a time; a change seen during a scan causes one more. */
  private scan(): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.rescan = false;
          await this.scanOnce();
        } while (this.rescan && !this.stopped);
      } catch (err) {
        this.log.error('reading the config directory failed; keeping the current config', { dir: this.dir, error: (err as Error).message });
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const { files, dirs } = await walk(this.dir);
    if (this.stopped) return;
    this.syncWatchers(dirs);
    const present = new Set(files);
    for (const f of [...this.files.keys()]) if (!present.has(f)) this.files.delete(f);
    for (const f of files) {
      let content: string;
      try {
        content = await readFile(f, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          this.files.delete(f); // removed between listing and reading
          continue;
        }
        const problem = { file: f, field: '', message: `cannot read file: ${(err as Error).message}` };
        const prev = this.files.get(f);
        this.files.set(f, { content: undefined, parsed: [], problems: [problem], lastGood: prev?.lastGood });
        continue;
      }
      const prev = this.files.get(f);
      if (prev?.content === content) continue;
      const { objects, problems } = parseFile(f, content);
      this.files.set(f, { content, parsed: objects, problems, lastGood: problems.length === 0 ? objects : prev?.lastGood });
    }
    if (this.stopped) return;
    this.publish();
  }

  private publish(): void {
    const objects: ConfigObject[] = [];
    const problems: FieldProblemWithFile[] = [];
    const owner = new Map<string, string>();
    for (const [file, state] of [...this.files.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      problems.push(...state.problems);
      // A broken file keeps serving its last good version; one never good serves its valid documents.
      const serving = state.problems.length === 0 ? state.parsed : (state.lastGood ?? state.parsed);
      for (const { object, document } of serving) {
        const key = objectKey(object);
        const first = owner.get(key);
        if (first !== undefined) {
          problems.push({
            file,
            ...(document === undefined ? {} : { document }),
            object: describeObject(object),
            field: 'metadata.name',
            message: `${describeObject(object)} is already defined in ${first}; this copy is ignored until one of them is removed or renamed`,
          });
          continue;
        }
        owner.set(key, file);
        objects.push(object);
      }
    }
    const signature = JSON.stringify([objects, problems]);
    if (signature === this.signature) return;
    const before = new Set(this.currentProblems.map(formatProblem));
    for (const p of problems) if (!before.has(formatProblem(p))) this.log.warn(`config problem: ${formatProblem(p)}`);
    this.signature = signature;
    this.currentProblems = problems;
    this.log.info('config loaded', { objects: objects.length, problems: problems.length });
    this.model.set(buildModel(objects, problems));
  }

  private syncWatchers(dirs: readonly string[]): void {
    const wanted = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!wanted.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of wanted) {
      if (this.watchers.has(d)) continue;
      try {
        // One non-recursive watcher per directory: portable, and editors' rename-into-place
        // saves show up as events on the directory.
        const w = watch(d, { persistent: false }, () => this.schedule());
        w.on('error', () => {
          w.close();
          this.watchers.delete(d);
          this.schedule();
        });
        this.watchers.set(d, w);
      } catch {
        this.schedule();
      }
    }
  }
}

/** All YAML files and directories under `root`, skipping hidden entries (editor temp files, .git). */
async function walk(root: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  const visit = async (dir: string) => {
    dirs.push(dir);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (dir === root) throw err;
      return; // a subdirectory removed while we looked
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(dir, e.name);
      if (e.isDirectory()) await visit(full);
      else if ((e.isFile() || e.isSymbolicLink()) && YAML_FILE.test(e.name)) files.push(full);
    }
  };
  await visit(root);
  files.sort();
  return { files, dirs };
}
