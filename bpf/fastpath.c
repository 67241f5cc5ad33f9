// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * weft's BPF fast path (issue 15): a tcx ingress program that sends pod-to-pod packets straight to
 * their next device, skipping the bridge, netfilter and conntrack.
 *
 *   from a pod     (on the host end of every pod veth) to a local pod (bpf_redirect_peer), to a peer's
 *                  pod subnet over VXLAN (encapsulated here as the VXLAN device would, then
 *                  bpf_redirect_neigh on the underlay) or routed (bpf_redirect_neigh to the peer's node)
 *   from the net   (on the underlay interface and the VXLAN device) to a local pod (bpf_redirect_peer),
 *                  a VXLAN datagram from a known peer decapsulated here first
 *
 * Encapsulating and decapsulating here, rather than in the VXLAN device, is what makes the vxlan
 * fast path beat the kernel's: the outer packet skips the device's route and FDB lookups, the UDP
 * socket, the GRO cell and netfilter with conntrack on both nodes. The wire format is the device's
 * (so a node without the fast path, or Flannel itself, is the same peer); the device stays for the
 * packets the program leaves to the stack.
 *
 * Everything the maps do not name (service VIPs, the node, the outside, ARP, ...) and every flow that
 * conntrack knows as NAT'd (a service's DNAT reply, a NodePort) goes on to the normal stack
 * unchanged (TC_ACT_UNSPEC: the next program, then the stack). Routed deliveries decrement the TTL
 * like a router (with the checksum); bridged ones (same node, same subnet, aimed at the pod's MAC)
 * do not, as a bridge would not. Packets that would not fit the next device go the slow way, so the
 * stack fragments them or sends the ICMP error.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fastpath.h"

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define AF_INET 2
#define PACKET_HOST 0
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ETH_HLEN 14
#define IPV4_MIN_MTU 68
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define IP_DF 0x4000
#define VXLAN_FLAG_VNI 0x08000000 /* the I flag: the only one Flannel's (and Linux's) VXLAN sets */
#define BPF_F_ADJ_ROOM_ENCAP_L2(len) (((__u64)(len)&BPF_ADJ_ROOM_ENCAP_L2_MASK) << BPF_ADJ_ROOM_ENCAP_L2_SHIFT)
/*
 * The source port Linux's VXLAN picks (udp_flow_src_port over the default ip_local_port_range), so
 * that a flow keeps its port, its NIC queue and its ECMP path when some of its packets take the
 * stack's way.
 */
#define VXLAN_SPORT_MIN 32768
#define VXLAN_SPORT_MAX 60999

/* What a VXLAN datagram adds in front of the inner IP packet, after the outer Ethernet header. */
struct vxlan_encap {
	struct iphdr ip;
	struct udphdr udp;
	__be32 vx_flags;
	__be32 vx_vni;
	struct ethhdr eth;
} __attribute__((packed));
#define VXLAN_ENCAP_LEN ((int)sizeof(struct vxlan_encap)) /* 50 */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct weft_pod);
} weft_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weft_peer_key);
	__type(value, struct weft_peer);
} weft_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weft_cfg);
} weft_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WEFT_COUNTERS);
	__type(key, __u32);
	__type(value, struct weft_counter);
} weft_stats SEC(".maps");

/*
 * What conntrack said about a TCP flow (WEFT_SLOW_NAT or 0), so that the lookup (the costliest step
 * of the program: a cold hash bucket per packet, measured ~250 ns) runs once per flow direction rather
 * than per packet. Sound for TCP only: a connection's NAT is decided by its first packet and never
 * changes, and a connection that reuses a flow's addresses and ports starts with a SYN, which (like
 * FIN and RST) always asks conntrack again. UDP has no such start: it asks every time.
 */
struct weft_flow_key {
	__u32 saddr;
	__u32 daddr;
	__be16 sport;
	__be16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct weft_flow_key);
	__type(value, __u32);
} weft_flows SEC(".maps");

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					 __u32 tuple__sz, struct bpf_ct_opts *opts,
					 __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

