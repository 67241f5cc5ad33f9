/* Shared between bpf/trace.bpf.c and native/trace/loader.c: the probe the BPF programs look for and
 * the event they report. Plain fixed-size fields only, so both sides agree on the layout. */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#define TR_MAX_LAYERS 3 /* Neutron VXLAN > weft VXLAN > the probe */
#define TR_SIG_LEN 16   /* magic (4) + nonce (12) at the start of an ICMP or UDP probe's payload */
#define TR_BUF 512      /* copy buffer: offsets are masked to 255 and reads are at most 256 bytes */

enum tr_kind { TR_INGRESS = 0, TR_EGRESS = 1, TR_DROP = 2 };
enum tr_dir { TR_NONE = 0, TR_REQUEST = 1, TR_REPLY = 2 };
enum tr_encap { TR_ENC_NONE = 0, TR_ENC_VXLAN = 1, TR_ENC_UDP = 2 };

struct tr_config {
	__u32 active;
	__u8 proto; /* IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP */
	__u8 isn_known;
	__u16 pad0;
	/* The probe as the sender emits it (network order): a TCP SYN is recognised here first, and its
	 * initial sequence number then identifies it behind any NAT. */
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u32 isn;
	__u8 sig[TR_SIG_LEN];    /* request payload; a weft responder answers with reply_magic */
	__u8 reply_magic[4];
	__u16 vxlan_ports[2];    /* host order: 8472 (Linux/Flannel), 4789 (IANA) */
	__u16 udp_port;          /* host order: the udp backend's raw IPv4-in-UDP port (8285) */
	__u16 pad1;
	__u64 matched;           /* events emitted (for the summary) */
};

struct tr_layer {
	__u32 saddr, daddr; /* network order */
	__u16 tot_len, id;  /* host order */
	__u8 proto, ttl, tcp_flags, encap; /* encap: what this layer's UDP payload carries */
	__u16 sport, dport; /* host order; ICMP: id and sequence */
	__u8 icmp_type, icmp_code;
	__u16 frag;          /* flags + fragment offset, host order */
	__u32 seq, ack;      /* TCP, host order */
	__u32 vni;           /* VXLAN network identifier when encap == TR_ENC_VXLAN */
};

struct tr_event {
	__u64 ts;            /* bpf_ktime_get_ns: CLOCK_MONOTONIC, one clock for every namespace */
	__u64 netns;         /* network namespace cookie */
	__u64 location;      /* drop: kernel address that freed the skb */
	__u32 ifindex;
	__u32 reason;        /* drop: enum skb_drop_reason */
	__u32 skb_len;
	__u32 mark;
	__u8 kind;           /* enum tr_kind */
	__u8 dir;            /* enum tr_dir */
	__u8 nlayers;
	__u8 icmp_error;     /* the reply is an ICMP error quoting the probe */
	__u8 pkt_type;
	__u8 pad[3];
	struct tr_layer l[TR_MAX_LAYERS];
};

#endif
