// Tests for FileSource against a real temporary directory: edits apply, a broken file keeps its
// last good version (and says why), deletions remove objects, duplicates are reported.
import { mkdtemp, mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../../test/support/eventually.js';
import { isWeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { formatProblem, type HTTPRoute, type Model } from '../model/index.js';
import { FileSource, parseFile } from './file.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name} }
spec: { ports: [{ port: 9080 }] }
`;

const route = (weight: string | number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: ${weight} }
`;

function weight(model: Model): number | undefined {
  const r = model.httpRoutes.find((x: HTTPRoute) => x.metadata.name === 'reviews');
  return r?.spec.rules[0]?.backendRefs[0]?.weight;
}

function serviceNames(model: Model): string[] {
  return model.services.map((s) => s.metadata.name);
}

describe('FileSource', () => {
  let dir: string;
  let source: FileSource;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'weft-config-'));
    source = new FileSource(dir, { debounceMs: 20, log: quiet });
  });

  afterEach(async () => {
    source.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads YAML files recursively, several documents per file, and nothing else', async () => {
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'a.yaml'), `${service('a')}---\n${service('b')}---\n`);
    await writeFile(path.join(dir, 'sub', 'c.yml'), service('c'));
    await writeFile(path.join(dir, 'notes.txt'), service('not-yaml'));
    await writeFile(path.join(dir, '.hidden.yaml'), service('hidden'));
    await source.start();
    expect(serviceNames(source.model.get())).toEqual(['a', 'b', 'c']);
    expect(source.problems()).toEqual([]);
  });

  it('applies edits, keeps a broken file\'s last good version while others update, and recovers', async () => {
    const routeFile = path.join(dir, 'route.yaml');
    await writeFile(routeFile, route(90));
    await writeFile(path.join(dir, 'services.yaml'), service('reviews'));
    await source.start();
    expect(weight(source.model.get())).toBe(90);

    await writeFile(routeFile, route(80));
    await eventually(() => expect(weight(source.model.get())).toBe(80));

    await writeFile(routeFile, route('ninety'));
    await eventually(() =>
      expect(source.problems().map(formatProblem)).toEqual([
        `${routeFile}: spec.rules[0].backendRefs[0].weight: must be an integer ≥ 0, got "ninety"`,
      ]),
    );
    expect(weight(source.model.get())).toBe(80);
    expect(source.model.get().problems).toHaveLength(1);

    // The rest of the config keeps moving while route.yaml is broken.
    await writeFile(path.join(dir, 'services.yaml'), `${service('reviews')}---\n${service('ratings')}`);
    await eventually(() => expect(serviceNames(source.model.get())).toEqual(['ratings', 'reviews']));
    expect(weight(source.model.get())).toBe(80);

    await writeFile(routeFile, route(70));
    await eventually(() => expect(weight(source.model.get())).toBe(70));
    expect(source.problems()).toEqual([]);
  });

  it('a deleted file removes its objects', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await writeFile(path.join(dir, 'b.yaml'), service('b'));
    await source.start();
    await unlink(path.join(dir, 'a.yaml'));
    await eventually(() => expect(serviceNames(source.model.get())).toEqual(['b']));
  });

  it('picks up files in directories created after start', async () => {
    await source.start();
    await mkdir(path.join(dir, 'later'));
    // The new directory's watcher exists only after a scan; keep writing until the file is seen.
    await eventually(async () => {
      await writeFile(path.join(dir, 'later', 'x.yaml'), service('x'));
      expect(serviceNames(source.model.get())).toEqual(['x']);
    });
  });

  it('publishes a new Model on each change, and none when nothing changed', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await source.start();
    const seen: Model[] = [];
    source.model.subscribe((m) => seen.push(m));
    await writeFile(path.join(dir, 'b.yaml'), service('b'));
    await eventually(() => expect(seen.map(serviceNames)).toEqual([['a', 'b']]));
    // Rewriting identical content is not a change.
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await writeFile(path.join(dir, 'c.yaml'), service('c'));
    await eventually(() => expect(seen.map(serviceNames)).toEqual([['a', 'b'], ['a', 'b', 'c']]));
  });

  it('reports an object defined in two files, keeping the first file\'s copy', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('dup'));
    await writeFile(path.join(dir, 'b.yaml'), `apiVersion: v1
kind: Service
metadata: { name: dup }
spec: { ports: [{ port: 1 }] }
`);
    await source.start();
    expect(source.model.get().services.map((s) => s.spec.ports[0]?.port)).toEqual([9080]);
    expect(source.problems().map(formatProblem)).toEqual([
      `${path.join(dir, 'b.yaml')}: metadata.name: Service default/dup is already defined in ${path.join(dir, 'a.yaml')}; this copy is ignored until one of them is removed or renamed`,
    ]);
  });

  it('a file that was never valid serves its valid documents and reports the rest', async () => {
    await writeFile(path.join(dir, 'mixed.yaml'), `${service('good')}---\napiVersion: v1\nkind: Pod\nmetadata: { name: p }\n`);
    await source.start();
    expect(serviceNames(source.model.get())).toEqual(['good']);
    expect(source.problems().map(formatProblem)).toEqual([
      `${path.join(dir, 'mixed.yaml')} (document 2): kind: "Pod" is not a kind Weft reads in v1 (it reads: Service, Namespace)`,
    ]);
  });

  it('refuses to start on a missing directory', async () => {
    const missing = new FileSource(path.join(dir, 'nope'), { log: quiet });
    await expect(missing.start()).rejects.toSatisfy((e: unknown) => isWeftError(e, 'WEFT_CONFIG_UNREADABLE'));
  });
});

describe('parseFile', () => {
  it('reports YAML syntax errors with their line', () => {
    const { objects, problems } = parseFile('x.yaml', 'apiVersion: v1\nkind: [Service\n');
    expect(objects).toEqual([]);
    expect(problems[0]?.field).toMatch(/^line \d+, column \d+$/);
    expect(problems[0]?.message).toMatch(/^invalid YAML: /);
  });

  it('skips empty documents and names the document in multi-document files', () => {
    const { objects, problems } = parseFile('x.yaml', `---\n${service('a')}---\napiVersion: v1\nkind: Service\nmetadata: { name: B }\nspec: { ports: [{ port: 1 }] }\n`);
    expect(objects.map((o) => o.object.metadata.name)).toEqual(['a']);
    expect(problems.map(formatProblem)).toEqual([
      'x.yaml (document 2): metadata.name: must be a DNS label starting with a letter (lower-case letters, digits, "-"), got "B"',
    ]);
  });
});
