import { listAddrs, listRoutes, type LinkWithAddrs } from '../kernel/iproute.js';
import { Cidr, parseIPv4, formatIPv4, type IPv4 } from '../util/ipv4.js';
import { WeftError } from '../util/errors.js';

/**
 * Chooses the public interface and IP the way Flannel does (reference/flannel.md §1.1 step 7):
 * each --iface (a name or an address) in order, else the default-route interface; the public IP
 * defaults to the interface's first IPv4 address.
 */
export interface PublicInterface {
  name: string;
  mtu: number;
  ip: IPv4;
  prefixes: Cidr[];
}

function ipv4Of(l: LinkWithAddrs): { ip: IPv4; prefix: Cidr }[] {
  return l.addr_info
    .filter((a) => a.family === 'inet' && a.scope !== 'host')
    .map((a) => ({ ip: parseIPv4(a.local)!, prefix: new Cidr(parseIPv4(a.local)!, a.prefixlen) }));
}

export async function selectPublicInterface(
  ifaces: readonly string[],
  publicIp?: string,
): Promise<PublicInterface> {
  const links = await listAddrs();
  let chosen: LinkWithAddrs | undefined;
  if (ifaces.length > 0) {
    // Like Flannel, the first --iface that exists and has an IPv4 address wins; the others are skipped.
    const matches = ifaces.flatMap((want) => {
      const asIp = parseIPv4(want);
      return links.filter((l) =>
        asIp === undefined ? l.ifname === want : ipv4Of(l).some((a) => a.ip === asIp),
      );
    });
    chosen = matches.find((l) => ipv4Of(l).length > 0) ?? matches[0];
    if (!chosen) {
      throw new WeftError(`none of --iface ${ifaces.join(', ')} exists in this network namespace`, {
        hint: `interfaces here: ${links.map((l) => l.ifname).join(', ')}`,
      });
    }
  } else {
    const def = (await listRoutes(['default'])).find((r) => r.dev);
    if (!def?.dev)
      throw new WeftError('no default route to choose the public interface from', {
        hint: 'pass --iface NAME',
      });
    chosen = links.find((l) => l.ifname === def.dev);
    if (!chosen)
      throw new WeftError(`default-route interface ${def.dev} not found`, { hint: 'pass --iface NAME' });
  }
  const addrs = ipv4Of(chosen);
  if (addrs.length === 0)
    throw new WeftError(`interface ${chosen.ifname} has no IPv4 address`, {
      hint: 'pass --iface with an addressed interface',
    });
  let ip = addrs[0]!.ip;
  if (publicIp !== undefined) {
    const p = parseIPv4(publicIp);
    if (p === undefined) throw new WeftError(`--public-ip: "${publicIp}" is not an IPv4 address`);
    ip = p;
  }
  return { name: chosen.ifname, mtu: chosen.mtu, ip, prefixes: addrs.map((a) => a.prefix) };
}

export const describeIface = (i: PublicInterface): string => `${i.name} ${formatIPv4(i.ip)} mtu ${i.mtu}`;
