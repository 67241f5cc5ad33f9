/*
 * weft-udp's process: arguments, the TUN queues and UDP sockets (one pair per worker thread), and the
 * control socket through which the agent drives it.
 *
 *   weft-udp --tun weft.udp --local 198.18.0.11 --port 8285 --mtu 1472 [--batch 64] [--workers 2]
 *
 * The TUN device is the agent's (persistent, multi-queue, created by src/kernel/udp-tunnel.ts): this
 * process only attaches queues to it, so its address and routes stay when the process is restarted.
 *
 * Control socket: the abstract unix socket "@weft-udp/<tun>" (abstract names belong to the network
 * namespace, so every node of a lab has its own), root only. One command per line, one reply line:
 *   config                 → {"tun":…,"local":…,"port":…,"mtu":…,"batch":…,"workers":…,"pid":…}
 *   peers own=S/L S/L=IP … → "ok peers=N" (the whole table, swapped atomically) or "error …"
 *   stats                  → counters as one JSON object
 *   ping → "pong"; quit → "bye" and exit 0
 * The process lives on when the agent dies (so a restarted agent finds the data path still moving
 * packets, and adopts it); SIGTERM or "quit" stop it.
 */
#include "weft-udp.h" /* first: it defines _GNU_SOURCE */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/filter.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <linux/close_range.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>


static const char *const hist_names[H_N] = {"tun_read", "tx_send", "rx_recv", "rx_write"};

static uint64_t started_ns;
static int main_wake = -1; /* a worker that stops the process wakes the control loop through it */
static int exit_code;
static uint64_t ctl_pmtu_events;

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_msg("%s", msg);
  exit(code);
}

static void usage(void) {
  fprintf(stderr, "usage: weft-udp --tun NAME --local IP [--port 8285] [--mtu 1472] [--batch 64] "
                  "[--workers N] [--control NAME]\n");
  exit(2);
}

static int parse_int(const char *s, const char *what, long lo, long hi) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || end == s || v < lo || v > hi) {
    fprintf(stderr, "weft-udp: --%s: \"%s\" must be an integer from %ld to %ld\n", what, s, lo, hi);
    exit(2);
  }
  return (int)v;
}

static void parse_args(int argc, char **argv) {
  static const struct option opts[] = {{"tun", 1, 0, 't'},   {"local", 1, 0, 'l'}, {"port", 1, 0, 'p'},
                                       {"mtu", 1, 0, 'm'},   {"batch", 1, 0, 'b'}, {"workers", 1, 0, 'w'},
                                       {"control", 1, 0, 'c'}, {0, 0, 0, 0}};
  bool have_local = false;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (strlen(optarg) >= sizeof cfg.tun) usage();
      strcpy(cfg.tun, optarg);
      break;
    case 'l': {
      struct in_addr a;
      if (inet_pton(AF_INET, optarg, &a) != 1) {
        fprintf(stderr, "weft-udp: --local: \"%s\" is not an IPv4 address\n", optarg);
        exit(2);
      }
      cfg.local = a.s_addr;
      have_local = true;
      break;
    }
    case 'p': cfg.port = (uint16_t)parse_int(optarg, "port", 1, 65535); break;
    case 'm': cfg.mtu = (uint32_t)parse_int(optarg, "mtu", MIN_INNER_MTU, IP_MAX - OVERHEAD); break;
    case 'b': cfg.batch = parse_int(optarg, "batch", 1, 1024); break;
    case 'w': cfg.workers = parse_int(optarg, "workers", 1, MAX_WORKERS); break;
    case 'c':
      if (strlen(optarg) >= sizeof cfg.control) usage();
      strcpy(cfg.control, optarg);
      break;
    default: usage();
    }
  }
  if (!have_local || optind != argc) usage();
  if (!cfg.control[0]) snprintf(cfg.control, sizeof cfg.control, "weft-udp/%s", cfg.tun);
  cfg.offload = cfg.batch > 1;
  if (!cfg.offload) cfg.workers = 1; /* Flannel's proxy: one thread, one packet per system call */
}

