/*
 * UDP → TUN. A round is one recvmmsg; with UDP_GRO each message may hold many datagrams of one size
 * (the UDP_GRO control message says which). Every datagram must come from a current peer and carry
 * exactly one well-formed IPv4 packet for this node's subnet; anything else is dropped and counted by
 * reason. Consecutive in-order TCP segments of a flow (same headers but for length and sequence)
 * are written to the TUN device as one super-packet with a GSO_TCPV4 virtio_net_hdr, so the kernel's
 * stack sees what its own GRO would have made.
 *
 * The merged packet is handed over CHECKSUM_PARTIAL, so the segments' own TCP checksums are not
 * checked again: the datagram came from a current peer and the kernel has verified its UDP
 * checksum, which covers the whole inner packet exactly as the peer's stack (or weft-udp's
 * segmentation) computed it. A packet that is not merged keeps its checksum for the kernel to check.
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <errno.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csum.h"

#define RX_VLEN_MAX 16
#define RX_BUF (IP_MAX + 64)
#define MAX_RSEGS (RX_VLEN_MAX * GSO_MAX_SEGS * 2)
#define LOOKBACK 8

#define TCP_ACK 0x10
#define TCP_PSH 0x08

struct rseg {
  uint8_t *p;
  uint32_t len;
  int next;
};

struct group {
  int first, last;
  uint16_t nseg, hlen, mss;
  uint32_t payload, next_seq;
  uint32_t saddr, daddr, ports;
  bool tcp, closed, psh;
};

struct rxctx {
  int vlen;
  uint8_t *bufs[RX_VLEN_MAX];
  struct mmsghdr mm[RX_VLEN_MAX];
  struct iovec iov[RX_VLEN_MAX];
  struct sockaddr_in src[RX_VLEN_MAX];
  union {
    char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } cm[RX_VLEN_MAX];
  struct rseg segs[MAX_RSEGS];
  int nsegs;
  struct group g[MAX_RSEGS];
  int ng;
  struct iovec wiov[GSO_MAX_SEGS + 2];
};

int rx_init(struct worker *w) {
  struct rxctx *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->vlen = cfg.offload ? (cfg.batch < RX_VLEN_MAX ? cfg.batch : RX_VLEN_MAX) : 1;
  for (int i = 0; i < c->vlen; i++)
    if (!(c->bufs[i] = malloc(RX_BUF))) return -1;
  w->rx = c;
  return 0;
}

/* -1 when the datagram is one well-formed IPv4 packet for this node, else the drop reason. */
static int rx_check(const struct table *t, const uint8_t *p, size_t n) {
  if (n < 20) return DROP_SHORT;
  if ((p[0] >> 4) != 4) return DROP_NOT_IPV4;
  size_t ihl = (size_t)(p[0] & 15) * 4;
  if (ihl < 20 || ihl > n || !ip_checksum_ok(p, ihl)) return DROP_BAD_HEADER;
  if (rd16(p + 2) != n) return DROP_BAD_LENGTH;
  if (t->has_own && (rdaddr(p + 16) & t->own_mask) != t->own_net) return DROP_WRONG_DEST;
  if ((rd16(p + 6) & 0x1fff) == 0) { /* first (or only) fragment: its transport header must be there */
    size_t room = n - ihl;
    switch (p[9]) {
    case IPPROTO_TCP:
      if (room < 20 || (size_t)(p[ihl + 12] >> 4) * 4 < 20 || (size_t)(p[ihl + 12] >> 4) * 4 > room)
        return (rd16(p + 6) & 0x2000) ? -1 : DROP_TRUNCATED;
      break;
    case IPPROTO_UDP:
    case IPPROTO_ICMP:
      if (room < 8) return DROP_TRUNCATED;
      break;
    }
  }
  return -1;
}

static struct group *new_group(struct rxctx *c, int s, bool closed) {
  struct group *g = &c->g[c->ng++];
  *g = (struct group){.first = s, .last = s, .nseg = 1, .closed = closed};
  return g;
}

