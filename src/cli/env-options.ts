import type { Command, Option } from 'commander';
import { WeftError } from '../util/errors.js';

/**
 * Options from the environment, as flanneld takes them (`flagutil.SetFlagsFromEnv(…, "FLANNELD")`):
 * every `--foo-bar` also as PREFIX_FOO_BAR, for each prefix in order. Precedence: a flag on the command
 * line, then the first prefix that sets it (weft's WEFT_ before flanneld's FLANNELD_), then the default.
 * So a unit or manifest written for flanneld works unchanged, and WEFT_ can override it.
 */
export function envName(prefix: string, opt: Option): string {
  return `${prefix}_${opt.long!.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;
}

function parseBool(name: string, v: string): boolean {
  if (/^(1|t|true|yes|on)$/i.test(v)) return true;
  if (/^(0|f|false|no|off)$/i.test(v)) return false;
  throw new WeftError(`${name}="${v}" is not a boolean`, { hint: 'use true or false' });
}

/** Sets every option of `cmd` not given on the command line from the environment; a preAction hook. */
export function applyEnvOptions(cmd: Command, prefixes: readonly string[], env = process.env): void {
  for (const opt of cmd.options) {
    if (!opt.long) continue;
    const key = opt.attributeName();
    if (cmd.getOptionValueSource(key) === 'cli') continue;
    const found = prefixes
      .map((p) => [envName(p, opt), env[envName(p, opt)]] as const)
      .find(([, v]) => v !== undefined);
    if (!found) continue;
    const [name, raw] = found as [string, string];
    let value: unknown;
    if (opt.negate) value = !parseBool(name, raw);
    else if (opt.isBoolean()) value = parseBool(name, raw);
    else {
      if (opt.argChoices && !opt.argChoices.includes(raw))
        throw new WeftError(`${name}="${raw}" is not one of ${opt.argChoices.join(', ')}`);
      // Repeatable options (a parser that accumulates) start from empty, not from their default.
      value = opt.parseArg ? opt.parseArg(raw, Array.isArray(opt.defaultValue) ? [] : undefined) : raw;
    }
    cmd.setOptionValueWithSource(key, value, 'env');
  }
}

export const ENV_HELP = (prefixes: readonly string[]): string =>
  `\nEvery option can also be set in the environment as ${prefixes.map((p) => `${p}_<OPTION>`).join(' or ')}` +
  ` (e.g. ${prefixes.map((p) => `${p}_ETCD_ENDPOINTS`).join(', ')}; --no-x as ${prefixes[0]}_NO_X=true).\n` +
  `Precedence: the flag, then ${prefixes.map((p) => `${p}_`).join(', then ')}, then the default.\n`;
