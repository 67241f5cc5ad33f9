/*
 * What weft-udp's threads share: the configuration, the peer table, the stop flag, the workers, the
 * names of the drop reasons, and the log. Defined here, apart from main.c, so that the forwarding
 * loops (tx.c, rx.c) depend on this file and the header only, never on the process's main.
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

struct config cfg = {.tun = "weft.udp", .port = 8285, .mtu = 1472, .batch = 64, .workers = 1};
_Atomic(struct table *) g_table;
atomic_bool g_stop;
struct worker workers[MAX_WORKERS];

const char *const drop_names[DROP_N] = {
    "short",   "not_ipv4",  "bad_header", "bad_length", "truncated",    "not_peer",    "wrong_dest",
    "tun_write", "no_route", "ttl_exceeded", "too_big", "send_error", "tun_not_ipv4", "tun_malformed"};
const unsigned char drop_is_tx[DROP_N] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};

void log_msg(const char *fmt, ...) {
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s weft-udp[%d]: ", ts, (int)getpid());
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