/* Whether segment s (TCP, payload `pay`) continues group g exactly. */
static bool can_merge(const struct rxctx *c, const struct group *g, int s, size_t pay) {
  const uint8_t *h0 = c->segs[g->first].p, *p = c->segs[s].p;
  size_t thl = (size_t)g->hlen - 20;
  if (g->nseg >= GSO_MAX_SEGS || (size_t)g->hlen + g->payload + pay > IP_MAX || pay > g->mss) return false;
  if (rd32(p + 24) != g->next_seq || (size_t)(p[32] >> 4) * 4 != thl) return false;
  /* Same TOS, DF and TTL; same ACK, window, urgent pointer and options; flags equal but for PSH. */
  if (p[1] != h0[1] || p[6] != h0[6] || p[7] != h0[7] || p[8] != h0[8]) return false;
  if (memcmp(p + 28, h0 + 28, 4) != 0 || memcmp(p + 34, h0 + 34, 2) != 0 || memcmp(p + 38, h0 + 38, 2) != 0)
    return false;
  if ((p[33] & ~TCP_PSH) != (h0[33] & ~TCP_PSH)) return false;
  return thl == 20 || memcmp(p + 40, h0 + 40, thl - 20) == 0;
}

static void rx_add(struct rxctx *c, uint8_t *p, size_t n) {
  int s = c->nsegs++;
  c->segs[s] = (struct rseg){p, (uint32_t)n, -1};
  if (!cfg.offload || p[9] != IPPROTO_TCP || (p[0] & 15) != 5 || (rd16(p + 6) & 0x3fff)) {
    new_group(c, s, true);
    return;
  }
  size_t thl = (size_t)(p[32] >> 4) * 4;
  size_t pay = n - 20 - thl;
  uint8_t flags = p[33];
  if (pay == 0 || (flags & ~(TCP_ACK | TCP_PSH)) || !(flags & TCP_ACK)) {
    new_group(c, s, true);
    return;
  }
  uint32_t saddr = rdaddr(p + 12), daddr = rdaddr(p + 16), ports;
  memcpy(&ports, p + 20, 4);
  struct group *g = NULL;
  for (int k = c->ng - 1; k >= 0 && k >= c->ng - LOOKBACK; k--) {
    struct group *x = &c->g[k];
    if (x->tcp && x->saddr == saddr && x->daddr == daddr && x->ports == ports) {
      g = x;
      break;
    }
  }
  if (g && !g->closed && can_merge(c, g, s, pay)) {
    c->segs[g->last].next = s;
    g->last = s;
    g->nseg++;
    g->payload += (uint32_t)pay;
    g->next_seq += (uint32_t)pay;
    if (pay < g->mss || (flags & TCP_PSH)) g->closed = true;
    if (flags & TCP_PSH) g->psh = true;
    return;
  }
  if (g) g->closed = true;
  struct group *ng = new_group(c, s, (flags & TCP_PSH) != 0);
  ng->tcp = true;
  ng->hlen = (uint16_t)(20 + thl);
  ng->mss = (uint16_t)pay;
  ng->payload = (uint32_t)pay;
  ng->next_seq = rd32(p + 24) + (uint32_t)pay;
  ng->saddr = saddr;
  ng->daddr = daddr;
  ng->ports = ports;
}

