/*
 * TUN → UDP. A round reads what the TUN device has (up to a batch), turns every packet into wire
 * segments — one inner IPv4 packet each, at most the peer's path MTU — and sends them all with one
 * sendmmsg, where each message is a peer's run of equal-sized segments sent as one UDP_SEGMENT (GSO)
 * datagram train. Headers of the segments live in an arena; payloads are never copied (iovecs point into
 * the packet as the kernel handed it over).
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <arpa/inet.h>
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csum.h"

#define TX_SLOTS_MAX 16
#define SLOT_SIZE (VNET_LEN + IP_MAX + 64)
#define MAX_MSGS 64
#define MAX_SEGS 1024
#define HDR_ARENA (MAX_SEGS * 128)
#define MAX_IOV (MAX_SEGS * 2)

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

struct txmsg {
  struct peer *peer;
  uint32_t bytes;
  uint16_t segsz, nseg;
  bool closed; /* its last segment is short: nothing may follow in the same GSO send */
  int iov0;
};

struct txctx {
  uint8_t *slots[TX_SLOTS_MAX];
  int nslots, maxmsgs, maxsegs;
  struct txmsg m[MAX_MSGS];
  int n;
  struct mmsghdr mm[MAX_MSGS];
  struct sockaddr_in dst[MAX_MSGS];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } cm[MAX_MSGS];
  struct iovec iov[MAX_IOV];
  int niov;
  size_t used;
  uint8_t arena[HDR_ARENA];
};

int tx_init(struct worker *w) {
  struct txctx *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->nslots = cfg.offload ? (cfg.batch < TX_SLOTS_MAX ? cfg.batch : TX_SLOTS_MAX) : 1;
  c->maxmsgs = cfg.offload ? (cfg.batch < MAX_MSGS ? cfg.batch : MAX_MSGS) : 1;
  c->maxsegs = cfg.offload ? GSO_MAX_SEGS : 1;
  for (int i = 0; i < c->nslots; i++)
    if (!(c->slots[i] = malloc(SLOT_SIZE))) return -1;
  w->tx = c;
  w->gso_ok = cfg.offload;
  return 0;
}

static inline uint32_t clamp_inner(uint32_t path_mtu) {
  uint32_t m = path_mtu > OVERHEAD ? path_mtu - OVERHEAD : 0;
  if (m < MIN_INNER_MTU) m = MIN_INNER_MTU;
  return m > cfg.mtu ? cfg.mtu : m;
}

uint32_t probe_mtu(int probe_sock, uint32_t peer_ip) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cfg.port), .sin_addr = {peer_ip}};
  if (connect(probe_sock, (struct sockaddr *)&a, sizeof a) < 0) return 0;
  int mtu = 0;
  socklen_t l = sizeof mtu;
  if (getsockopt(probe_sock, IPPROTO_IP, IP_MTU, &mtu, &l) < 0) return 0;
  return (uint32_t)mtu;
}

/* The peer's path got narrower than we thought: remember it (workers and ICMP use it at once). */
static void lower_mtu(struct worker *w, struct peer *p, uint32_t path_mtu) {
  if (!path_mtu) return;
  uint32_t inner = clamp_inner(path_mtu);
  uint32_t was = atomic_load(&p->mtu);
  if (inner < was) {
    atomic_store(&p->mtu, inner);
    CINC(w->c.pmtu_events, 1);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &p->ip, ip, sizeof ip);
    log_msg("path to %s now carries inner packets of %u bytes (was %u): ICMP from the path", ip, inner, was);
  }
}