static __always_inline int pass(struct __sk_buff *skb, __u32 what)
{
	struct weft_counter *c = bpf_map_lookup_elem(&weft_stats, &what);

	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	return TC_ACT_UNSPEC;
}

static __always_inline void count(struct __sk_buff *skb, __u32 what)
{
	pass(skb, what);
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

/*
 * 0: the fast path may take the packet. WEFT_SLOW_*: why not. A flow conntrack knows with NAT
 * (either direction) stays on the stack, which un-NATs its replies; a flow it does not know, or
 * knows without NAT, is plain pod-to-pod traffic.
 */
static __always_inline __u32 flow_verdict(struct __sk_buff *skb, struct iphdr *ip, void *end)
{
	if (ip->ihl != 5 || (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		return WEFT_SLOW_PROTO;
	if (ip->protocol == IPPROTO_ICMP) {
		struct icmphdr *ic = (void *)(ip + 1);

		if ((void *)(ic + 1) > end)
			return WEFT_SLOW_PROTO;
		/* ICMP errors carry a header that NAT may have to rewrite: the stack does that. */
		return ic->type == ICMP_ECHO || ic->type == ICMP_ECHOREPLY ? 0 : WEFT_SLOW_PROTO;
	}
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return WEFT_SLOW_PROTO;
	__be16 *ports = (void *)(ip + 1);

	if ((void *)(ports + 2) > end)
		return WEFT_SLOW_PROTO;
	struct weft_flow_key fk = {
		.saddr = ip->saddr, .daddr = ip->daddr, .sport = ports[0], .dport = ports[1]
	};
	int tcp = ip->protocol == IPPROTO_TCP;

	if (tcp) {
		__u8 *flags = (__u8 *)ports + 13;

		if ((void *)(flags + 1) > end)
			return WEFT_SLOW_PROTO;
		if (!(*flags & (TCP_FLAG_FIN | TCP_FLAG_SYN | TCP_FLAG_RST))) {
			__u32 *known = bpf_map_lookup_elem(&weft_flows, &fk);

			if (known)
				return *known;
		}
	}
	struct bpf_sock_tuple t = {};
	struct bpf_ct_opts opts = {};

	t.ipv4.saddr = ip->saddr;
	t.ipv4.daddr = ip->daddr;
	t.ipv4.sport = ports[0];
	t.ipv4.dport = ports[1];
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = ip->protocol;
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, &t, sizeof(t.ipv4), &opts, sizeof(opts));

	__u32 verdict = 0;

	if (ct) {
		verdict = ct->status & IPS_NAT_MASK ? WEFT_SLOW_NAT : 0;
		bpf_ct_release(ct);
	}
	if (tcp)
		bpf_map_update_elem(&weft_flows, &fk, &verdict, BPF_ANY);
	return verdict;
}

/*
 * 1 when the packet, `grow` bytes longer (an encapsulation) or shorter (a decapsulation), fits the
 * next device; a GSO packet: each of the segments it will be cut into (bpf_check_mtu passes any GSO
 * packet when it is given a length change). A frame no longer than the smallest IPv4 MTU (68) fits
 * any device: pure ACKs skip the helper.
 */
static __always_inline int fits(struct __sk_buff *skb, struct iphdr *ip, void *end, __u32 ifindex,
				__s32 grow)
{
	__u32 mtu = 0;

	if (skb->len + grow <= ETH_HLEN + IPV4_MIN_MTU)
		return 1;
	if (bpf_check_mtu(skb, ifindex, &mtu, grow, 0) != BPF_MTU_CHK_RET_SUCCESS)
		return 0;
	if (!skb->gso_size)
		return 1;
	__u32 l4 = sizeof(struct udphdr);

	if (ip->protocol == IPPROTO_TCP) {
		__u8 *doff = (__u8 *)(ip + 1) + 12;

		if ((void *)(doff + 1) > end)
			return 0;
		l4 = (*doff >> 4) * 4;
	}
	/* `ip` is the packet that will be cut: an encapsulation adds its headers to every segment. */
	return sizeof(*ip) + l4 + skb->gso_size + (grow > 0 ? grow : 0) <= mtu;
}

/*
 * 0 when the packet may go straight to `ifindex` (a routed hop: its TTL must allow one more), `grow`
 * bytes longer or shorter.
 */
static __always_inline __u32 fast_verdict(struct __sk_buff *skb, struct iphdr *ip, void *end,
					  __u32 ifindex, int routed, __s32 grow)
{
	__u32 why = flow_verdict(skb, ip, end);

	if (why)
		return why;
	if (routed && ip->ttl <= 1)
		return WEFT_SLOW_TTL;
	if (!fits(skb, ip, end, ifindex, grow))
		return WEFT_SLOW_MTU;
	return 0;
}

/* What a router does to the header: TTL - 1, checksum updated incrementally (RFC 1624). */
static __always_inline void decrement_ttl(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
}

/* RFC 1071 over an IPv4 header without options. */
static __always_inline __u16 ip_checksum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

#pragma clang loop unroll(full)
	for (int i = 0; i < (int)sizeof(*ip) / 2; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/*
 * To a pod of a VXLAN peer: the datagram the VXLAN device would send (outer source port from the
 * flow's hash, TTL 64, ECN copied, no DF, UDP checksum 0, as Linux's VXLAN and Flannel send it),
 * built in place and handed to the underlay with the kernel's route and neighbour for the peer's
 * node. A GSO packet stays one: its type says UDP tunnel, the underlay device (or the stack in
 * software) cuts it into datagrams that each carry their own copy of these headers.
 */
static __always_inline int to_vxlan_peer(struct __sk_buff *skb, struct iphdr *ip, void *end,
					 struct weft_peer *peer, struct weft_cfg *cfg)
{
	__u32 why;

	if (!cfg->vxlan_vni)
		return pass(skb, WEFT_SLOW_OTHER);
	why = fast_verdict(skb, ip, end, peer->ifindex, 1, VXLAN_ENCAP_LEN);
	if (why)
		return pass(skb, why);
	/* The outer length must be the packet's (a GSO packet crosses veths whole and is trimmed to it). */
	if (skb->len + VXLAN_ENCAP_LEN - ETH_HLEN > 0xffff)
		return pass(skb, WEFT_SLOW_MTU);
	__u8 ecn = ip->tos & 3;
	struct iphdr oip = {
		.version = 4,
		.ihl = 5,
		.tos = ecn == 3 ? 2 : ecn, /* RFC 6040: CE inside is ECT(0) outside */
		.tot_len = bpf_htons(skb->len + VXLAN_ENCAP_LEN - ETH_HLEN),
		.id = bpf_get_prandom_u32(),
		.ttl = 64,
		.protocol = IPPROTO_UDP,
		.saddr = cfg->vxlan_local,
		.daddr = peer->remote,
	};
	oip.check = ip_checksum(&oip);
	__u32 hash = bpf_get_hash_recalc(skb);

	hash ^= hash << 16;
	__be16 sport =
		bpf_htons((((__u64)hash * (VXLAN_SPORT_MAX - VXLAN_SPORT_MIN)) >> 32) + VXLAN_SPORT_MIN);
	__be16 udp_len = bpf_htons(skb->len + VXLAN_ENCAP_LEN - ETH_HLEN - sizeof(struct iphdr));
	/* A failure (a packet the pod encapsulated itself, memory short) leaves it to the stack as it was. */
	if (bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET |
					BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
					BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
					BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct ethhdr))))
		return pass(skb, WEFT_SLOW_OTHER);
	void *data = (void *)(long)skb->data;
	struct vxlan_encap *h = data + ETH_HLEN;
	struct iphdr *inner = (void *)(h + 1);

	/* Cannot fail: the room is made in the linear part, where the inner header already was. */
	if ((void *)(inner + 1) > (void *)(long)skb->data_end)
		return TC_ACT_SHOT;
	decrement_ttl(inner);
	h->ip = oip;
	h->udp.source = sport;
	h->udp.dest = cfg->vxlan_port;
	h->udp.len = udp_len;
	h->udp.check = 0;
	h->vx_flags = bpf_htonl(VXLAN_FLAG_VNI);
	h->vx_vni = bpf_htonl(cfg->vxlan_vni << 8);
	__builtin_memcpy(h->eth.h_dest, peer->dmac, 6);
	__builtin_memcpy(h->eth.h_source, peer->smac, 6);
	h->eth.h_proto = bpf_htons(ETH_P_IP);
	count(skb, WEFT_FAST_VXLAN);
	return bpf_redirect_neigh(peer->ifindex, NULL, 0, 0);
}