static void rx_flush(struct worker *w, struct rxctx *c) {
  for (int k = 0; k < c->ng; k++) {
    struct group *g = &c->g[k];
    struct rseg *s0 = &c->segs[g->first];
    if (g->nseg == 1) {
      if (tun_write_one(w, s0->p, s0->len)) {
        CINC(w->c.rx_packets, 1);
        CINC(w->c.rx_bytes, s0->len);
        CINC(w->c.tun_writes, 1);
        HIST(w->c, H_RX_WRITE, 1);
      } else
        CINC(w->c.drops[DROP_TUN_WRITE], 1);
      continue;
    }
    uint8_t *h = s0->p;
    uint32_t total = g->hlen + g->payload;
    wr16(h + 2, (uint16_t)total);
    ip_set_checksum(h, 20);
    if (g->psh) h[33] |= TCP_PSH;
    /* CHECKSUM_PARTIAL for the kernel: the field holds the pseudo-header sum, not complemented. */
    uint16_t ps = csum_fold(csum_pseudo(g->saddr, g->daddr, IPPROTO_TCP, (uint16_t)(total - 20)));
    memcpy(h + 36, &ps, 2);
    struct virtio_net_hdr vh = {.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
                                .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                .hdr_len = g->hlen,
                                .gso_size = g->mss,
                                .csum_start = 20,
                                .csum_offset = 16};
    int n = 0;
    uint64_t bytes = s0->len;
    c->wiov[n++] = (struct iovec){&vh, VNET_LEN};
    c->wiov[n++] = (struct iovec){h, s0->len};
    for (int s = s0->next; s >= 0; s = c->segs[s].next) {
      c->wiov[n++] = (struct iovec){c->segs[s].p + g->hlen, c->segs[s].len - g->hlen};
      bytes += c->segs[s].len;
    }
    if (writev(w->tun, c->wiov, n) >= 0) {
      CINC(w->c.rx_packets, g->nseg);
      CINC(w->c.rx_bytes, bytes);
      CINC(w->c.tun_writes, 1);
      HIST(w->c, H_RX_WRITE, g->nseg);
    } else
      CINC(w->c.drops[DROP_TUN_WRITE], g->nseg);
  }
  c->ng = 0;
  c->nsegs = 0;
}

bool rx_round(struct worker *w, struct table *t) {
  struct rxctx *c = w->rx;
  for (int i = 0; i < c->vlen; i++) {
    c->iov[i] = (struct iovec){c->bufs[i], RX_BUF};
    c->mm[i].msg_hdr = (struct msghdr){.msg_name = &c->src[i],
                                       .msg_namelen = sizeof c->src[i],
                                       .msg_iov = &c->iov[i],
                                       .msg_iovlen = 1,
                                       .msg_control = c->cm[i].buf,
                                       .msg_controllen = sizeof c->cm[i].buf};
    c->mm[i].msg_len = 0;
  }
  int r = c->vlen == 1 ? (int)recvmsg(w->sock, &c->mm[0].msg_hdr, MSG_DONTWAIT)
                       : recvmmsg(w->sock, c->mm, (unsigned)c->vlen, MSG_DONTWAIT, NULL);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) drain_errqueue(w, t);
    return false;
  }
  if (c->vlen == 1) {
    c->mm[0].msg_len = (unsigned)r;
    r = 1;
  }
  CINC(w->c.rx_syscalls, 1);
  unsigned total = 0;
  for (int i = 0; i < r; i++) {
    struct msghdr *mh = &c->mm[i].msg_hdr;
    size_t len = c->mm[i].msg_len, gso = len;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int v;
        memcpy(&v, CMSG_DATA(cm), sizeof v);
        if (v > 0) gso = (size_t)v;
      }
    bool peer = mh->msg_namelen >= sizeof(struct sockaddr_in) && table_source(t, c->src[i].sin_addr.s_addr);
    if (len == 0 || gso == 0 || (mh->msg_flags & MSG_TRUNC)) {
      total++;
      CINC(w->c.drops[!peer ? DROP_NOT_PEER : len == 0 ? DROP_SHORT : DROP_BAD_LENGTH], 1);
      continue;
    }
    for (size_t off = 0; off < len; off += gso) {
      size_t n = len - off < gso ? len - off : gso;
      total++;
      if (!peer) {
        CINC(w->c.drops[DROP_NOT_PEER], 1);
        continue;
      }
      int d = rx_check(t, c->bufs[i] + off, n);
      if (d >= 0) {
        CINC(w->c.drops[d], 1);
        continue;
      }
      rx_add(c, c->bufs[i] + off, n);
    }
  }
  HIST(w->c, H_RX_RECV, total);
  rx_flush(w, c);
  return true;
}
