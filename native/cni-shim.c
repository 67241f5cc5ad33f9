/*
 * weft-cni, the executable a container runtime runs for every pod: a shim that forwards the call to
 * the resident weft-cni server of this node (src/cni/server.ts: the same verb code, already loaded),
 * and runs the Node plugin (main.js, next to this binary) itself when no server answers. It exists
 * because starting Node costs ~50 ms per call, more than a whole ADD of the reference plugins.
 *
 * The server of the node is found by the inode of the network namespace the shim runs in:
 * /run/weft/cni/net-<inode>.sock (root-only directory). The pod's namespace travels as an open
 * descriptor (SCM_RIGHTS), not as a path: the server may see another filesystem than the runtime.
 * Wire format: see server.ts.
 *
 * Build: cc -O2 -o weft-cni cni-shim.c (scripts/post-build.mjs does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
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
__attribute__((noreturn)) static void fail(int code, const char *msg) {
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

/*
 * The Node plugin: main.js next to this binary (the build tree, dist/src/cni/), or where
 * `weft install-cni` puts it on a host: <this binary>.d/src/cni/main.js.
 */
static void plugin_path(char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) fail(100, "cannot find its own path in /proc/self/exe");
  self[n] = 0;
  snprintf(out, size, "%s.d/src/cni/main.js", self);
  if (access(out, F_OK) == 0) return;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(out, size, "%s/main.js", self);
}

/* No server: the Node plugin gets the same arguments, environment and stdin. */
__attribute__((noreturn)) static void run_node_plugin(char **argv, const char *input, size_t len) {
  char plugin[PATH_MAX + 32];
  plugin_path(plugin, sizeof plugin);
  int fd = memfd_create("weft-cni-stdin", 0);
  if (fd < 0 || write_all(fd, input, len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0)
    fail(100, "cannot pass the configuration on to the Node plugin");
  close(fd);
  argv[0] = plugin;
  execv(plugin, argv);
  char msg[PATH_MAX + 160];
  snprintf(msg, sizeof msg, "no weft agent serves this node and the plugin %s cannot run (%s; it needs Node.js 20)", plugin,
           strerror(errno));
  fail(100, msg);
}

/*
 * The pod's namespace, opened here, in the runtime's mount namespace: the server may live in another
 * one (a DaemonSet pod; a runtime with a mount namespace of its own), where CNI_NETNS names nothing or
 * something else. O_PATH: nothing is read, a FIFO or device path has no side effect; the server
 * re-opens it through /proc/<its pid>/fd/<n>. Only paths of printable ASCII without spaces are handed
 * over; any other (relative, odd bytes) gets the Node plugin's own verdict, as do paths that do not open.
 * Returns the descriptor, or -1 when there is no namespace to pass.
 */
static int open_netns(char **argv, const char *input, size_t len) {
  const char *p = getenv("CNI_NETNS");
  if (!p || !*p) return -1;
  int plain = p[0] == '/';
  for (const char *c = p; *c && plain; c++) plain = *c > 0x20 && *c < 0x7f;
  int fd = plain ? open(p, O_PATH | O_CLOEXEC) : -1;
  if (fd < 0) run_node_plugin(argv, input, len);
  return fd;
}

/* Sends the header, with the namespace's descriptor attached when there is one. */
static int send_header(int s, const char *head, size_t len, int nsfd) {
  union {
    char space[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct iovec iov = {.iov_base = (void *)head, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nsfd >= 0) {
    msg.msg_control = ctl.space;
    msg.msg_controllen = sizeof ctl.space;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &nsfd, sizeof(int));
  }
  ssize_t w;
  do w = sendmsg(s, &msg, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) return -1;
  return (size_t)w == len ? 0 : write_all(s, head + w, len - (size_t)w);
}

int main(int argc, char **argv) {
  (void)argc;
  signal(SIGPIPE, SIG_IGN); /* a server gone mid-call is an error return, then the Node plugin */
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
  int nsfd = open_netns(argv, input, in_len);

  struct timeval tv = {.tv_sec = TIMEOUT_SECONDS};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  /* The request: header (with the namespace), the CNI_* variables, the configuration. */
  int nvars = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "CNI_", 4) == 0) nvars++;
  char head[64];
  int hl = snprintf(head, sizeof head, "weft-cni/2 %d %zu\n", nvars, in_len);
  int bad = send_header(s, head, (size_t)hl, nsfd);
  if (nsfd >= 0) close(nsfd); /* the server holds its own reference now */
  for (char **e = environ; *e && !bad; e++)
    if (strncmp(*e, "CNI_", 4) == 0) bad = write_all(s, *e, strlen(*e) + 1);
  if (!bad) bad = write_all(s, input, in_len);
  /* From here on, whatever keeps the server from answering (it closed, stopped, timed out, said it
   * cannot serve this call) ends in the Node plugin answering instead: a call never fails for it. */
  if (bad) run_node_plugin(argv, input, in_len);
  shutdown(s, SHUT_WR);

  size_t out_len;
  char *reply = read_all(s, &out_len);
  if (!reply) run_node_plugin(argv, input, in_len);
  int code;
  size_t so, se;
  char *nl = memchr(reply, '\n', out_len);
  if (!nl || sscanf(reply, "%d %zu %zu", &code, &so, &se) != 3 || (size_t)(nl + 1 - reply) + so + se != out_len)
    run_node_plugin(argv, input, in_len); /* "unserved …", or an answer cut short */
  write_all(1, nl + 1, so);
  write_all(2, nl + 1 + so, se);
  return code;
}
