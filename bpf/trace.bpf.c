// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * weft trace: the BPF half. One tc program, attached with tcx to both hooks of every watched device,
 * reports every sighting of the probe there, and one BTF
 * tracepoint on kfree_skb reports the probe's death with the kernel's own drop reason.
 *
 * The probe is matched by content, because a packet crosses namespaces (the skb mark is scrubbed) and
 * NAT (addresses and ports change): ICMP echo and UDP probes carry a 16-byte signature at the start of
 * their payload; a TCP SYN is recognised by its 5-tuple where it leaves the sender, and from then on by
 * its initial sequence number (the SYN-ACK or RST by ack == ISN + 1). VXLAN (UDP 8472/4789) and the udp
 * backend's raw IPv4-in-UDP (8285) are opened, up to three IPv4 layers deep (Neutron's VXLAN carrying
 * weft's VXLAN carrying the probe).
 *
 * Unrelated traffic pays one array lookup when no trace is armed, and a 40-byte header check when one
 * is: only UDP to a tunnel port, the probe's protocol and ICMP errors go on to the full parse. Every
 * program returns TCX_NEXT (the packet continues untouched to whatever comes next).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "trace.h"

#define ETH_P_IP 0x0800
#define TCX_NEXT -1
#define ARPHRD_ETHER_ 1
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The kernel's sk_buff behind a tc program's context: its device tells the namespace the hook is in
 * (bpf_get_netns_cookie answers for the packet's socket, which may belong to another namespace). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tr_config);
} cfg SEC(".maps");