/* ------------------------------------------------------------------ set-up */
static int open_tun_queue(void) {
  if (if_nametoindex(cfg.tun) == 0)
    die(3, "TUN device %s does not exist (the agent creates it before starting weft-udp)", cfg.tun);
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) die(3, "cannot open /dev/net/tun: %s (needs CAP_NET_ADMIN and the tun driver)", strerror(errno));
  struct ifreq ifr = {0};
  memcpy(ifr.ifr_name, cfg.tun, strlen(cfg.tun)); /* parse_args keeps it below IFNAMSIZ */
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (cfg.offload ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0)
    die(3, "cannot attach to TUN device %s: %s (it must be a multi-queue tun device)", cfg.tun,
        strerror(errno));
  unsigned off = cfg.offload ? (TUN_F_CSUM | TUN_F_TSO4) : 0;
  if (ioctl(fd, TUNSETOFFLOAD, off) < 0) die(3, "TUNSETOFFLOAD on %s: %s", cfg.tun, strerror(errno));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void setint(int fd, int level, int opt, int v, const char *what, bool fatal) {
  if (setsockopt(fd, level, opt, &v, sizeof v) < 0) {
    if (fatal) die(3, "setsockopt %s: %s", what, strerror(errno));
    log_msg("setsockopt %s: %s (going on without it)", what, strerror(errno));
  }
}

static int open_udp(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die(3, "socket: %s", strerror(errno));
  if (cfg.workers > 1) setint(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", true);
  int rb = 8 << 20, sb = 4 << 20;
  if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof rb) < 0)
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
  if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof sb) < 0)
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  /* DF on every datagram: a narrower path answers with ICMP, which IP_RECVERR hands to us. */
  setint(s, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO, "IP_MTU_DISCOVER", true);
  setint(s, IPPROTO_IP, IP_RECVERR, 1, "IP_RECVERR", true);
  if (cfg.offload) setint(s, SOL_UDP, UDP_GRO, 1, "UDP_GRO", false);
  /* A full socket buffer waits at most this long per send, then the flush drops what is left. */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(cfg.port), .sin_addr = {cfg.local}};
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &cfg.local, ip, sizeof ip);
    die(3, "cannot bind UDP %s:%u: %s (is another process using the port, or the address not on this node?)",
        ip, cfg.port, strerror(errno));
  }
  return s;
}

/*
 * With several workers, a classic BPF program picks the socket by a hash of the inner packet's
 * addresses and ports (the outer 4-tuple is the same for every flow between two nodes, so the kernel's
 * own reuseport hash would send them all to one worker). Offsets are relative to the UDP payload.
 */
static void attach_reuseport_bpf(int s) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),   /* A = inner source */
      BPF_STMT(BPF_MISC | BPF_TAX, 0),          /* X = A */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),   /* A = inner destination */
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),   /* A ^= X */
      BPF_STMT(BPF_ST, 0),                      /* M[0] = A */
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),   /* X = inner header length */
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0),    /* A = ports */
      BPF_STMT(BPF_LDX | BPF_MEM, 0),           /* X = M[0] */
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),   /* A ^= X */
      BPF_STMT(BPF_MISC | BPF_TAX, 0),          /* X = A */
      BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),  /* A >>= 16 */
      BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),   /* A ^= X */
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, (unsigned)cfg.workers),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(s, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
    log_msg("SO_ATTACH_REUSEPORT_CBPF: %s (flows are spread by the kernel's hash)", strerror(errno));
}

/* ------------------------------------------------------------------ workers */
static struct table *hazard_acquire(struct worker *w) {
  struct table *t;
  do {
    t = atomic_load(&g_table);
    atomic_store(&w->hazard, t);
  } while (t != atomic_load(&g_table));
  return t;
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  while (!atomic_load(&g_stop)) {
    struct table *t = hazard_acquire(w);
    bool a = tx_round(w, t);
    bool b = rx_round(w, t);
    if (a || b) continue;
    atomic_store(&w->hazard, NULL);
    struct pollfd p[3] = {{w->tun, POLLIN, 0}, {w->sock, POLLIN, 0}, {w->wake, POLLIN, 0}};
    if (poll(p, 3, 1000) > 0 && (p[1].revents & POLLERR)) drain_errqueue(w, hazard_acquire(w));
    if (p[0].revents & (POLLERR | POLLHUP)) {
      log_msg("TUN device %s is gone: exiting", cfg.tun);
      exit_code = 4;
      atomic_store(&g_stop, true);
    }
  }
  uint64_t one = 1;
  if (write(main_wake, &one, sizeof one) < 0) { /* the control loop wakes within a second anyway */
  }
  atomic_store(&w->hazard, NULL);
  return NULL;
}

