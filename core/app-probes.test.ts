// The app-probe contract between injection and the proxy: what parses, and errors that name
// where the JSON came from, the probe's path, the field and the value.
import { describe, expect, it } from 'vitest';
import { parseAppProbes } from './app-probes.js';

describe('parseAppProbes', () => {
  it('reads every kind, with defaults for what the kubelet defaults', () => {
    const probes = parseAppProbes(
      JSON.stringify({
        '/app-health/web/readyz': { httpGet: { port: 8080 } },
        '/app-health/web/livez': { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
        '/app-health/web/startupz': { grpc: { port: 9090 } },
      }),
      'env',
    );
    expect(Object.fromEntries(probes)).toEqual({
      '/app-health/web/readyz': { httpGet: { port: 8080, path: '/', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 },
      '/app-health/web/livez': { tcpSocket: { port: 8080 }, timeoutSeconds: 2 },
      '/app-health/web/startupz': { grpc: { port: 9090, service: '' }, timeoutSeconds: 1 },
    });
  });

  const bad: [string, string, string][] = [
    ['not JSON', '{', 'WEFT_APP_PROBES: not JSON: '],
    ['a list', '[]', 'WEFT_APP_PROBES: top level: must be an object'],
    ['a path outside /app-health', '{"/healthz/ready":{"tcpSocket":{"port":1}}}', 'WEFT_APP_PROBES: "/healthz/ready": must be /app-health/'],
    ['no action', '{"/app-health/web/livez":{"timeoutSeconds":1}}', 'WEFT_APP_PROBES: /app-health/web/livez: must have exactly one of httpGet, tcpSocket, grpc (has none)'],
    ['two actions', '{"/app-health/web/livez":{"tcpSocket":{"port":1},"grpc":{"port":2}}}', '(has tcpSocket, grpc)'],
    ['a named port (injection resolves them)', '{"/app-health/web/livez":{"tcpSocket":{"port":"http"}}}', 'WEFT_APP_PROBES: /app-health/web/livez.tcpSocket.port: must be a port number, got "http"'],
    ['port 0', '{"/app-health/web/livez":{"httpGet":{"port":0}}}', '/app-health/web/livez.httpGet.port: must be a port number, got 0'],
    ['a relative path', '{"/app-health/web/livez":{"httpGet":{"port":80,"path":"ready"}}}', '/app-health/web/livez.httpGet.path: must start with "/", got "ready"'],
    ['an unknown scheme', '{"/app-health/web/livez":{"httpGet":{"port":80,"scheme":"FTP"}}}', '/app-health/web/livez.httpGet.scheme: must be HTTP or HTTPS, got "FTP"'],
    ['a zero timeout', '{"/app-health/web/livez":{"tcpSocket":{"port":80},"timeoutSeconds":0}}', '/app-health/web/livez.timeoutSeconds: must be a positive number, got 0'],
  ];
  it.each(bad)('refuses %s, saying where and why', (_name, json, message) => {
    expect(() => parseAppProbes(json, 'WEFT_APP_PROBES')).toThrow(message);
  });
});
