import { nftApply, nftCounter, nftDeleteTable, nftList } from '../kernel/nft.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';

/**
 * weft's packet filtering and NAT: one nftables table, `ip weft`, that weft alone owns. The rules are
 * replaced in a single transaction (delete + create in one `nft -f`), the peer set is swapped atomically,
 * and a clean shutdown removes the table. Flannel's masquerade semantics (reference/flannel.md §5):
 * pod-to-pod traffic is never masqueraded; pods leaving the cluster network are.
 */
export const NFT_TABLE = 'weft';

export interface TrafficRules {
  network: Cidr;
  subnet: Cidr;
  ipMasq: boolean;
  /** VXLAN port to lock down to current peers (undefined: no overlay). */
  overlayPort: number | undefined;
}

function rulesetText(r: TrafficRules): string {
  const net = r.network.toString();
  const sub = r.subnet.toString();
  const lines = [
    `table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    '  set peers {',
    '    type ipv4_addr',
    '  }',
    '  counter foreign_overlay {',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    // Flannel accepts VXLAN from anyone; only current peers may inject packets into the overlay here.
    ...(r.overlayPort !== undefined
      ? [`    udp dport ${r.overlayPort} ip saddr != @peers counter name foreign_overlay drop`]
      : []),
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    ip saddr ${net} accept`,
    `    ip daddr ${net} accept`,
    '  }',
  ];
  if (r.ipMasq) {
    lines.push(
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      '    meta mark & 0x4000 == 0x4000 return',
      `    ip saddr ${sub} ip daddr ${net} return`,
      `    ip saddr ${net} ip daddr ${sub} return`,
      `    ip saddr != ${net} ip daddr ${sub} return`,
      `    ip saddr ${net} ip daddr != 224.0.0.0/4 masquerade fully-random`,
      `    ip saddr != ${net} ip daddr ${net} masquerade fully-random`,
      '  }',
    );
  }
  lines.push('}', '');
  return lines.join('\n');
}

interface NftJson {
  nftables: {
    set?: { elem?: (string | { elem?: { val?: string } })[] };
    counter?: { packets: number; bytes: number };
  }[];
}

export class TrafficManager {
  private applied: string | undefined;
  private peers: string[] | undefined;
  /** Peers known before the first rule set (the tunnel's entries: a restart, a takeover). */
  private seed: string[] = [];

  constructor(private readonly log: Logger) {}

  /**
   * Peers to admit from the first rule set on, before any plan set them: the endpoints the tunnel
   * already carries traffic with. Without them, a start after a clean stop (which removed the table)
   * or on a node taken over from Flannel would drop their packets until the first reconcile.
   */
  seedPeers(ips: string[]): void {
    if (this.applied === undefined) this.seed = ips;
  }

  /**
   * Installs the rules if they differ from what this process installed. The new table carries the
   * current peer set (at first: the old table's and the seed) and the drop counter over, so replacing
   * it (e.g. on a restart) never drops a peer's packet and never resets the counter.
   */
  async ensureRules(r: TrafficRules): Promise<void> {
    const text = rulesetText(r);
    if (text === this.applied) return;
    const existing = await this.readExisting();
    if (this.peers === undefined) this.peers = [...new Set([...existing.peers, ...this.seed])].sort();
    const counter = `counter foreign_overlay {\n    packets ${existing.packets} bytes ${existing.bytes}\n  }`;
    const elems =
      this.peers.length > 0 ? `add element ip ${NFT_TABLE} peers { ${this.peers.join(', ')} }\n` : '';
    await nftApply(text.replace(/counter foreign_overlay \{\n {2}\}/, counter) + elems);
    this.applied = text;
    this.log.info(
      { table: NFT_TABLE, ipMasq: r.ipMasq, overlayPort: r.overlayPort },
      'nftables rules installed',
    );
  }

  private async readExisting(): Promise<{ peers: string[]; packets: number; bytes: number }> {
    const [peers, counter] = await Promise.all([this.readPeers(), this.readCounter()]);
    return { peers, ...counter };
  }

  private async readPeers(): Promise<string[]> {
    const set = await nftList<NftJson>(['set', 'ip', NFT_TABLE, 'peers']);
    const peers: string[] = [];
    for (const e of set?.nftables.find((x) => x.set)?.set?.elem ?? []) {
      const v = typeof e === 'string' ? e : e.elem?.val;
      if (v) peers.push(v);
    }
    return peers.sort();
  }

  /** The drop counter alone (read every few seconds for /metrics: the peer set may be large). */
  private async readCounter(): Promise<{ packets: number; bytes: number }> {
    const c = await nftCounter('ip', NFT_TABLE, 'foreign_overlay');
    return { packets: c?.packets ?? 0, bytes: c?.bytes ?? 0 };
  }

  /** Replaces the set of addresses allowed to send to the overlay port, atomically. */
  async setPeers(ips: string[]): Promise<void> {
    const want = [...new Set(ips)].sort();
    if (this.applied === undefined || (this.peers && want.join() === this.peers.join())) return;
    const add = want.length > 0 ? `add element ip ${NFT_TABLE} peers { ${want.join(', ')} }\n` : '';
    await nftApply(`flush set ip ${NFT_TABLE} peers\n${add}`);
    this.peers = want;
  }

  /** Packets dropped because they came to the overlay port from a non-peer. */
  async foreignDropped(): Promise<number> {
    return (await this.readCounter()).packets;
  }

  async remove(): Promise<void> {
    await nftDeleteTable('ip', NFT_TABLE);
    this.applied = undefined;
    this.peers = undefined;
    this.seed = [];
  }
}
