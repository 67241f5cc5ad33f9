import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../util/errors.js';

/**
 * `weft install-cni`: puts weft-cni on a host, as kube-flannel's init containers do for flannel's
 * plugin: the native shim as <dir>/weft-cni, the Node plugin it falls back to (main.js and exactly the
 * modules it imports) under <dir>/weft-cni.d/, and the network configuration list as
 * <conf-dir>/10-weft.conflist. Every file is written to a temporary name and renamed into place (a
 * runtime never runs a half-copied plugin or reads half a conflist), and one that already has the
 * content is left alone: running it again changes nothing.
 */
export interface InstallCniOptions {
  dir: string;
  confDir: string;
  /** Conflist file name in confDir. */
  confName?: string;
  /** The network name in the conflist. */
  network?: string;
  /** subnet.env the plugin reads (the agent's --subnet-file). */
  subnetFile?: string;
}

export interface Installed {
  path: string;
  changed: boolean;
}

const CNI_DIST = fileURLToPath(new URL('../cni/', import.meta.url));
const DIST = resolve(CNI_DIST, '..', '..');

/** The conflist: weft-cni for the pod's interface and address, portmap for hostPort (as kube-flannel's). */
export function weftConflist(o: { network?: string; subnetFile?: string } = {}): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: o.network ?? 'weft',
    plugins: [
      {
        type: 'weft-cni',
        isDefaultGateway: true,
        hairpinMode: true,
        ...(o.subnetFile !== undefined && { subnetFile: o.subnetFile }),
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** main.js and every module it imports, transitively (relative imports only; Node built-ins skipped). */
export function pluginModules(entry = join(CNI_DIST, 'main.js')): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.'))
        throw new WeftError(
          `${relative(DIST, file)} imports the package "${spec}": the plugin cannot be installed on its own`,
        );
      visit(resolve(dirname(file), spec));
    }
  };
  visit(entry);
  return [...seen].sort();
}

/** Writes `data` to `path` through a temporary file and a rename, unless it holds `data` already. */
function place(path: string, data: Buffer, mode: number): Installed {
  if (existsSync(path) && readFileSync(path).equals(data)) {
    chmodSync(path, mode);
    return { path, changed: false };
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${path.split('/').pop()}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new WeftError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      hint: 'run as root, with --dir and --conf-dir on the host',
    });
  }
  return { path, changed: true };
}

export function installCni(o: InstallCniOptions): Installed[] {
  const shim = join(CNI_DIST, 'weft-cni');
  if (!existsSync(shim))
    throw new WeftError(`${shim} is missing`, { hint: 'build weft with a C compiler first: npm run build' });
  const out: Installed[] = [];
  // The plugin's modules first, the shim and the conflist last: a runtime that sees the conflist finds
  // everything it names in place.
  const pluginDir = join(o.dir, 'weft-cni.d');
  for (const f of pluginModules()) {
    out.push(
      place(join(pluginDir, relative(DIST, f)), readFileSync(f), f.endsWith('main.js') ? 0o755 : 0o644),
    );
  }
  out.push(place(join(pluginDir, 'package.json'), Buffer.from('{ "type": "module" }\n'), 0o644));
  out.push(place(join(o.dir, 'weft-cni'), readFileSync(shim), 0o755));
  const conf = JSON.stringify(weftConflist(o), null, 2) + '\n';
  out.push(place(join(o.confDir, o.confName ?? '10-weft.conflist'), Buffer.from(conf), 0o644));
  return out;
}

export function runInstallCni(o: InstallCniOptions): void {
  const done = installCni(o);
  for (const f of done.filter((d) => d.path.endsWith('weft-cni') || d.path.endsWith('.conflist')))
    process.stdout.write(`${f.changed ? 'installed' : 'unchanged'} ${f.path}\n`);
  const modules = done.filter((d) => d.path.includes('/weft-cni.d/'));
  process.stdout.write(
    `${modules.some((m) => m.changed) ? 'installed' : 'unchanged'} ${join(o.dir, 'weft-cni.d')} (${modules.length} files)\n`,
  );
}