void drain_errqueue(struct worker *w, struct table *t) {
  for (int k = 0; k < 64; k++) {
    char data[64];
    union {
      char buf[512];
      struct cmsghdr align;
    } ctrl;
    struct sockaddr_in from = {0};
    struct iovec iov = {data, sizeof data};
    struct msghdr mh = {.msg_name = &from,
                        .msg_namelen = sizeof from,
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctrl.buf,
                        .msg_controllen = sizeof ctrl.buf};
    if (recvmsg(w->sock, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
      if (cm->cmsg_level != IPPROTO_IP || cm->cmsg_type != IP_RECVERR) continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(cm), sizeof ee);
      bool frag = (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == 3 && ee.ee_code == 4) ||
                  (ee.ee_origin == SO_EE_ORIGIN_LOCAL && ee.ee_errno == EMSGSIZE);
      if (!frag) continue;
      struct peer *p = table_source(t, from.sin_addr.s_addr);
      if (p) lower_mtu(w, p, ee.ee_info);
    }
  }
}

static void tx_flush(struct worker *w, struct txctx *c);

/* Makes room for one more segment with an `hlen`-byte header in the arena; returns where it goes. */
static uint8_t *tx_reserve(struct worker *w, struct txctx *c, size_t hlen) {
  if (c->used + hlen > HDR_ARENA || c->niov + 2 > MAX_IOV || c->n >= c->maxmsgs) tx_flush(w, c);
  uint8_t *h = c->arena + c->used;
  c->used += (hlen + 7) & ~(size_t)7;
  return h;
}

/* Appends one segment (header + payload) to the peer's run, or opens a new message for it. */
static void tx_add(struct txctx *c, struct worker *w, struct peer *p, uint8_t *h, size_t hl, uint8_t *pl,
                   size_t pll) {
  size_t seg = hl + pll;
  struct txmsg *m = c->n ? &c->m[c->n - 1] : NULL;
  int maxsegs = w->gso_ok ? c->maxsegs : 1;
  if (!(m && m->peer == p && !m->closed && m->nseg < maxsegs && seg <= m->segsz &&
        m->bytes + seg <= UDP_PAYLOAD_MAX)) {
    m = &c->m[c->n++];
    *m = (struct txmsg){.peer = p, .segsz = (uint16_t)seg, .iov0 = c->niov};
  }
  c->iov[c->niov++] = (struct iovec){h, hl};
  if (pll) c->iov[c->niov++] = (struct iovec){pl, pll};
  m->nseg++;
  m->bytes += (uint32_t)seg;
  if (seg < m->segsz) m->closed = true;
}

/* Copies the start of message i's first segment (for an ICMP error that quotes it). */
static size_t first_segment(struct txctx *c, int i, uint8_t *out, size_t cap) {
  struct txmsg *m = &c->m[i];
  int end = i + 1 < c->n ? c->m[i + 1].iov0 : c->niov;
  size_t n = 0;
  for (int k = m->iov0; k < end && k < m->iov0 + 2 && n < cap; k++) {
    size_t l = c->iov[k].iov_len < cap - n ? c->iov[k].iov_len : cap - n;
    memcpy(out + n, c->iov[k].iov_base, l);
    n += l;
  }
  return n;
}

/* The kernel refused a datagram as too big: learn the path MTU, tell the sender if it asked (DF). */
static void tx_too_big(struct worker *w, struct txctx *c, int i, struct table *t) {
  struct txmsg *m = &c->m[i];
  lower_mtu(w, m->peer, probe_mtu(w->probe, m->peer->ip));
  uint8_t q[576];
  size_t n = first_segment(c, i, q, sizeof q);
  if (n >= 20 && (q[6] & 0x40)) icmp_error(w, t, q, n, 3, 4, (uint16_t)atomic_load(&m->peer->mtu));
  CINC(w->c.drops[DROP_TOO_BIG], m->nseg);
}