/* A packet from a local pod, on its own veth: to another local pod, or to a peer's pod subnet. */
static __always_inline int from_pod(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip,
				    void *end, struct weft_cfg *cfg)
{
	struct weft_pod *pod = bpf_map_lookup_elem(&weft_pods, &ip->daddr);
	__u32 why;

	if (pod) {
		/* Aimed at the pod itself (bridged, as on the CNI bridge) or at the gateway (routed). */
		int routed = !mac_eq(eth->h_dest, pod->mac);

		if (pod->ifindex == skb->ifindex || (routed && !mac_eq(eth->h_dest, pod->gw_mac)))
			return pass(skb, WEFT_SLOW_OTHER);
		why = fast_verdict(skb, ip, end, pod->ifindex, routed, 0);
		if (why)
			return pass(skb, why);
		if (routed) {
			decrement_ttl(ip);
			__builtin_memcpy(eth->h_dest, pod->mac, 6);
			__builtin_memcpy(eth->h_source, pod->gw_mac, 6);
		}
		count(skb, WEFT_FAST_LOCAL);
		return bpf_redirect_peer(pod->ifindex, 0);
	}

	struct weft_peer_key key = { .prefixlen = 32, .addr = ip->daddr };
	struct weft_peer *peer = bpf_map_lookup_elem(&weft_peers, &key);

	if (!peer)
		return pass(skb, WEFT_SLOW_UNKNOWN);
	if (peer->kind == WEFT_PEER_VXLAN)
		return to_vxlan_peer(skb, ip, end, peer, cfg);
	why = fast_verdict(skb, ip, end, peer->ifindex, 1, 0);
	if (why)
		return pass(skb, why);
	decrement_ttl(ip);
	struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = peer->nexthop };

	count(skb, WEFT_FAST_ROUTED);
	return bpf_redirect_neigh(peer->ifindex, &nh, sizeof(nh), 0);
}

