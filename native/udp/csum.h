/*
 * The Internet checksum (RFC 1071), summed in memory order: 32-bit words are added into a 64-bit
 * accumulator (no carry handling inside the loop, so the compiler can vectorise it) and folded at the
 * end. The result is in the same byte order as the data, so it is stored with memcpy, never swapped.
 * Each call must start at an even offset of the checksummed stream (every caller does).
 */
#ifndef WEFT_UDP_CSUM_H
#define WEFT_UDP_CSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "csum.h assumes a little-endian machine"
#endif

static inline uint64_t csum_add(const void *buf, size_t n, uint64_t acc) {
  const uint8_t *p = buf;
  while (n >= 64) {
    uint32_t w[16];
    memcpy(w, p, 64);
    for (int i = 0; i < 16; i++) acc += w[i];
    p += 64;
    n -= 64;
  }
  while (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t h;
    memcpy(&h, p, 2);
    acc += h;
    p += 2;
    n -= 2;
  }
  if (n) acc += *p; /* the odd byte is the high-order byte of a big-endian word: low in memory order */
  return acc;
}

/* Folds to 16 bits (not complemented). */
static inline uint16_t csum_fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

/* The TCP/UDP pseudo header; addresses in network order as they sit in the IP header. */
static inline uint64_t csum_pseudo(uint32_t saddr, uint32_t daddr, uint8_t proto, uint16_t len) {
  return (uint64_t)saddr + daddr + (uint16_t)(proto << 8) + (uint16_t)((len >> 8) | (len << 8));
}

/* Stores ~fold(acc) at p (a checksum field). */
static inline void csum_store(uint8_t *p, uint64_t acc) {
  uint16_t c = (uint16_t)~csum_fold(acc);
  memcpy(p, &c, 2);
}

static inline void ip_set_checksum(uint8_t *ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  csum_store(ip + 10, csum_add(ip, ihl, 0));
}

static inline bool ip_checksum_ok(const uint8_t *ip, size_t ihl) {
  return csum_fold(csum_add(ip, ihl, 0)) == 0xffff;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
/* An address field, kept in network order. */
static inline uint32_t rdaddr(const uint8_t *p) {
  uint32_t a;
  memcpy(&a, p, 4);
  return a;
}

#endif