/* GSO is not available on this path (EIO): send message i's segments one by one from now on. */
static void tx_send_singly(struct worker *w, struct txctx *c, int i) {
  struct txmsg *m = &c->m[i];
  int end = i + 1 < c->n ? c->m[i + 1].iov0 : c->niov;
  for (int k = m->iov0; k < end;) {
    /* A segment is one or two iovecs: header, then payload unless the header was the whole packet. */
    size_t hl = c->iov[k].iov_len;
    int cnt = 1;
    if (k + 1 < end) {
      const uint8_t *h = c->iov[k].iov_base;
      if (hl >= 4 && rd16(h + 2) > hl) cnt = 2;
    }
    struct msghdr mh = {.msg_name = &c->dst[i], .msg_namelen = sizeof c->dst[i], .msg_iov = &c->iov[k],
                        .msg_iovlen = (size_t)cnt};
    ssize_t r = sendmsg(w->sock, &mh, 0);
    size_t len = hl + (cnt == 2 ? c->iov[k + 1].iov_len : 0);
    if (r < 0)
      CINC(w->c.drops[DROP_SEND], 1);
    else {
      CINC(w->c.tx_packets, 1);
      CINC(w->c.tx_bytes, len);
      CINC(w->c.tx_syscalls, 1);
      HIST(w->c, H_TX_SEND, 1);
    }
    k += cnt;
  }
}

/* At most one line per 10 s per worker about datagrams the socket refused. */
static void note_send_error(struct worker *w, int err, unsigned segs) {
  static _Thread_local uint64_t last;
  uint64_t now = now_ns();
  if (now - last < 10000000000ull) return;
  last = now;
  log_msg("worker %d: %u packets not sent: %s", w->id, segs, strerror(err));
}

static void tx_flush(struct worker *w, struct txctx *c) {
  if (!c->n) return;
  struct table *t = atomic_load(&w->hazard);
  for (int i = 0; i < c->n; i++) {
    struct txmsg *m = &c->m[i];
    int end = i + 1 < c->n ? c->m[i + 1].iov0 : c->niov;
    c->dst[i] = (struct sockaddr_in){
        .sin_family = AF_INET, .sin_port = htons(cfg.port), .sin_addr = {m->peer->ip}};
    struct msghdr *h = &c->mm[i].msg_hdr;
    *h = (struct msghdr){.msg_name = &c->dst[i],
                         .msg_namelen = sizeof c->dst[i],
                         .msg_iov = &c->iov[m->iov0],
                         .msg_iovlen = (size_t)(end - m->iov0)};
    if (m->nseg > 1) {
      h->msg_control = c->cm[i].buf;
      h->msg_controllen = sizeof c->cm[i].buf;
      struct cmsghdr *cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gso = m->segsz;
      memcpy(CMSG_DATA(cm), &gso, sizeof gso);
    }
  }
  int i = 0, retries = 0;
  while (i < c->n) {
    int r;
    if (c->n - i == 1)
      r = sendmsg(w->sock, &c->mm[i].msg_hdr, 0) < 0 ? -1 : 1;
    else
      r = sendmmsg(w->sock, &c->mm[i], (unsigned)(c->n - i), 0);
    if (r > 0) {
      uint64_t segs = 0;
      for (int k = i; k < i + r; k++) {
        segs += c->m[k].nseg;
        CINC(w->c.tx_bytes, c->m[k].bytes);
      }
      CINC(w->c.tx_packets, segs);
      CINC(w->c.tx_syscalls, 1);
      HIST(w->c, H_TX_SEND, segs);
      i += r;
      retries = 0;
      continue;
    }
    int e = errno;
    if (e == EINTR) continue;
    struct txmsg *m = &c->m[i];
    /* An ICMP error from an earlier datagram is reported once, instead of sending: try again. */
    if ((e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN) && retries++ < 2)
      continue;
    if (e == EMSGSIZE || (e == EINVAL && m->nseg > 1)) {
      if (t) tx_too_big(w, c, i, t);
    } else if (e == EIO && m->nseg > 1) {
      if (w->gso_ok) log_msg("UDP GSO refused by the kernel (EIO): sending one datagram per packet");
      w->gso_ok = false;
      CINC(w->c.gso_fallbacks, 1);
      tx_send_singly(w, c, i);
    } else if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      /* The socket buffer stayed full for a whole SO_SNDTIMEO: drop the rest of this flush rather
       * than wait again for every message (TCP backs off; the TUN device keeps queueing). */
      unsigned segs = 0;
      for (int k = i; k < c->n; k++) segs += c->m[k].nseg;
      CINC(w->c.drops[DROP_SEND], segs);
      note_send_error(w, e, segs);
      break;
    } else {
      CINC(w->c.drops[DROP_SEND], m->nseg);
      note_send_error(w, e, m->nseg);
    }
    i++;
    retries = 0;
  }
  c->n = 0;
  c->niov = 0;
  c->used = 0;
}

