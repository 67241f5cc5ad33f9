/*
 * The peer table: which peer (public IP) owns an inner destination, and whether a datagram's source is
 * a current peer. Built whole from the agent's text ("own=10.244.1.0/24 10.244.2.0/24=198.18.0.12 …"),
 * then published with one atomic pointer store; workers never lock. Lookups are open-addressing hashes
 * (one probe per distinct prefix length, usually one), so a thousand peers cost what two do.
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static inline uint32_t mask_of(int plen) { return plen == 0 ? 0 : htonl(~0u << (32 - plen)); }

static inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  x ^= x >> 16;
  return x;
}

static bool parse_cidr(const char *s, size_t n, uint32_t *net, int *plen) {
  char buf[32];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = 0;
  char *slash = strchr(buf, '/');
  if (!slash) return false;
  *slash = 0;
  char *end;
  long l = strtol(slash + 1, &end, 10);
  if (*end || end == slash + 1 || l < 0 || l > 32) return false;
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return false;
  *plen = (int)l;
  *net = a.s_addr & mask_of(*plen);
  return a.s_addr == *net; /* no host bits */
}

static bool parse_ip(const char *s, size_t n, uint32_t *ip) {
  char buf[20];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = 0;
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return false;
  *ip = a.s_addr;
  return true;
}

void table_free(struct table *t) {
  if (!t) return;
  free(t->peers);
  free(t->rslots);
  free(t->sslots);
  free(t);
}

static uint32_t slots_for(size_t n) {
  uint32_t s = 16;
  while (s < n * 2 + 1) s <<= 1;
  return s;
}

struct table *table_parse(const char *spec, const struct table *old, char *err, size_t errlen) {
  struct table *t = calloc(1, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  size_t cap = 16;
  t->peers = calloc(cap, sizeof *t->peers);
  if (!t->peers) goto oom;
  bool seen_len[33] = {0};
  const char *p = spec;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *tok = p;
    while (*p && *p != ' ') p++;
    size_t n = (size_t)(p - tok);
    if (n > 4 && memcmp(tok, "own=", 4) == 0) {
      int plen;
      if (!parse_cidr(tok + 4, n - 4, &t->own_net, &plen) || plen > 31) {
        snprintf(err, errlen, "bad own subnet \"%.*s\"", (int)n, tok);
        goto fail;
      }
      t->own_mask = mask_of(plen);
      t->tun_addr = t->own_net;
      t->has_own = true;
      continue;
    }
    const char *eq = memchr(tok, '=', n);
    uint32_t net, ip;
    int plen;
    if (!eq || !parse_cidr(tok, (size_t)(eq - tok), &net, &plen) ||
        !parse_ip(eq + 1, n - (size_t)(eq - tok) - 1, &ip)) {
      snprintf(err, errlen, "bad peer \"%.*s\" (want SUBNET/LEN=IP)", (int)(n > 60 ? 60 : n), tok);
      goto fail;
    }
    if (t->n == cap) {
      cap *= 2;
      struct peer *np = realloc(t->peers, cap * sizeof *np);
      if (!np) goto oom;
      t->peers = np;
    }
    struct peer *pe = &t->peers[t->n++];
    memset(pe, 0, sizeof *pe);
    pe->net = net;
    pe->mask = mask_of(plen);
    pe->plen = (uint8_t)plen;
    pe->ip = ip;
    uint32_t mtu = cfg.mtu;
    /* A path MTU learned for this address survives the swap. */
    if (old) {
      struct peer *o = table_source(old, ip);
      if (o) mtu = atomic_load(&o->mtu);
    }
    atomic_store(&pe->mtu, mtu);
    seen_len[plen] = true;
  }
  for (int l = 32; l >= 0; l--)
    if (seen_len[l]) t->lens[t->nlens++] = (uint8_t)l;

  uint32_t ns = slots_for(t->n);
  t->rmask = t->smask = ns - 1;
  t->rslots = malloc(ns * sizeof(int32_t));
  t->sslots = malloc(ns * sizeof(int32_t));
  if (!t->rslots || !t->sslots) goto oom;
  memset(t->rslots, 0xff, ns * sizeof(int32_t));
  memset(t->sslots, 0xff, ns * sizeof(int32_t));
  for (size_t i = 0; i < t->n; i++) {
    struct peer *pe = &t->peers[i];
    uint32_t h = hash32(pe->net ^ (uint32_t)pe->plen * 0x9e3779b1u) & t->rmask;
    bool dup = false;
    while (t->rslots[h] >= 0) {
      struct peer *q = &t->peers[t->rslots[h]];
      if (q->net == pe->net && q->plen == pe->plen) {
        dup = true;
        break;
      }
      h = (h + 1) & t->rmask;
    }
    if (dup) {
      char a[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &pe->net, a, sizeof a);
      snprintf(err, errlen, "subnet %s/%u listed twice", a, pe->plen);
      goto fail;
    }
    t->rslots[h] = (int32_t)i;
    h = hash32(pe->ip) & t->smask;
    while (t->sslots[h] >= 0 && t->peers[t->sslots[h]].ip != pe->ip) h = (h + 1) & t->smask;
    if (t->sslots[h] < 0) t->sslots[h] = (int32_t)i;
  }
  return t;
oom:
  snprintf(err, errlen, "out of memory");
fail:
  table_free(t);
  return NULL;
}

struct peer *table_route(const struct table *t, uint32_t dst) {
  for (int i = 0; i < t->nlens; i++) {
    int plen = t->lens[i];
    uint32_t key = dst & mask_of(plen);
    uint32_t h = hash32(key ^ (uint32_t)plen * 0x9e3779b1u) & t->rmask;
    int32_t idx;
    while ((idx = t->rslots[h]) >= 0) {
      struct peer *p = &t->peers[idx];
      if (p->net == key && p->plen == plen) return p;
      h = (h + 1) & t->rmask;
    }
  }
  return NULL;
}

struct peer *table_source(const struct table *t, uint32_t src) {
  if (t->n == 0) return NULL;
  uint32_t h = hash32(src) & t->smask;
  int32_t idx;
  while ((idx = t->sslots[h]) >= 0) {
    if (t->peers[idx].ip == src) return &t->peers[idx];
    h = (h + 1) & t->smask;
  }
  return NULL;
}
