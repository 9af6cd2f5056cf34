// `weft analyze` on a directory holding one of each problem (golden output), on the canary
// example (clean), and the exit codes CI relies on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectGolden } from '../test/support/golden.js';
import { analyzeDir, covers, formatFindings } from './analyze.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const golden = (f: string) => path.join(root, 'test/golden/analyze', f);

describe('weft analyze', () => {
  it('reports every problem of the fixture, errors first, and exits 1', async () => {
    const findings = await analyzeDir(golden('config'));
    const { text, exitCode } = formatFindings(findings, 'table');
    expectGolden(golden('expected.txt'), text);
    expect(exitCode).toBe(1);
    const codes = findings.map((f) => `${f.severity} ${f.code}`);
    for (const c of [
      'error ConfigInvalid',
      'error BackendNotFound',
      'error RefNotPermitted',
      'error NoMatchingParent',
      'error ZeroWeights',
      'warning ShadowedRule',
      'warning OverlappingRoutes',
      'warning NoEndpoints',
      'error WaypointNotFound',
      'warning AmbientWithoutNode',
      'warning PolicyNotEnforced',
      'warning WaypointNotDeployed',
      'error UnsupportedProtocol',
      'warning GatewayNotServed',
    ]) {
      expect(codes).toContain(c);
    }
    const json = JSON.parse(formatFindings(findings, 'json').text) as { errors: number; warnings: number; findings: unknown[] };
    expect(json.findings).toHaveLength(findings.length);
    expect(json.errors + json.warnings).toBe(findings.length);
  });

  it.each(['canary', 'ambient'])('finds nothing wrong with the %s example and exits 0', async (example) => {
    const findings = await analyzeDir(path.join(root, 'examples', example));
    expect(findings).toEqual([]);
    expect(formatFindings(findings, 'table')).toEqual({ text: 'No problems found.', exitCode: 0 });
  });

  it('fails on warnings only with --strict', () => {
    const warning = [{ severity: 'warning' as const, code: 'NoEndpoints', object: 'Service default/x', message: 'm' }];
    expect(formatFindings(warning, 'table').exitCode).toBe(0);
    expect(formatFindings(warning, 'table', true).exitCode).toBe(1);
  });

  it('judges shadowing by what each match can match', () => {
    const m = (kind: 'exact' | 'prefix' | 'segment' | 'regex', value: string, headers: string[] = []) => ({ path: { kind, value }, headers, query: [], grpc: false });
    expect(covers(m('segment', '/'), m('exact', '/x'))).toBe(true);
    expect(covers(m('segment', '/api'), m('segment', '/api/v2'))).toBe(true);
    expect(covers(m('segment', '/api'), m('prefix', '/apix'))).toBe(false);
    expect(covers(m('segment', '/api'), m('prefix', '/api/'))).toBe(true);
    expect(covers(m('prefix', '/api'), m('exact', '/apix'))).toBe(true);
    expect(covers(m('exact', '/a'), m('exact', '/a'))).toBe(true);
    expect(covers(m('exact', '/a'), m('segment', '/a'))).toBe(false);
    expect(covers(m('segment', '/', ['h']), m('segment', '/'))).toBe(false);
    expect(covers(m('segment', '/'), m('segment', '/', ['h']))).toBe(true);
    expect(covers(m('regex', '/a.*'), m('exact', '/ab'))).toBe(false);
  });
});
