/**
 * The talk ("Optimizing and Extending Overlay Networking for Containers", OpenStack Summit Tokyo
 * 2015): its measured figures and its claims, as the demo puts them beside what it measures here.
 * Sources: Launchpad bug #1518605 (the figures, "presented at a talk at the Tokyo Summit, 2015"),
 * Magnum commit 14909f09 (host-gw and the address pairs), reference/openstack-neutron.md.
 */

/** The talk's figures on 10 GbE, iperf between pods (or VMs) on two hosts. */
export interface TalkFigure {
  gbps: number;
  /** Of VM to VM, as the bug states it. */
  ratio: number;
  what: string;
}

export const TALK_SOURCE =
  'Launchpad bug #1518605 (Ton Ngo), data presented at the Tokyo Summit 2015; 10 GbE';

export const TALK_FIGURES: Record<'native' | 'host-gw+pairs' | 'vxlan' | 'udp', TalkFigure> = {
  native: { gbps: 7.74, ratio: 1, what: 'VM to VM (Neutron)' },
  'host-gw+pairs': { gbps: 6.0, ratio: 6.0 / 7.74, what: 'Flannel host-gw, pods on different hosts' },
  vxlan: { gbps: 1.71, ratio: 1.71 / 7.74, what: 'Flannel VXLAN' },
  udp: { gbps: 0.385, ratio: 0.385 / 7.74, what: 'Flannel UDP (Magnum’s default then)' },
};

/** The talk's claims the demo checks, in its order. */
export const TALK_CLAIMS = [
  {
    id: 'overhead',
    claim: 'An overlay on an overlay costs most of the bandwidth: VXLAN 22 %, UDP 5 % of VM to VM',
    source: 'bug #1518605',
  },
  {
    id: 'host-gw',
    claim: 'host-gw with the address pairs recovers most of it (78 %), on one Neutron network',
    source: 'bug #1518605; Magnum 14909f09 (allowed_address_pairs on every node port)',
  },
  {
    id: 'port-security',
    claim: "Without the pairs, Neutron's port security drops host-gw's pod traffic",
    source: 'Magnum 14909f09: "relaxing the minion IP spoofing rules"',
  },
  {
    id: 'same-l2',
    claim: 'host-gw needs every node on one L2 network',
    source: 'Magnum user guide 06a28eb7; bug #1518605 comment ("all the minions … on one Neutron network")',
  },
  {
    id: 'mtu',
    claim: 'Double encapsulation shrinks the pod MTU to 1400 on a 1450 tenant network',
    source: 'Flannel vxlan encapOverhead = 50; Neutron net-mtu',
  },
  {
    id: 'outside',
    claim: 'Pods behind an overlay are invisible to Neutron: hosts outside the cluster cannot reach them',
    source:
      'reference/openstack-neutron.md §1.3 (inference from the talk’s "limitations from the container perspective")',
  },
  {
    id: 'neutron',
    claim:
      'Letting Neutron route pod subnets (address pairs + router routes) removes the overlay and these limits',
    source: 'the talk’s mitigation; kubernetes#32663 (Angus Lees): "removes the need for flannel/etc"',
  },
] as const;

export type ClaimId = (typeof TALK_CLAIMS)[number]['id'];
