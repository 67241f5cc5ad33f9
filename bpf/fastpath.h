/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * weft's BPF fast path: the layout of its maps, shared by the programs (bpf/fastpath.c) and their
 * loader (native/fastpath/weft-fastpath.c). Bump WEFT_FP_ABI when a layout changes: a loader finds
 * and reuses only objects of its own ABI (and of the same object file, by tag).
 */
#ifndef WEFT_FASTPATH_H
#define WEFT_FASTPATH_H

#define WEFT_FP_ABI 2

/* What happened to a packet, one counter each (per CPU: packets and bytes). */
enum weft_fp_counter {
	WEFT_FAST_LOCAL = 0, /* pod -> pod on this node: bpf_redirect_peer */
	WEFT_FAST_VXLAN,     /* pod -> remote pod: VXLAN-encapsulated here, out of the underlay */
	WEFT_FAST_ROUTED,    /* pod -> remote pod: bpf_redirect_neigh on the underlay */
	WEFT_FAST_IN,        /* remote pod -> pod on this node: bpf_redirect_peer */
	WEFT_SLOW_NOT_IPV4,  /* ARP, IPv6, ... */
	WEFT_SLOW_UNKNOWN,   /* a destination the maps do not know: service VIP, node, outside */
	WEFT_SLOW_NAT,       /* conntrack holds a NAT'd flow for it: its (un-)NAT is the stack's */
	WEFT_SLOW_PROTO,     /* not TCP, UDP or ICMP echo; a fragment; IP options */
	WEFT_SLOW_TTL,       /* TTL would expire: the stack sends the ICMP error */
	WEFT_SLOW_MTU,       /* too big for the next device: the stack fragments or signals */
	WEFT_SLOW_OTHER,     /* source outside the node's subnet or no peer's, a MAC the pod did not aim at */
	WEFT_NOT_POD,        /* a packet on a node device that is not for a local pod */
	WEFT_FAST_DECAP,     /* remote pod -> pod on this node: VXLAN-decapsulated here, bpf_redirect_peer */
	WEFT_SLOW_VXLAN_GSO, /* a GSO packet of VXLAN datagrams, or CE-marked: the VXLAN device decapsulates */
	WEFT_COUNTERS
};

struct weft_counter {
	__u64 packets;
	__u64 bytes;
};

/* weft_pods: key = pod IPv4 address (network order). */
struct weft_pod {
	__u32 ifindex; /* host end of the pod's veth */
	__u8 mac[6];   /* the pod's MAC */
	__u8 gw_mac[6]; /* source MAC of routed deliveries: the pod's gateway (the CNI bridge) */
};

/* weft_peers: longest-prefix match on the peers' pod subnets. */
struct weft_peer_key {
	__u32 prefixlen;
	__u32 addr; /* network order */
};

enum weft_peer_kind {
	/*
	 * Encapsulated by the program as the node's VXLAN device would (Flannel's wire format: VNI and
	 * port of weft_cfg, inner frame to the peer's VTEP MAC), sent out of the underlay ifindex to
	 * remote with bpf_redirect_neigh (the kernel's route and neighbour for the outer header).
	 */
	WEFT_PEER_VXLAN = 1,
	WEFT_PEER_ROUTED = 2, /* bpf_redirect_neigh to nexthop on ifindex */
};

struct weft_peer {
	__u32 ifindex;
	__u32 kind;
	__u32 nexthop; /* routed: network order */
	__u32 remote;  /* VXLAN: the peer's VTEP address (its public IP), network order */
	__u8 dmac[6];  /* VXLAN: the peer's VTEP MAC */
	__u8 smac[6];  /* VXLAN: this node's VTEP MAC */
};

/*
 * weft_cfg[0]: the node's pod subnet, and who this object belongs to. The loader finds a network
 * namespace's objects by scanning maps named weft_cfg for its netns cookie; the program reads this
 * map, so it lives exactly as long as the program is attached somewhere.
 */
struct weft_cfg {
	__u32 subnet; /* network order */
	__u32 mask;   /* network order */
	__u32 retired; /* set before detaching: nothing may attach this object any more */
	__u32 abi;
	__u64 netns_cookie;
	__u64 tag; /* hash of the object file */
	__u32 map_ids[3]; /* weft_pods, weft_peers, weft_stats */
	__u32 prog_id;    /* weft_fastpath */
	/* The node's VXLAN endpoint (vxlan_vni 0: none, nothing is decapsulated here). */
	__u32 vxlan_local; /* network order */
	__u32 vxlan_vni;
	__u16 vxlan_port;  /* network order */
	__u8 vtep_mac[6];
};

#endif
