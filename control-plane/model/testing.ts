// Test support: builds a Model from inline YAML, failing loudly on any config problem, so that
// table tests can state their input the way a user writes it.
import { parseAllDocuments } from 'yaml';
import { formatProblem } from './types.js';
import { buildModel, type Model } from './model.js';
import { parseObject } from './parse.js';
import type { ConfigObject } from './types.js';

export function objectsFromYaml(yaml: string): ConfigObject[] {
  const out: ConfigObject[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    if (doc.errors.length > 0) throw new Error(`bad YAML in test: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const res = parseObject(value);
    if (!res.ok) throw new Error(`invalid object in test: ${res.problems.map((p) => formatProblem(p)).join('; ')}`);
    out.push(res.object);
  }
  return out;
}

export function modelFromYaml(...yaml: string[]): Model {
  return buildModel(yaml.flatMap(objectsFromYaml));
}
