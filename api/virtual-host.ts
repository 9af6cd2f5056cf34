// VHDS: VirtualHost → VirtualHost, one resource per virtual host of a route configuration that
// has `vhds`. Its resource name is `<route configuration>/<virtual host>` (the `name` the control
// plane sends); the decoded value is named `<virtual host>`, as it would be inline, and the proxy
// files it under that route configuration (proxy/route/assemble.ts). Validated like an inline one.
import type { VirtualHost } from './domain.js';
import { Problems, deepEqual, result, str, unpackChecked } from './matchers.js';
import type { ResourceType } from './resource.js';
import { decodeStandaloneVirtualHost } from './route-config.js';
import { TypeUrl } from './types.js';

/** The route configuration a VHDS resource belongs to: the part of its name before the first `/`. */
export function vhdsOwner(resourceName: string): string | undefined {
  const slash = resourceName.indexOf('/');
  return slash > 0 ? resourceName.slice(0, slash) : undefined;
}

export const virtualHostType: ResourceType<VirtualHost> = {
  typeUrl: TypeUrl.VirtualHost,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.VirtualHost, p);
    if (!plain) return result<VirtualHost>(undefined, undefined, p);
    const name = str(plain, 'name');
    if (name && vhdsOwner(name) === undefined) p.add('name', `a VHDS virtual host is named <route configuration>/<virtual host>, got ${JSON.stringify(name)}`);
    const vh = decodeStandaloneVirtualHost(plain, p);
    return result(name, vh && name ? { ...vh, name: name.slice(name.indexOf('/') + 1) } : vh, p);
  },
  references: () => [],
  equals: (a, b) => deepEqual(a, b),
};