struct scratch {
	__u8 buf[TR_BUF];
	struct tr_event ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* 1..256 bytes, in a form the verifier can bound (clang would otherwise fold a plain clamp away). */
static __always_inline __u32 copy_len(__u32 n)
{
	if (n > 256)
		n = 256;
	__u32 m = n - 1;
	asm volatile("%0 &= 255" : "+r"(m));
	return m + 1;
}

static __always_inline __u16 be16(const __u8 *p) { return ((__u16)p[0] << 8) | p[1]; }
static __always_inline __u32 be32(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

/* 1: the nonce of the signature is at buf[off]; *magic gets which magic word precedes it. */
static __always_inline int nonce_at(const __u8 *buf, __u32 off, __u32 len, const struct tr_config *c,
				    int *is_reply_magic)
{
	if (off > 255 || off + TR_SIG_LEN > len)
		return 0;
	const __u8 *p = buf + (off & 0xff);
#pragma unroll
	for (int i = 4; i < TR_SIG_LEN; i++)
		if (p[i] != c->sig[i])
			return 0;
	int req = 1, rep = 1;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (p[i] != c->sig[i])
			req = 0;
		if (p[i] != c->reply_magic[i])
			rep = 0;
	}
	if (!req && !rep)
		return 0;
	*is_reply_magic = rep;
	return 1;
}

/* An ICMP error quoting the probe: the quoted IPv4 header starts at q. */
static __always_inline int quoted_probe(const __u8 *buf, __u32 q, __u32 len, const struct tr_config *c)
{
	if (q > 255 || q + 28 > len)
		return 0;
	const __u8 *b = buf + (q & 0xff);
	if ((b[0] >> 4) != 4 || b[9] != c->proto)
		return 0;
	__u32 qt = q + (b[0] & 0xf) * 4;
	int magic = 0;
	if (c->proto == IPPROTO_TCP_) {
		if (qt > 255 || qt + 8 > len)
			return 0;
		return c->isn_known && be32(buf + (qt & 0xff) + 4) == c->isn;
	}
	return nonce_at(buf, qt + 8, len, c, &magic);
}

/* Parses up to three IPv4 layers from buf (L3 at offset 0) into ev; returns the probe's direction. */
static __always_inline int parse(const __u8 *buf, __u32 len, struct tr_config *c, struct tr_event *ev)
{
	__u32 base = 0;
	ev->nlayers = 0;
	ev->icmp_error = 0;
#pragma unroll
	for (int i = 0; i < TR_MAX_LAYERS; i++) {
		if (base > 200 || base + 20 > len)
			return TR_NONE;
		__u32 o = base & 0xff;
		const __u8 *b = buf + o;
		if ((b[0] >> 4) != 4)
			return TR_NONE;
		__u32 ihl = (b[0] & 0xf) * 4;
		if (ihl < 20)
			return TR_NONE;
		struct tr_layer *L = &ev->l[i];
		L->tot_len = be16(b + 2);
		L->id = be16(b + 4);
		L->frag = be16(b + 6);
		L->ttl = b[8];
		L->proto = b[9];
		__builtin_memcpy(&L->saddr, b + 12, 4);
		__builtin_memcpy(&L->daddr, b + 16, 4);
		L->encap = TR_ENC_NONE;
		L->tcp_flags = 0;
		L->vni = 0;
		L->seq = L->ack = 0;
		L->sport = L->dport = 0;
		L->icmp_type = L->icmp_code = 0;
		ev->nlayers = i + 1;
		__u32 t = o + ihl;
		if (t + 8 > len)
			return TR_NONE;
		const __u8 *tp = buf + t;
		if (L->proto == IPPROTO_UDP_) {
			L->sport = be16(tp);
			L->dport = be16(tp + 2);
			if (L->dport == c->vxlan_ports[0] || L->dport == c->vxlan_ports[1]) {
				/* UDP 8 + VXLAN 8 + Ethernet 14 */
				if (t + 30 + 20 > len || be16(tp + 28) != ETH_P_IP)
					return TR_NONE;
				L->encap = TR_ENC_VXLAN;
				L->vni = ((__u32)tp[12] << 16) | ((__u32)tp[13] << 8) | tp[14];
				base = t + 30;
				continue;
			}
			if (c->udp_port && (L->dport == c->udp_port || L->sport == c->udp_port)) {
				L->encap = TR_ENC_UDP;
				base = t + 8;
				continue;
			}
			if (c->proto != IPPROTO_UDP_)
				return TR_NONE;
			int rep = 0;
			if (!nonce_at(buf, t + 8, len, c, &rep))
				return TR_NONE;
			/* A generic echo server answers with our own magic: the reply then goes to our port. */
			if (rep || (L->dport == bpf_ntohs(c->sport) && L->sport != bpf_ntohs(c->sport)))
				return TR_REPLY;
			return TR_REQUEST;
		}
		if (L->proto == IPPROTO_TCP_) {
			if (t + 20 > len)
				return TR_NONE;
			L->sport = be16(tp);
			L->dport = be16(tp + 2);
			L->seq = be32(tp + 4);
			L->ack = be32(tp + 8);
			L->tcp_flags = tp[13];
			if (c->proto != IPPROTO_TCP_)
				return TR_NONE;
			__u8 f = L->tcp_flags;
			if ((f & TCP_SYN) && !(f & TCP_ACK)) {
				if (c->isn_known)
					return L->seq == c->isn ? TR_REQUEST : TR_NONE;
				if ((!c->saddr || L->saddr == c->saddr) && L->daddr == c->daddr &&
				    bpf_htons(L->sport) == c->sport && bpf_htons(L->dport) == c->dport) {
					c->isn = L->seq;
					c->isn_known = 1;
					return TR_REQUEST;
				}
				return TR_NONE;
			}
			if (((f & TCP_SYN) && (f & TCP_ACK)) || (f & TCP_RST))
				if (c->isn_known && L->ack == c->isn + 1)
					return TR_REPLY;
			return TR_NONE;
		}
		if (L->proto == IPPROTO_ICMP_) {
			L->icmp_type = tp[0];
			L->icmp_code = tp[1];
			L->sport = be16(tp + 4);
			L->dport = be16(tp + 6);
			if (tp[0] == 3 || tp[0] == 11 || tp[0] == 12) {
				if (quoted_probe(buf, t + 8, len, c)) {
					ev->icmp_error = 1;
					return TR_REPLY;
				}
				return TR_NONE;
			}
			if (c->proto != IPPROTO_ICMP_ || (tp[0] != 8 && tp[0] != 0))
				return TR_NONE;
			int rep = 0;
			if (!nonce_at(buf, t + 8, len, c, &rep))
				return TR_NONE;
			return tp[0] == 8 ? TR_REQUEST : TR_REPLY;
		}
		return TR_NONE;
	}
	return TR_NONE;
}

/* The cheap first look: is this IPv4 packet possibly the probe (or carrying it)? */
static __always_inline int worth_parsing(const __u8 *h, const struct tr_config *c)
{
	if ((h[0] >> 4) != 4)
		return 0;
	__u8 proto = h[9];
	const __u8 *tp = h + 20; /* a header with options is rare; the full parse copes with it */
	if (proto == IPPROTO_UDP_) {
		__u16 d = be16(tp + 2), s = be16(tp);
		if (d == c->vxlan_ports[0] || d == c->vxlan_ports[1])
			return 1;
		if (c->udp_port && (d == c->udp_port || s == c->udp_port))
			return 1;
		return c->proto == IPPROTO_UDP_;
	}
	if (proto == IPPROTO_TCP_)
		return c->proto == IPPROTO_TCP_ && (tp[13] & (TCP_SYN | TCP_RST));
	if (proto == IPPROTO_ICMP_)
		return 1;
	return 0;
}

/* One program for every device and both hooks: the hook and the link-layer header length come from
 * the kernel's sk_buff (tc_at_ingress, and the device type: Ethernet or a bare IP device such as TUN). */
SEC("tc")
int wtrace_tc(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct tr_config *c = bpf_map_lookup_elem(&cfg, &k);
	if (!c || !c->active || skb->protocol != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	/* The early exit for unrelated traffic reads the headers in place (no helper call): an IPv4
	 * packet of another protocol, TCP without SYN/RST, or UDP to no tunnel port is let go here. */
	const __u8 *d = (const __u8 *)(long)skb->data, *end = (const __u8 *)(long)skb->data_end;
	if (d + 14 + 34 <= end) {
		__u32 o = (d[12] == 0x08 && d[13] == 0x00) ? 14 : 0;
		const __u8 *h = d + o;
		if ((h[0] >> 4) == 4 && (h[0] & 0xf) == 5 && !worth_parsing(h, c))
			return TCX_NEXT;
	}
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	__u32 l3off = BPF_CORE_READ(kskb, dev, type) == ARPHRD_ETHER_ ? 14 : 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &k);
	if (!s)
		return TCX_NEXT;
	if (skb->len < l3off + 40 || bpf_skb_load_bytes(skb, l3off, s->buf, 40) < 0)
		return TCX_NEXT;
	if (!worth_parsing(s->buf, c))
		return TCX_NEXT;
	__u32 n = copy_len(skb->len - l3off);
	if (n < 40 || n > 256 || bpf_skb_load_bytes(skb, l3off, s->buf, n) < 0)
		return TCX_NEXT;
	struct tr_event *ev = &s->ev;
	int dir = parse(s->buf, n, c, ev);
	if (dir == TR_NONE)
		return TCX_NEXT;
	ev->ts = bpf_ktime_get_ns();
	ev->netns = BPF_CORE_READ(kskb, dev, nd_net.net, net_cookie);
	ev->ifindex = skb->ifindex;
	ev->kind = BPF_CORE_READ_BITFIELD_PROBED(kskb, tc_at_ingress) ? TR_INGRESS : TR_EGRESS;
	ev->dir = dir;
	ev->skb_len = skb->len;
	ev->mark = skb->mark;
	ev->pkt_type = skb->pkt_type;
	ev->reason = 0;
	ev->location = 0;
	__sync_fetch_and_add(&c->matched, 1);
	bpf_ringbuf_output(&events, ev, sizeof(*ev), 0);
	return TCX_NEXT;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(wtrace_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	__u32 k = 0;
	struct tr_config *c = bpf_map_lookup_elem(&cfg, &k);
	if (!c || !c->active)
		return 0;
	if (BPF_CORE_READ(skb, protocol) != bpf_htons(ETH_P_IP))
		return 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &k);
	if (!s)
		return 0;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 mh = BPF_CORE_READ(skb, mac_header);
	__u32 tail = BPF_CORE_READ(skb, tail);
	__u32 off;
	if (nh != 0xffff && nh + 20 <= tail)
		off = nh;
	else if (mh != 0xffff && mh + 34 <= tail)
		off = mh + 14;
	else
		return 0;
	__u32 n = copy_len(tail - off);
	if (n < 28 || n > 256 || bpf_probe_read_kernel(s->buf, n, head + off) < 0)
		return 0;
	struct tr_event *ev = &s->ev;
	int dir = parse(s->buf, n, c, ev);
	if (dir == TR_NONE)
		return 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	ev->ts = bpf_ktime_get_ns();
	ev->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	if (dev)
		ev->netns = BPF_CORE_READ(dev, nd_net.net, net_cookie);
	else {
		struct sock *sk = BPF_CORE_READ(skb, sk);
		ev->netns = sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie) : 0;
	}
	ev->kind = TR_DROP;
	ev->dir = dir;
	ev->skb_len = BPF_CORE_READ(skb, len);
	ev->mark = BPF_CORE_READ(skb, mark);
	ev->pkt_type = 0;
	ev->reason = reason;
	ev->location = (__u64)location;
	__sync_fetch_and_add(&c->matched, 1);
	bpf_ringbuf_output(&events, ev, sizeof(*ev), 0);
	return 0;
}
