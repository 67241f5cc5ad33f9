/**
 * Kernel changes as data. Reconcilers and the CNI plugin say *what* to change as Ops; an implementation
 * carries them out: iproute2 renders each one as a batch line (render below), the netlink binding
 * encodes the same Op as a request (netlink.ts). Tests read the rendered lines.
 */

export interface VethPeer {
  name: string;
  mtu?: number;
  address?: string;
  /** Namespace the peer is created in: NAME, /run/netns/NAME or /proc/PID/ns/net. */
  netns?: string;
}

export type Op =
  | { op: 'link-add-veth'; name: string; mtu?: number; address?: string; peer: VethPeer }
  | { op: 'link-add-bridge'; name: string; mtu?: number; address?: string }
  | {
      op: 'link-add-vxlan';
      name: string;
      address: string;
      mtu: number;
      vni: number;
      local: string;
      dev: string;
      port: number;
    }
  | {
      /**
       * A persistent TUN device (layer 3, no packet-info header) that a data path process attaches its
       * queues to; the kernel makes these with ioctls on /dev/net/tun, not rtnetlink (see netlink.ts).
       */
      op: 'link-add-tun';
      name: string;
      /** One queue per attaching thread (IFF_MULTI_QUEUE). */
      multiQueue?: boolean;
      /** A virtio-net header before every packet (IFF_VNET_HDR): how offloads (TSO, checksums) pass. */
      vnetHdr?: boolean;
    }
  | {
      op: 'link-set';
      name: string;
      up?: boolean;
      master?: string;
      mtu?: number;
      /** `addrgenmode none`: no IPv6 link-local address (and no routes nobody uses). */
      noIpv6LinkLocal?: boolean;
      /** Bridge port hairpin mode. */
      hairpin?: boolean;
    }
  | { op: 'link-del'; name: string }
  /** A new name for a device; the kernel renames an up device since 6.2 (older ones answer EBUSY). */
  | { op: 'link-rename'; name: string; to: string }
  | {
      op: 'addr-add' | 'addr-replace' | 'addr-del';
      dev: string;
      cidr: string;
      broadcast?: boolean;
      /** The address's label (`dev` or `dev:suffix`): marks an address as someone's on a shared device. */
      label?: string;
    }
  | {
      op: 'route-add' | 'route-append' | 'route-replace' | 'route-del';
      /** "10.244.2.0/24", or "default". */
      dst: string;
      via?: string;
      dev?: string;
      onlink?: boolean;
      proto?: number;
    }
  | { op: 'neigh-replace'; ip: string; lladdr: string; dev: string }
  | { op: 'neigh-del'; ip: string; dev: string }
  | { op: 'fdb-replace' | 'fdb-append'; mac: string; dev: string; dst: string }
  | { op: 'fdb-del'; mac: string; dev: string; dst?: string };

export type BatchTool = 'ip' | 'bridge';

export interface Rendered {
  tool: BatchTool;
  /** One line of `ip -batch` / `bridge -batch`. */
  line: string;
}

const opt = (word: string, v: string | number | undefined) => (v === undefined ? '' : ` ${word} ${v}`);

/** The iproute2 command line of an Op (without the tool name), as `-batch` reads it. */
export function render(o: Op): Rendered {
  const ip = (line: string): Rendered => ({ tool: 'ip', line });
  switch (o.op) {
    case 'link-add-veth': {
      const p = o.peer;
      return ip(
        `link add ${o.name}${opt('mtu', o.mtu)}${opt('address', o.address)} type veth peer name ${p.name}${opt('mtu', p.mtu)}${opt('address', p.address)}${opt('netns', p.netns)}`,
      );
    }
    case 'link-add-bridge':
      return ip(`link add ${o.name}${opt('address', o.address)}${opt('mtu', o.mtu)} type bridge`);
    case 'link-add-vxlan':
      return ip(
        `link add ${o.name} address ${o.address} mtu ${o.mtu} type vxlan id ${o.vni} local ${o.local} dev ${o.dev} dstport ${o.port} nolearning`,
      );
    case 'link-add-tun':
      return ip(
        `tuntap add dev ${o.name} mode tun${o.multiQueue ? ' multi_queue' : ''}${o.vnetHdr ? ' vnet_hdr' : ''}`,
      );
    case 'link-set': {
      if (o.hairpin !== undefined)
        return ip(`link set ${o.name} type bridge_slave hairpin ${o.hairpin ? 'on' : 'off'}`);
      const parts = [
        opt('master', o.master),
        opt('mtu', o.mtu),
        o.noIpv6LinkLocal ? ' addrgenmode none' : '',
        o.up === undefined ? '' : o.up ? ' up' : ' down',
      ];
      return ip(`link set ${o.name}${parts.join('')}`);
    }
    case 'link-del':
      return ip(`link del ${o.name}`);
    case 'link-rename':
      return ip(`link set dev ${o.name} name ${o.to}`);
    case 'addr-add':
    case 'addr-replace':
    case 'addr-del':
      return ip(
        `addr ${o.op.slice(5)} ${o.cidr}${o.broadcast ? ' broadcast +' : ''} dev ${o.dev}${opt('label', o.label)}`,
      );
    case 'route-add':
    case 'route-append':
    case 'route-replace':
    case 'route-del':
      return ip(
        `route ${o.op.slice(6)} ${o.dst}${opt('via', o.via)}${opt('dev', o.dev)}${o.onlink ? ' onlink' : ''}${opt('proto', o.proto)}`,
      );
    case 'neigh-replace':
      return ip(`neigh replace ${o.ip} lladdr ${o.lladdr} dev ${o.dev} nud permanent`);
    case 'neigh-del':
      return ip(`neigh del ${o.ip} dev ${o.dev}`);
    case 'fdb-replace':
    case 'fdb-append':
      return {
        tool: 'bridge',
        line: `fdb ${o.op.slice(4)} ${o.mac} dev ${o.dev} dst ${o.dst} self permanent`,
      };
    case 'fdb-del':
      return { tool: 'bridge', line: `fdb del ${o.mac} dev ${o.dev}${opt('dst', o.dst)} self` };
  }
}
