import { run } from '../util/exec.js';
import { CommandError } from '../util/errors.js';

/**
 * `ip route get`: the route the kernel would use towards an address, with the interface and the source
 * address it would pick. Its own file until the unified kernel layer (issue 9) absorbs it.
 */
export interface RouteLookup {
  dev: string;
  prefsrc?: string;
  gateway?: string;
}

/** The route to `ip`, or undefined when there is none (unreachable, no route). */
export async function routeGet(ip: string): Promise<RouteLookup | undefined> {
  const r = await run('ip', ['-j', 'route', 'get', ip], { allowFailure: true });
  if (r.code !== 0) {
    if (/unreachable|No route|Network is unreachable/i.test(r.stderr)) return undefined;
    throw new CommandError(`ip -j route get ${ip}`, r.code, r.stderr);
  }
  const [route] = JSON.parse(r.stdout || '[]') as RouteLookup[];
  return route?.dev ? route : undefined;
}