/* Publishes a new table; frees the old one once no worker can still be reading it. */
static void table_swap(struct table *nt) {
  struct table *old = atomic_exchange(&g_table, nt);
  if (!old) return;
  for (;;) {
    bool busy = false;
    for (int i = 0; i < cfg.workers; i++)
      if (atomic_load(&workers[i].hazard) == old) busy = true;
    if (!busy) break;
    usleep(20);
  }
  table_free(old);
}

/* ------------------------------------------------------------------ control */
struct buf {
  char *p;
  size_t n, cap;
};

static void bput(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bput(struct buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->n;
    int k = vsnprintf(b->p ? b->p + b->n : NULL, room, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < room) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap - b->n <= (size_t)k) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) return;
    b->p = np;
    b->cap = cap;
  }
}

static const char *mode_name(void) { return cfg.offload ? "gso" : "batch1"; }

static void reply_config(struct buf *b) {
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &cfg.local, ip, sizeof ip);
  bput(b,
       "{\"version\":\"%s\",\"pid\":%d,\"tun\":\"%s\",\"local\":\"%s\",\"port\":%u,\"mtu\":%u,"
       "\"batch\":%d,\"workers\":%d,\"mode\":\"%s\"}\n",
       WEFT_UDP_VERSION, (int)getpid(), cfg.tun, ip, cfg.port, cfg.mtu, cfg.batch, cfg.workers, mode_name());
}

static void reply_stats(struct buf *b) {
  struct counters s = {0};
  for (int i = 0; i < cfg.workers; i++) {
    struct counters *c = &workers[i].c;
    s.tx_packets += CGET(c->tx_packets);
    s.tx_bytes += CGET(c->tx_bytes);
    s.tx_syscalls += CGET(c->tx_syscalls);
    s.tun_reads += CGET(c->tun_reads);
    s.rx_packets += CGET(c->rx_packets);
    s.rx_bytes += CGET(c->rx_bytes);
    s.rx_syscalls += CGET(c->rx_syscalls);
    s.tun_writes += CGET(c->tun_writes);
    s.pmtu_events += CGET(c->pmtu_events);
    s.gso_fallbacks += CGET(c->gso_fallbacks);
    for (int k = 0; k < ICMPK_N; k++) s.icmp[k] += CGET(c->icmp[k]);
    for (int k = 0; k < DROP_N; k++) s.drops[k] += CGET(c->drops[k]);
    for (int h = 0; h < H_N; h++) {
      s.hsum[h] += CGET(c->hsum[h]);
      for (int k = 0; k < HBUCKETS; k++) s.hist[h][k] += CGET(c->hist[h][k]);
    }
  }
  struct table *t = atomic_load(&g_table);
  bput(b,
       "{\"pid\":%d,\"mode\":\"%s\",\"workers\":%d,\"uptimeSeconds\":%.1f,\"peers\":%zu,"
       "\"tx\":{\"packets\":%lu,\"bytes\":%lu,\"syscalls\":%lu,\"tunReads\":%lu},"
       "\"rx\":{\"packets\":%lu,\"bytes\":%lu,\"syscalls\":%lu,\"tunWrites\":%lu},"
       "\"icmp\":{\"net_unreachable\":%lu,\"frag_needed\":%lu,\"time_exceeded\":%lu},"
       "\"pmtuEvents\":%lu,\"gsoFallbacks\":%lu,\"drops\":{",
       (int)getpid(), mode_name(), cfg.workers, (double)(now_ns() - started_ns) / 1e9, t ? t->n : 0,
       s.tx_packets, s.tx_bytes, s.tx_syscalls, s.tun_reads, s.rx_packets, s.rx_bytes, s.rx_syscalls,
       s.tun_writes, s.icmp[ICMPK_UNREACH], s.icmp[ICMPK_FRAG], s.icmp[ICMPK_TTL],
       s.pmtu_events + ctl_pmtu_events, s.gso_fallbacks);
  for (int k = 0; k < DROP_N; k++)
    bput(b, "%s\"%s\":{\"direction\":\"%s\",\"packets\":%lu}", k ? "," : "", drop_names[k],
         drop_is_tx[k] ? "tx" : "rx", s.drops[k]);
  /* counts[k]: system calls that moved from 2^k to 2^(k+1)-1 inner packets (the last: 128 or more) */
  bput(b, "},\"batches\":{");
  for (int h = 0; h < H_N; h++) {
    bput(b, "%s\"%s\":{\"sum\":%lu,\"counts\":[", h ? "," : "", hist_names[h], s.hsum[h]);
    for (int k = 0; k < HBUCKETS; k++) bput(b, "%s%lu", k ? "," : "", s.hist[h][k]);
    bput(b, "]}");
  }
  bput(b, "}}\n");
}