/* Completes a checksum the kernel left partial (TUN_F_CSUM): the field holds the pseudo-header sum. */
static bool complete_csum(uint8_t *pkt, size_t plen, const struct virtio_net_hdr *vh) {
  size_t start = vh->csum_start, off = vh->csum_offset;
  if (start + off + 2 > plen || (start & 1)) return false;
  csum_store(pkt + start + off, csum_add(pkt + start, plen - start, 0));
  return true;
}

/* A TSO super-packet: cut into segments of at most `limit` bytes, each a complete TCP/IPv4 packet. */
static void tx_tso(struct worker *w, struct table *t, struct txctx *c, struct peer *p, uint8_t *pkt,
                   size_t plen, size_t ihl, size_t mss, uint32_t limit) {
  if (pkt[9] != IPPROTO_TCP || plen < ihl + 20) goto bad;
  uint8_t *tcp = pkt + ihl;
  size_t thl = (size_t)(tcp[12] >> 4) * 4;
  size_t hlen = ihl + thl;
  if (thl < 20 || hlen >= plen || mss == 0) goto bad;
  size_t total = plen - hlen;
  if (hlen + mss > limit) {
    if (pkt[6] & 0x40) {
      icmp_error(w, t, pkt, plen, 3, 4, (uint16_t)limit);
      CINC(w->c.drops[DROP_TOO_BIG], (total + mss - 1) / mss);
      return;
    }
    mss = limit - hlen; /* no DF: smaller segments are as good */
  }
  size_t nseg = (total + mss - 1) / mss;
  HIST(w->c, H_TUN_READ, nseg);
  uint32_t seq0 = rd32(tcp + 4);
  uint16_t id0 = rd16(pkt + 4);
  uint8_t flags = tcp[13], ttl = (uint8_t)(pkt[8] - 1);
  uint32_t saddr = rdaddr(pkt + 12), daddr = rdaddr(pkt + 16);
  uint8_t *payload = pkt + hlen;
  for (size_t i = 0; i < nseg; i++) {
    size_t off = i * mss, len = total - off < mss ? total - off : mss;
    uint8_t *h = tx_reserve(w, c, hlen);
    memcpy(h, pkt, hlen);
    wr16(h + 2, (uint16_t)(hlen + len));
    wr16(h + 4, (uint16_t)(id0 + i));
    h[8] = ttl;
    ip_set_checksum(h, ihl);
    uint8_t *th = h + ihl;
    wr32(th + 4, seq0 + (uint32_t)off);
    uint8_t f = flags;
    if (i + 1 < nseg) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (i > 0) f &= (uint8_t)~TCP_CWR;
    th[13] = f;
    th[16] = th[17] = 0;
    uint64_t acc = csum_pseudo(saddr, daddr, IPPROTO_TCP, (uint16_t)(thl + len));
    acc = csum_add(th, thl, acc);
    acc = csum_add(payload + off, len, acc);
    csum_store(th + 16, acc);
    tx_add(c, w, p, h, hlen, payload + off, len);
  }
  return;
bad:
  CINC(w->c.drops[DROP_TUN_MALFORMED], 1);
}

