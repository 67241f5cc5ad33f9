/*
 * weft-udp: the data path of weft's udp backend (Flannel's wire format: every inner IPv4 packet is the
 * payload of one UDP datagram to port 8285), as a helper process the agent supervises.
 *
 * The kernel hands the TUN device's packets over as TSO super-packets (IFF_VNET_HDR + TUNSETOFFLOAD);
 * each is cut into path-MTU segments with their own IP/TCP headers and checksums, and a peer's run of
 * segments leaves in one sendmsg with UDP_SEGMENT. The other way, UDP_GRO + recvmmsg bring many
 * datagrams per system call, and consecutive TCP segments of a flow are written to the TUN device as
 * one super-packet (virtio_net_hdr with GSO_TCPV4). `--batch 1` is Flannel's proxy instead: one packet
 * per system call, no offloads, for comparison.
 *
 * Files: main.c (arguments, set-up, control socket), table.c (peer table, swapped atomically),
 * tx.c (TUN → UDP), rx.c (UDP → TUN), icmp.c (errors back to senders), csum.h (Internet checksum).
 */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#define _GNU_SOURCE
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define WEFT_UDP_VERSION "1"
#define MAX_WORKERS 16
#define VNET_LEN ((int)sizeof(struct virtio_net_hdr))
/* Largest IPv4 packet, and the largest UDP payload one sendmsg may carry. */
#define IP_MAX 65535
#define UDP_PAYLOAD_MAX (IP_MAX - 20 - 8)
/* Segments per UDP_SEGMENT send (the kernel's UDP_MAX_SEGMENTS is at least this). */
#define GSO_MAX_SEGS 64
/* The smallest inner packet size a path may force on us (576-byte IPv4 minimum minus our 28). */
#define MIN_INNER_MTU 548
#define OVERHEAD 28

/* Why a packet was not forwarded. The first group comes from the wire, the second from the TUN. */
enum drop {
  DROP_SHORT,        /* datagram shorter than an IPv4 header */
  DROP_NOT_IPV4,     /* version is not 4 */
  DROP_BAD_HEADER,   /* header length or header checksum wrong */
  DROP_BAD_LENGTH,   /* IPv4 total length differs from the datagram's length */
  DROP_TRUNCATED,    /* transport header cut off */
  DROP_NOT_PEER,     /* source address is not a current peer */
  DROP_WRONG_DEST,   /* inner destination outside this node's subnet */
  DROP_TUN_WRITE,    /* the TUN device refused the packet */
  DROP_NO_ROUTE,     /* no peer owns the destination (ICMP net unreachable sent) */
  DROP_TTL,          /* TTL exhausted (ICMP time exceeded sent) */
  DROP_TOO_BIG,      /* larger than the path with DF set (ICMP fragmentation needed sent) */
  DROP_SEND,         /* the UDP socket refused the datagram */
  DROP_TUN_NOT_IPV4, /* the kernel routed a non-IPv4 packet into the TUN device */
  DROP_TUN_MALFORMED,/* a packet from the TUN device we cannot parse */
  DROP_N
};
extern const char *const drop_names[DROP_N];
/* 0: from the wire (rx), 1: from the TUN device (tx). */
extern const unsigned char drop_is_tx[DROP_N];

enum icmp_kind { ICMPK_UNREACH, ICMPK_FRAG, ICMPK_TTL, ICMPK_N };

/* Batch-size histograms: inner packets per system call, power-of-two buckets 1,2,4,…,128+. */
enum hist { H_TUN_READ, H_TX_SEND, H_RX_RECV, H_RX_WRITE, H_N };
#define HBUCKETS 8

/* A worker's counters. Only the owner writes them (relaxed stores); the control thread reads them. */
struct counters {
  uint64_t tx_packets, tx_bytes, tx_syscalls, tun_reads;
  uint64_t rx_packets, rx_bytes, rx_syscalls, tun_writes;
  uint64_t icmp[ICMPK_N];
  uint64_t drops[DROP_N];
  uint64_t hist[H_N][HBUCKETS];
  uint64_t hsum[H_N]; /* inner packets over all the calls of a histogram */
  uint64_t pmtu_events, gso_fallbacks;
};
#define CINC(field, n) __atomic_store_n(&(field), (field) + (uint64_t)(n), __ATOMIC_RELAXED)
#define CGET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static inline int hist_bucket(unsigned n) {
  int b = 0;
  while (n > 1 && b < HBUCKETS - 1) {
    n >>= 1;
    b++;
  }
  return b;
}
/* One system call that moved n inner packets. */
#define HIST(c, h, n)                                  \
  do {                                                 \
    CINC((c).hist[h][hist_bucket((unsigned)(n))], 1);  \
    CINC((c).hsum[h], (n));                            \
  } while (0)

/* ------------------------------------------------------------------ peer table (table.c) */
struct peer {
  uint32_t net, mask; /* network order */
  uint8_t plen;
  uint32_t ip;        /* public (underlay) address, network order */
  _Atomic uint32_t mtu; /* largest inner packet this peer's path carries */
};

struct table {
  bool has_own;
  uint32_t own_net, own_mask; /* this node's subnet: inner destinations we accept */
  uint32_t tun_addr;          /* source of the ICMP errors we generate (the subnet's .0) */
  size_t n;
  struct peer *peers;
  int nlens;
  uint8_t lens[33];           /* distinct prefix lengths, longest first */
  uint32_t rmask, smask;
  int32_t *rslots;            /* (masked dst, plen) → peer index */
  int32_t *sslots;            /* public IP → peer index */
};

struct table *table_parse(const char *spec, const struct table *old, char *err, size_t errlen);
void table_free(struct table *t);
struct peer *table_route(const struct table *t, uint32_t dst);
struct peer *table_source(const struct table *t, uint32_t src);

/* ------------------------------------------------------------------ configuration and workers */
struct config {
  char tun[16];
  char control[100];
  uint32_t local; /* network order */
  uint16_t port;
  uint32_t mtu;   /* largest inner packet the underlay carries (its MTU − 28) */
  int batch;      /* packets per system call; 1 = Flannel's proxy (no offloads) */
  int workers;
  bool offload;   /* TSO from the TUN device, UDP GSO/GRO, coalescing */
};
extern struct config cfg;
extern _Atomic(struct table *) g_table;
extern atomic_bool g_stop;

struct txctx;
struct rxctx;

struct worker {
  int id;
  int tun, sock, wake, probe;
  pthread_t thread;
  _Atomic(struct table *) hazard;
  bool gso_ok;
  double icmp_tokens;
  uint64_t icmp_last_ns;
  struct txctx *tx;
  struct rxctx *rx;
  _Alignas(64) struct counters c;
};
extern struct worker workers[MAX_WORKERS];

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t now_ns(void);

/* tx.c / rx.c: one round each; they return whether they moved anything. */
int tx_init(struct worker *w);
int rx_init(struct worker *w);
bool tx_round(struct worker *w, struct table *t);
bool rx_round(struct worker *w, struct table *t);
void drain_errqueue(struct worker *w, struct table *t);
uint32_t probe_mtu(int probe_sock, uint32_t peer_ip);

/* icmp.c: an ICMP error about `orig` back into the TUN device, towards its sender. */
void icmp_error(struct worker *w, const struct table *t, const uint8_t *orig, size_t len, uint8_t type,
                uint8_t code, uint16_t mtu);
/* Writes one packet to the TUN device (with an empty virtio_net_hdr in offload mode). */
bool tun_write_one(struct worker *w, const uint8_t *pkt, size_t len);

#endif