static void handle_line(char *line, struct buf *out) {
  if (strcmp(line, "config") == 0)
    reply_config(out);
  else if (strcmp(line, "stats") == 0)
    reply_stats(out);
  else if (strcmp(line, "ping") == 0)
    bput(out, "pong\n");
  else if (strcmp(line, "quit") == 0) {
    bput(out, "bye\n");
    atomic_store(&g_stop, true);
  } else if (strncmp(line, "peers", 5) == 0 && (line[5] == ' ' || line[5] == 0)) {
    char err[160];
    struct table *nt = table_parse(line + 5, atomic_load(&g_table), err, sizeof err);
    if (!nt) {
      bput(out, "error %s\n", err);
      return;
    }
    size_t before = atomic_load(&g_table) ? atomic_load(&g_table)->n : 0;
    table_swap(nt);
    if (nt->n != before) log_msg("peer table: %zu peers", nt->n);
    bput(out, "ok peers=%zu\n", nt->n);
  } else
    bput(out, "error unknown command \"%.40s\" (config, peers, stats, ping, quit)\n", line);
}

#define MAX_CLIENTS 8
#define MAX_LINE (64u << 20)

struct client {
  int fd;
  struct buf in;
};

static void close_client(struct client *c) {
  close(c->fd);
  free(c->in.p);
  *c = (struct client){.fd = -1};
}

/* Reads what a client sent; answers every complete line. Returns false when the client is gone. */
static bool serve_client(struct client *c) {
  bool eof = false;
  for (;;) {
    if (c->in.cap - c->in.n < 65536) {
      size_t cap = c->in.cap ? c->in.cap * 2 : 65536;
      if (cap > MAX_LINE) return false;
      char *np = realloc(c->in.p, cap);
      if (!np) return false;
      c->in.p = np;
      c->in.cap = cap;
    }
    ssize_t r = recv(c->fd, c->in.p + c->in.n, c->in.cap - c->in.n, MSG_DONTWAIT);
    if (r == 0) { /* half-closed: still answer what it sent */
      eof = true;
      break;
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return false;
    }
    c->in.n += (size_t)r;
  }
  size_t start = 0;
  struct buf out = {0};
  for (size_t i = 0; i < c->in.n; i++) {
    if (c->in.p[i] != '\n') continue;
    c->in.p[i] = 0;
    if (i > start && c->in.p[i - 1] == '\r') c->in.p[i - 1] = 0;
    handle_line(c->in.p + start, &out);
    start = i + 1;
  }
  memmove(c->in.p, c->in.p + start, c->in.n - start);
  c->in.n -= start;
  /* Replies are small; a client that does not read them is dropped rather than blocking us. */
  size_t off = 0;
  while (off < out.n) {
    ssize_t w = send(c->fd, out.p + off, out.n - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      free(out.p);
      return false;
    }
    off += (size_t)w;
  }
  free(out.p);
  return !eof;
}

/*
 * Abstract names are byte strings of an exact length. Node.js pads the name with NULs to the whole
 * sun_path, most other clients do not: listen on both spellings.
 */
static int control_listen(bool padded) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) die(3, "socket(AF_UNIX): %s", strerror(errno));
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  size_t n = strlen(cfg.control);
  memcpy(a.sun_path + 1, cfg.control, n); /* abstract: sun_path[0] == 0 */
  socklen_t len = padded ? (socklen_t)sizeof a : (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  if (bind(fd, (struct sockaddr *)&a, len) < 0) {
    if (errno == EADDRINUSE)
      die(5, "another weft-udp already serves %s in this network namespace (@%s)", cfg.tun, cfg.control);
    die(3, "cannot bind the control socket @%s: %s", cfg.control, strerror(errno));
  }
  if (listen(fd, 8) < 0) die(3, "listen: %s", strerror(errno));
  return fd;
}

static bool peer_is_root(int fd) {
  struct ucred cr;
  socklen_t l = sizeof cr;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && (cr.uid == 0 || cr.uid == geteuid());
}