/* A packet without DF that does not fit the path: IPv4 fragments of it, as a router would make. */
static void tx_fragment(struct worker *w, struct txctx *c, struct peer *p, uint8_t *pkt, size_t plen,
                        size_t ihl, uint32_t limit) {
  size_t data = plen - ihl, chunk = ((limit - ihl) / 8) * 8;
  uint16_t fo = rd16(pkt + 6);
  size_t base = (size_t)(fo & 0x1fff) * 8;
  bool mf = fo & 0x2000;
  size_t n = 0;
  for (size_t off = 0; off < data; off += chunk, n++) {
    size_t len = data - off < chunk ? data - off : chunk;
    uint8_t *h = tx_reserve(w, c, ihl);
    memcpy(h, pkt, ihl);
    wr16(h + 2, (uint16_t)(ihl + len));
    wr16(h + 6, (uint16_t)(((base + off) / 8) | ((off + len < data || mf) ? 0x2000 : 0)));
    h[8] = (uint8_t)(pkt[8] - 1);
    ip_set_checksum(h, ihl);
    tx_add(c, w, p, h, ihl, pkt + ihl + off, len);
  }
  HIST(w->c, H_TUN_READ, n);
}

static void tx_packet(struct worker *w, struct table *t, struct txctx *c, uint8_t *buf, size_t len) {
  struct virtio_net_hdr vh = {0};
  uint8_t *pkt = buf;
  size_t plen = len;
  CINC(w->c.tun_reads, 1);
  if (cfg.offload) {
    if (len < (size_t)VNET_LEN) goto bad;
    memcpy(&vh, buf, VNET_LEN);
    pkt += VNET_LEN;
    plen -= VNET_LEN;
  }
  if (plen < 1 || plen > IP_MAX) goto bad;
  if ((pkt[0] >> 4) != 4) {
    CINC(w->c.drops[DROP_TUN_NOT_IPV4], 1);
    return;
  }
  size_t ihl = (size_t)(pkt[0] & 15) * 4;
  if (plen < 20 || ihl < 20 || ihl > plen) goto bad;
  uint8_t gso = vh.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  if (gso == VIRTIO_NET_HDR_GSO_NONE) {
    if (rd16(pkt + 2) != plen) goto bad;
  } else if (gso != VIRTIO_NET_HDR_GSO_TCPV4)
    goto bad;

  struct peer *p = table_route(t, rdaddr(pkt + 16));
  if (!p) {
    icmp_error(w, t, pkt, plen, 3, 0, 0);
    CINC(w->c.drops[DROP_NO_ROUTE], 1);
    return;
  }
  if (pkt[8] <= 1) {
    icmp_error(w, t, pkt, plen, 11, 0, 0);
    CINC(w->c.drops[DROP_TTL], 1);
    return;
  }
  uint32_t limit = atomic_load_explicit(&p->mtu, memory_order_relaxed);
  if (gso == VIRTIO_NET_HDR_GSO_TCPV4) {
    tx_tso(w, t, c, p, pkt, plen, ihl, vh.gso_size, limit);
    return;
  }
  if ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !complete_csum(pkt, plen, &vh)) goto bad;
  if (plen > limit) {
    if (pkt[6] & 0x40) {
      icmp_error(w, t, pkt, plen, 3, 4, (uint16_t)limit);
      CINC(w->c.drops[DROP_TOO_BIG], 1);
    } else
      tx_fragment(w, c, p, pkt, plen, ihl, limit);
    return;
  }
  HIST(w->c, H_TUN_READ, 1);
  /* TTL − 1 with the header checksum patched incrementally (RFC 1624). */
  pkt[8]--;
  uint32_t s = (uint32_t)rd16(pkt + 10) + 0x100;
  wr16(pkt + 10, (uint16_t)((s & 0xffff) + (s >> 16)));
  tx_reserve(w, c, 0);
  tx_add(c, w, p, pkt, plen, NULL, 0);
  return;
bad:
  CINC(w->c.drops[DROP_TUN_MALFORMED], 1);
}

bool tx_round(struct worker *w, struct table *t) {
  struct txctx *c = w->tx;
  int got = 0;
  for (int i = 0; i < c->nslots; i++) {
    ssize_t r = read(w->tun, c->slots[i], SLOT_SIZE);
    if (r < 0) {
      if (errno == EINTR) {
        i--;
        continue;
      }
      break; /* EAGAIN; or the device is gone, which the worker's poll reports (POLLERR) */
    }
    got++;
    tx_packet(w, t, c, c->slots[i], (size_t)r);
  }
  tx_flush(w, c);
  return got > 0;
}