/*
 * A VXLAN datagram for this node's endpoint from a known peer, to a local pod: decapsulated here and
 * handed to the pod. "Known" is stricter than the VXLAN device (and the agent's port lock): the
 * outer source must be the VTEP of the peer whose pod subnet holds the inner source. Anything else
 * goes on to the stack, whose rules judge it.
 */
static __always_inline int from_vxlan_peer(struct __sk_buff *skb, struct iphdr *oip, void *end,
					   struct weft_cfg *cfg)
{
	struct vxlan_encap *h = (void *)oip;
	struct iphdr *ip = (void *)(h + 1);

	if (!cfg->vxlan_vni || (void *)(ip + 1) > end || oip->version != 4 || oip->ihl != 5 ||
	    oip->protocol != IPPROTO_UDP || oip->daddr != cfg->vxlan_local ||
	    (oip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) || h->udp.dest != cfg->vxlan_port ||
	    h->vx_flags != bpf_htonl(VXLAN_FLAG_VNI) || h->vx_vni != bpf_htonl(cfg->vxlan_vni << 8))
		return pass(skb, WEFT_NOT_POD);
	struct weft_pod *pod = bpf_map_lookup_elem(&weft_pods, &ip->daddr);

	if (!pod || h->eth.h_proto != bpf_htons(ETH_P_IP) || !mac_eq(h->eth.h_dest, cfg->vtep_mac))
		return pass(skb, WEFT_NOT_POD);
	struct weft_peer_key key = { .prefixlen = 32, .addr = ip->saddr };
	struct weft_peer *peer = bpf_map_lookup_elem(&weft_peers, &key);

