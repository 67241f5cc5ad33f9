import { listAddrs, listRoutes, type LinkWithAddrs } from '../kernel/iproute.js';
import { routeGet } from '../kernel/route-get.js';
import { Cidr, parseIPv4, formatIPv4, type IPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';

/**
 * Chooses the public interface and IP with flanneld's precedence (reference/flannel.md §1.1 step 7;
 * flannel's LookupExtIface): each --iface (a name, or an address: that address is then the IP) in order;
 * else each --iface-regex in order, matched (unanchored) first against every interface's IPv4
 * addresses in interface order — the first matching address wins — then against the names; else
 * --iface-can-reach, the interface and source address of the kernel's route to that address; else,
 * when none of these was given, the default-route interface. An interface chosen by name or route
 * needs an IPv4 address; the public IP defaults to the chosen address (--public-ip overrides it).
 */
export interface PublicInterface {
  name: string;
  mtu: number;
  ip: IPv4;
  prefixes: Cidr[];
}

export interface IfaceSelection {
  ifaces: readonly string[];
  ifaceRegex?: readonly string[] | undefined;
  ifaceCanReach?: string | undefined;
}

interface Choice {
  link: LinkWithAddrs;
  /** The address that selected it (an --iface address, a regex match, the route's source). */
  ip?: IPv4;
}

function ipv4Of(l: LinkWithAddrs): { ip: IPv4; prefix: Cidr }[] {
  return l.addr_info
    .filter((a) => a.family === 'inet' && a.scope !== 'host')
    .map((a) => ({ ip: parseIPv4(a.local)!, prefix: new Cidr(parseIPv4(a.local)!, a.prefixlen) }));
}

const addressed = (l: LinkWithAddrs | undefined): Choice | undefined =>
  l && ipv4Of(l).length > 0 ? { link: l } : undefined;

function byIface(links: LinkWithAddrs[], want: string): Choice | undefined {
  const asIp = parseIPv4(want);
  if (asIp === undefined) return addressed(links.find((l) => l.ifname === want));
  const link = links.find((l) => ipv4Of(l).some((a) => a.ip === asIp));
  return link && { link, ip: asIp };
}

function byRegex(links: LinkWithAddrs[], source: string): Choice | undefined {
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (e) {
    throw new WeftError(
      `--iface-regex: "${source}" is not a valid regular expression: ${(e as Error).message}`,
    );
  }
  for (const link of links) {
    const hit = ipv4Of(link).find((a) => re.test(formatIPv4(a.ip)));
    if (hit) return { link, ip: hit.ip };
  }
  return addressed(links.find((l) => re.test(l.ifname)));
}

async function byRoute(links: LinkWithAddrs[], target: string): Promise<Choice | undefined> {
  if (parseIPv4(target) === undefined)
    throw new WeftError(`--iface-can-reach: "${target}" is not an IPv4 address`);
  const route = await routeGet(target);
  const link = links.find((l) => l.ifname === route?.dev);
  if (!link) return undefined;
  const src = route?.prefsrc !== undefined ? parseIPv4(route.prefsrc) : undefined;
  return src !== undefined && ipv4Of(link).some((a) => a.ip === src) ? { link, ip: src } : addressed(link);
}

async function byDefaultRoute(links: LinkWithAddrs[]): Promise<Choice> {
  const def = (await listRoutes(['default'])).find((r) => r.dev);
  if (!def?.dev)
    throw new WeftError('no default route to choose the public interface from', {
      hint: 'pass --iface, --iface-regex or --iface-can-reach',
    });
  const link = links.find((l) => l.ifname === def.dev);
  if (!link)
    throw new WeftError(`default-route interface ${def.dev} not found`, { hint: 'pass --iface NAME' });
  if (ipv4Of(link).length === 0)
    throw new WeftError(`interface ${link.ifname} has no IPv4 address`, {
      hint: 'pass --iface with an addressed interface',
    });
  return { link };
}

async function choose(links: LinkWithAddrs[], sel: IfaceSelection): Promise<Choice> {
  const regexes = sel.ifaceRegex ?? [];
  if (sel.ifaces.length === 0 && regexes.length === 0 && !sel.ifaceCanReach) return byDefaultRoute(links);
  for (const want of sel.ifaces) {
    const c = byIface(links, want);
    if (c) return c;
  }
  for (const re of regexes) {
    const c = byRegex(links, re);
    if (c) return c;
  }
  const c = sel.ifaceCanReach ? await byRoute(links, sel.ifaceCanReach) : undefined;
  if (c) return c;
  const asked = [
    ...sel.ifaces.map((i) => `--iface ${i}`),
    ...regexes.map((r) => `--iface-regex ${r}`),
    ...(sel.ifaceCanReach ? [`--iface-can-reach ${sel.ifaceCanReach}`] : []),
  ];
  throw new WeftError(`no interface with an IPv4 address matches ${asked.join(', ')}`, {
    hint: `interfaces here: ${links
      .map(
        (l) =>
          `${l.ifname} [${ipv4Of(l)
            .map((a) => formatIPv4(a.ip))
            .join(' ')}]`,
      )
      .join(', ')}`,
  });
}

export async function selectPublicInterface(
  sel: IfaceSelection,
  publicIp?: string,
): Promise<PublicInterface> {
  const links = await listAddrs();
  const { link, ip: selected } = await choose(links, sel);
  const addrs = ipv4Of(link);
  let ip = selected ?? addrs[0]!.ip;
  if (publicIp !== undefined) {
    const p = parseIPv4(publicIp);
    if (p === undefined) throw new WeftError(`--public-ip: "${publicIp}" is not an IPv4 address`);
    ip = p;
  }
  return { name: link.ifname, mtu: link.mtu, ip, prefixes: addrs.map((a) => a.prefix) };
}

export const describeIface = (i: PublicInterface): string => `${i.name} ${formatIPv4(i.ip)} mtu ${i.mtu}`;
