import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { WeftError } from './errors.js';

/**
 * Loads a Node-API addon that scripts/post-build.mjs built from native/ (next to the module that uses
 * it); a missing one (no C compiler or Node headers at build time) is a WeftError naming what is lost.
 */
export function loadAddon<T>(url: URL, what: string): T {
  const file = url.pathname;
  if (!existsSync(file)) {
    throw new WeftError(`${file} is missing (${what})`, {
      hint: 'build weft with a C compiler and the Node.js headers: npm run build',
    });
  }
  return createRequire(import.meta.url)(file) as T;
}