	if (!peer || peer->kind != WEFT_PEER_VXLAN || peer->remote != oip->saddr)
		return pass(skb, WEFT_SLOW_OTHER);
	/*
	 * Two kinds are the VXLAN device's to decapsulate (then this program delivers them from it): a
	 * GSO packet of datagrams (a sender's super-packet, or GRO's), whose tunnel offload state no
	 * helper of this kernel can clear (the pod's stack would cut it as a tunnel packet if it
	 * forwarded it); and an outer CE mark, which must reach the inner header (RFC 6040).
	 */
	if (skb->gso_size || (oip->tos & 3) == 3)
		return pass(skb, WEFT_SLOW_VXLAN_GSO);
	__u32 why = fast_verdict(skb, ip, end, pod->ifindex, 1, -VXLAN_ENCAP_LEN);

	if (why)
		return pass(skb, why);
	/*
	 * The tunnel's headers go, and with the UDP header its checksum level: a checksum the NIC
	 * verified for the outer datagram says nothing of the inner.
	 */
	if (bpf_skb_adjust_room(skb, -VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET))
		return pass(skb, WEFT_SLOW_OTHER);
	bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC);
	void *data = (void *)(long)skb->data;
	struct ethhdr *eth = data;
	struct iphdr *inner = (void *)(eth + 1);

	/* Cannot fail: the inner header was in the linear part before. */
	if ((void *)(inner + 1) > (void *)(long)skb->data_end)
		return TC_ACT_SHOT;
	decrement_ttl(inner);
	__builtin_memcpy(eth->h_dest, pod->mac, 6);
	__builtin_memcpy(eth->h_source, pod->gw_mac, 6);
	count(skb, WEFT_FAST_DECAP);
	return bpf_redirect_peer(pod->ifindex, 0);
}

/* A packet that reached the node (over the underlay or the VXLAN device): to a local pod. */
static __always_inline int from_net(struct __sk_buff *skb, struct ethhdr *eth, struct iphdr *ip,
				    void *end, struct weft_cfg *cfg)
{
	struct weft_pod *pod;
	__u32 why;

	if (skb->pkt_type != PACKET_HOST)
		return pass(skb, WEFT_NOT_POD);
	if (!(pod = bpf_map_lookup_elem(&weft_pods, &ip->daddr)))
		return from_vxlan_peer(skb, ip, end, cfg);
	/*
	 * Only a peer's pods, as its route or tunnel brings them: anything else (the external host, a
	 * neighbour on the underlay claiming a pod address) is the stack's to judge.
	 */
	struct weft_peer_key key = { .prefixlen = 32, .addr = ip->saddr };

	if (!bpf_map_lookup_elem(&weft_peers, &key))
		return pass(skb, WEFT_SLOW_OTHER);
	why = fast_verdict(skb, ip, end, pod->ifindex, 1, 0);
	if (why)
		return pass(skb, why);
	decrement_ttl(ip);
	__builtin_memcpy(eth->h_dest, pod->mac, 6);
	__builtin_memcpy(eth->h_source, pod->gw_mac, 6);
	count(skb, WEFT_FAST_IN);
	return bpf_redirect_peer(pod->ifindex, 0);
}

/*
 * One program for every device it is attached to (so that the object lives while anything holds
 * it): a packet whose source is a local pod arriving on that pod's own veth is the pod's; anything
 * else is the network's.
 */
SEC("tc")
int weft_fastpath(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0;
	struct weft_cfg *cfg = bpf_map_lookup_elem(&weft_cfg, &zero);

	if (!cfg || cfg->retired)
		return TC_ACT_UNSPEC;
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(skb, WEFT_SLOW_NOT_IPV4);

	struct weft_pod *src = bpf_map_lookup_elem(&weft_pods, &ip->saddr);

	if (src && src->ifindex == skb->ifindex)
		return from_pod(skb, eth, ip, end, cfg);
	return from_net(skb, eth, ip, end, cfg);
}
