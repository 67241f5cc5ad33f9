/*
 * weft-cni, the executable a container runtime runs for every pod: a shim that forwards the call to
 * the resident weft-cni server of this node (src/cni/server.ts: the same verb code, already loaded),
 * and runs the Node plugin (main.js, next to this binary) itself when no server answers. It exists
 * because starting Node costs ~50 ms per call, more than a whole ADD of the reference plugins.
 *
 * The server of the node is found by the inode of the network namespace the shim runs in:
 * /run/weft/cni/net-<inode>.sock (root-only directory). Wire format: see server.ts.
 *
 * Build: cc -O2 -o weft-cni cni-shim.c (scripts/post-build.mjs does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCKET_DIR "/run/weft/cni"
#define TIMEOUT_SECONDS 300

extern char **environ;

/* A spec error on stdout, as every weft-cni failure is reported; exit 1. */
static void fail(int code, const char *msg) {
  printf("{\"cniVersion\":\"1.1.0\",\"code\":%d,\"msg\":\"weft-cni: %s\"}\n", code, msg);
  exit(1);
}

static char *read_all(int fd, size_t *len) {
  size_t cap = 16384, n = 0;
  char *buf = malloc(cap);
  if (!buf) fail(100, "out of memory");
  for (;;) {
    if (n == cap) {
      cap *= 2;
      if (!(buf = realloc(buf, cap))) fail(100, "out of memory");
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return NULL;
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  return buf;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* No server: the Node plugin next to this binary gets the same arguments, environment and stdin. */
static void run_node_plugin(char **argv, const char *input, size_t len) {
  char self[PATH_MAX], plugin[PATH_MAX + 16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) fail(100, "cannot find its own path in /proc/self/exe");
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(plugin, sizeof plugin, "%s/main.js", self);
  int fd = memfd_create("weft-cni-stdin", 0);
  if (fd < 0 || write_all(fd, input, len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0)
    fail(100, "cannot pass the configuration on to the Node plugin");
  close(fd);
  argv[0] = plugin;
  execv(plugin, argv);
  char msg[PATH_MAX + 64];
  snprintf(msg, sizeof msg, "cannot run %s: %s", plugin, strerror(errno));
  fail(100, msg);
}

int main(int argc, char **argv) {
  (void)argc;
  size_t in_len;
  char *input = read_all(0, &in_len);
  if (!input) fail(5, "cannot read the network configuration from stdin");

  struct stat ns;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int s = -1;
  if (stat("/proc/self/ns/net", &ns) == 0) {
    snprintf(addr.sun_path, sizeof addr.sun_path, SOCKET_DIR "/net-%llu.sock", (unsigned long long)ns.st_ino);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) run_node_plugin(argv, input, in_len);

  struct timeval tv = {.tv_sec = TIMEOUT_SECONDS};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  /* The request: header, the CNI_* variables, the configuration. */
  int nvars = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "CNI_", 4) == 0) nvars++;
  char head[64];
  int hl = snprintf(head, sizeof head, "weft-cni/1 %d %zu\n", nvars, in_len);
  int bad = write_all(s, head, (size_t)hl);
  for (char **e = environ; *e && !bad; e++)
    if (strncmp(*e, "CNI_", 4) == 0) bad = write_all(s, *e, strlen(*e) + 1);
  if (!bad) bad = write_all(s, input, in_len);
  if (bad) fail(11, "the weft-cni server closed the connection while being asked; try again");
  shutdown(s, SHUT_WR);

  size_t out_len;
  char *reply = read_all(s, &out_len);
  if (!reply) fail(11, "no answer from the weft-cni server in time; try again");
  int code;
  size_t so, se;
  char *nl = memchr(reply, '\n', out_len);
  if (!nl || sscanf(reply, "%d %zu %zu", &code, &so, &se) != 3 || (size_t)(nl + 1 - reply) + so + se != out_len)
    fail(11, "the weft-cni server's answer was cut short (did the agent restart?); try again");
  write_all(1, nl + 1, so);
  write_all(2, nl + 1 + so, se);
  return code;
}