/* Re-reads every peer's path MTU from the kernel (PMTU learned from ICMP, and its expiry). */
static void refresh_pmtu(int probe) {
  struct table *t = atomic_load(&g_table);
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    struct peer *p = &t->peers[i];
    uint32_t m = probe_mtu(probe, p->ip);
    if (!m) continue;
    uint32_t inner = m > OVERHEAD ? m - OVERHEAD : 0;
    if (inner < MIN_INNER_MTU) inner = MIN_INNER_MTU;
    if (inner > cfg.mtu) inner = cfg.mtu;
    uint32_t cur = atomic_load(&p->mtu);
    if (inner != cur) {
      char ip[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &p->ip, ip, sizeof ip);
      log_msg("path to %s now carries inner packets of %u bytes (was %u)", ip, inner, cur);
      atomic_store(&p->mtu, inner);
      ctl_pmtu_events++;
    }
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  close_range(3, ~0u, 0); /* nothing inherited from the agent beyond stdio */
  setvbuf(stderr, NULL, _IOLBF, 0);
  started_ns = now_ns();
  /* First: a second helper for the same device stops here. */
  int lfd[2] = {control_listen(true), control_listen(false)};

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  sigprocmask(SIG_BLOCK, &sigs, NULL); /* inherited by the workers: only signalfd sees them */
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  main_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  char err[64];
  atomic_store(&g_table, table_parse("", NULL, err, sizeof err));
  for (int i = 0; i < cfg.workers; i++) {
    struct worker *w = &workers[i];
    w->id = i;
    w->tun = open_tun_queue();
    w->sock = open_udp();
    w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    w->icmp_tokens = 50;
    w->icmp_last_ns = now_ns();
    if (tx_init(w) < 0 || rx_init(w) < 0) die(3, "out of memory");
  }
  if (cfg.workers > 1) attach_reuseport_bpf(workers[0].sock);
  for (int i = 0; i < cfg.workers; i++)
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
      die(3, "cannot start worker %d", i);
  {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &cfg.local, ip, sizeof ip);
    log_msg("v%s started: tun %s, udp %s:%u, inner mtu %u, mode %s (batch %d), %d worker%s",
            WEFT_UDP_VERSION, cfg.tun, ip, cfg.port, cfg.mtu, mode_name(), cfg.batch, cfg.workers,
            cfg.workers > 1 ? "s" : "");
  }

  int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct client clients[MAX_CLIENTS];
  for (int i = 0; i < MAX_CLIENTS; i++) clients[i] = (struct client){.fd = -1};
  uint64_t last_probe = now_ns();
  while (!atomic_load(&g_stop)) {
    struct pollfd p[4 + MAX_CLIENTS];
    p[0] = (struct pollfd){lfd[0], POLLIN, 0};
    p[1] = (struct pollfd){sfd, POLLIN, 0};
    p[2] = (struct pollfd){lfd[1], POLLIN, 0};
    for (int i = 0; i < MAX_CLIENTS; i++) p[3 + i] = (struct pollfd){clients[i].fd, POLLIN, 0};
    p[3 + MAX_CLIENTS] = (struct pollfd){main_wake, POLLIN, 0};
    int r = poll(p, 4 + MAX_CLIENTS, 1000);
    if (r < 0 && errno != EINTR) die(3, "poll: %s", strerror(errno));
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGHUP) {
        log_msg("signal %d: stopping", (int)si.ssi_signo);
        atomic_store(&g_stop, true);
      }
    }
    for (int k = 0; k < 2; k++) {
      if (!(p[k ? 2 : 0].revents & POLLIN)) continue;
      int fd = accept4(lfd[k], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        int slot = -1;
        for (int i = 0; i < MAX_CLIENTS; i++)
          if (clients[i].fd < 0) slot = i;
        if (slot < 0 || !peer_is_root(fd))
          close(fd);
        else
          clients[slot] = (struct client){.fd = fd};
      }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
      if (clients[i].fd >= 0 && (p[3 + i].revents & (POLLIN | POLLHUP | POLLERR)) && !serve_client(&clients[i]))
        close_client(&clients[i]);
    if (now_ns() - last_probe > 2000000000ull) {
      refresh_pmtu(probe);
      last_probe = now_ns();
    }
  }
  for (int i = 0; i < cfg.workers; i++) {
    uint64_t one = 1;
    if (write(workers[i].wake, &one, sizeof one) < 0) { /* the worker wakes within a second anyway */
    }
  }
  for (int i = 0; i < cfg.workers; i++) pthread_join(workers[i].thread, NULL);
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (clients[i].fd >= 0) close_client(&clients[i]);
  log_msg("stopped");
  return exit_code;
}
