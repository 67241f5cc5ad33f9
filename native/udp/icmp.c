/*
 * ICMP errors the tunnel owes a sender, written back into the TUN device so that the kernel routes
 * them to it: net unreachable (no peer owns the destination), fragmentation needed (DF set and larger
 * than the path), time exceeded (TTL used up). Never about an ICMP error, a non-first fragment or a
 * multicast/broadcast source (RFC 1122 3.2.2); at most 100 a second per worker. The source is this
 * node's tunnel address (its subnet's .0), which the agent lets the TUN device accept (accept_local).
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "csum.h"

#define ICMP_QUOTE 548 /* the error stays within 576 bytes */
#define RATE_PER_S 100.0
#define BURST 50.0

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool tun_write_one(struct worker *w, const uint8_t *pkt, size_t len) {
  if (cfg.offload) {
    static const struct virtio_net_hdr none;
    struct iovec iov[2] = {{(void *)&none, VNET_LEN}, {(void *)pkt, len}};
    return writev(w->tun, iov, 2) >= 0;
  }
  return write(w->tun, pkt, len) >= 0;
}

static bool rate_ok(struct worker *w) {
  uint64_t now = now_ns();
  w->icmp_tokens += (double)(now - w->icmp_last_ns) * RATE_PER_S / 1e9;
  if (w->icmp_tokens > BURST) w->icmp_tokens = BURST;
  w->icmp_last_ns = now;
  if (w->icmp_tokens < 1) return false;
  w->icmp_tokens -= 1;
  return true;
}

void icmp_error(struct worker *w, const struct table *t, const uint8_t *orig, size_t len, uint8_t type,
                uint8_t code, uint16_t mtu) {
  if (!t->has_own || len < 20) return;
  size_t ihl = (size_t)(orig[0] & 15) * 4;
  if (ihl < 20 || len < ihl || (rd16(orig + 6) & 0x1fff)) return;
  if (orig[9] == 1) {
    if (len < ihl + 1) return;
    uint8_t ty = orig[ihl];
    if (ty != 0 && ty != 8 && ty != 13 && ty != 14) return; /* only about queries, never about errors */
  }
  uint32_t src = rdaddr(orig + 12);
  uint8_t first = orig[12];
  if (src == 0 || src == 0xffffffffu || first >= 224 || first == 127) return;
  if (!rate_ok(w)) return;

  uint8_t pkt[28 + ICMP_QUOTE];
  size_t quote = len < ICMP_QUOTE ? len : ICMP_QUOTE;
  memset(pkt, 0, 28);
  pkt[0] = 0x45;
  pkt[1] = 0xc0;
  wr16(pkt + 2, (uint16_t)(28 + quote));
  wr16(pkt + 4, (uint16_t)now_ns());
  pkt[8] = 64;
  pkt[9] = 1;
  memcpy(pkt + 12, &t->tun_addr, 4);
  memcpy(pkt + 16, &src, 4);
  ip_set_checksum(pkt, 20);
  uint8_t *ic = pkt + 20;
  ic[0] = type;
  ic[1] = code;
  if (type == 3 && code == 4) wr16(ic + 6, mtu);
  memcpy(ic + 8, orig, quote);
  csum_store(ic + 2, csum_add(ic, 8 + quote, 0));
  if (tun_write_one(w, pkt, 28 + quote))
    CINC(w->c.icmp[type == 11 ? ICMPK_TTL : code == 4 ? ICMPK_FRAG : ICMPK_UNREACH], 1);
}
