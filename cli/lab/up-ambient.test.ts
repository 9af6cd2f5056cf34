// The pure parts of ambient `weft up`, on examples/ambient as written: which configs are
// ambient, each problem naming file, object, field and value, the pods' hosts entries, and the
// live view (compact line and full screen) with the weights read from a waypoint's dump.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { modelFromYaml } from '../../control-plane/model/testing.js';
import { renderView, weightsOf, type ViewState } from '../up-view.js';
import { podRange } from './addresses.js';
import { ambientProblems, hostsOf, isAmbientConfig, sourceFileOf, UP_LAB } from './up-ambient.js';

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/ambient');
const yamlOf = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(path.join(dir, f), 'utf8'));

describe('ambient weft up: the config', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'weft-up-ambient-unit-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('runs examples/ambient in ambient mode, examples/canary not', () => {
    expect(isAmbientConfig(modelFromYaml(...yamlOf(EXAMPLE)))).toBe(true);
    expect(isAmbientConfig(modelFromYaml(...yamlOf(path.join(EXAMPLE, '../canary'))))).toBe(false);
  });

  it('finds no problem in the example, and gives every Service ClusterIP its names', () => {
    const model = modelFromYaml(...yamlOf(EXAMPLE));
    expect(ambientProblems(model, podRange(UP_LAB.podCidr), EXAMPLE)).toEqual([]);
    expect(hostsOf(model)).toContainEqual({ ip: '10.96.0.10', names: ['reviews', 'reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local'] });
  });

  it('names the file, object, field and value of each problem', () => {
    const dir = path.join(tmp, 'broken');
    cpSync(EXAMPLE, dir, { recursive: true });
    const workloads = path.join(dir, 'workloads.yaml');
    const waypoint = path.join(dir, 'waypoint.yaml');
    writeFileSync(
      workloads,
      readFileSync(workloads, 'utf8')
        .replace('address: 10.244.0.11', 'address: 10.1.0.11')
        .replace('address: 10.244.0.12', 'address: 10.244.0.10')
        .replace(/(name: client[\s\S]*?)  nodeName: node1\n/, '$1'),
    );
    writeFileSync(waypoint, readFileSync(waypoint, 'utf8').replace('address: 10.244.0.20', 'address: 10.244.0.1'));
    expect(sourceFileOf(dir, 'WorkloadEntry', 'default', 'waypoint')).toBe(waypoint);
    const problems = ambientProblems(modelFromYaml(...yamlOf(dir)), podRange(UP_LAB.podCidr), dir);
    const [w, wp] = [workloads, waypoint].map((f) => path.relative(process.cwd(), f));
    const why = '(each workload is a pod of the lab, so its address must be a pod address there)';
    expect(problems).toEqual([
      `${w}: WorkloadEntry default/client spec.nodeName: required for an ambient workload, it names the node whose proxy carries the pod`,
      `${w}: WorkloadEntry default/reviews-v1 spec.address: 10.1.0.11 is outside the lab's pod range 10.244.0.0/24 ${why}`,
      `${w}: WorkloadEntry default/reviews-v2 spec.address: 10.244.0.10 is also the address of default/client; each pod needs its own`,
      `${wp}: WorkloadEntry default/waypoint spec.address: 10.244.0.1 is the node's bridge address in 10.244.0.0/24 ${why}`,
    ]);
  });
});

describe('ambient weft up: the live view', () => {
  const dump = {
    routes: [
      {
        name: 'outbound',
        virtualHosts: [
          { name: 'reviews.default.svc.cluster.local:9080', routes: [{ action: { kind: 'forward', backends: [{ cluster: 'outbound|9080||reviews-v1.default.svc.cluster.local', weight: 90 }, { cluster: 'outbound|9080||reviews-v2.default.svc.cluster.local', weight: 10 }] } }] },
          { name: 'ratings.default.svc.cluster.local:9080', routes: [{ action: { kind: 'forward', backends: [{ cluster: 'outbound|9080||ratings.default.svc.cluster.local', weight: 1 }] } }] },
        ],
      },
    ],
  };
  const state: ViewState = {
    configDir: '/x/examples/ambient',
    xds: '127.0.0.1:15012',
    monitorPort: 15014,
    logFile: '/x/.weft/up.log',
    ambient: { podCidr: '10.244.0.0/24', nodes: [{ node: 'node1', ready: true, admin: 40000 }] },
    workloads: [
      { key: 'client.default', ready: true, hasApp: true, ports: undefined, stats: { t: 0, ok: 50, errors: 0, byVersion: { v1: 45, v2: 5 } }, weights: weightsOf(dump), lastLine: undefined, ambient: { mode: 'ambient', ip: '10.244.0.10', node: 'node1', state: 'enrolled' } },
      { key: 'waypoint.default', ready: false, hasApp: false, ports: undefined, stats: undefined, weights: undefined, lastLine: undefined, ambient: { mode: 'waypoint', ip: '10.244.0.20', state: 'starting' } },
    ],
  };

  it('reads only weighted routes from a dump', () => {
    expect(Object.keys(weightsOf(dump))).toEqual(['reviews.default.svc.cluster.local:9080']);
    expect(weightsOf({})).toEqual({});
  });

  it('prints one line per second without a terminal', () => {
    expect(renderView(state, false)).toBe(
      'weft up (ambient): 1/2 workloads ready, 1/1 node proxies ready; client.default: 50 ok/s (v1=45 v2=5) 0 err/s weights[reviews-v1:90 reviews-v2:10]\n',
    );
  });

  it('shows pods, their mode, address, node and state on a terminal', () => {
    const screen = renderView(state, true).replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    expect(screen).toContain('node proxies: node1 ready (admin :40000)');
    expect(screen).toMatch(/client\.default\s+ambient\s+10\.244\.0\.10\s+node1\s+enrolled/);
    expect(screen).toMatch(/waypoint\.default\s+waypoint\s+10\.244\.0\.20\s+-\s+starting/);
    expect(screen).toContain('weights in force at the waypoint for reviews: reviews-v1 90%, reviews-v2 10%');
  });
});
