/*
 * weft-netlink: a minimal rtnetlink transport for Node (Node-API), so that weft's kernel layer can
 * change links, addresses, routes, neighbours and FDB entries without starting an `ip` process.
 *
 * It knows nothing about the messages: TypeScript (src/kernel/netlink.ts) encodes requests and decodes
 * the answers. What only C can do lives here:
 *   socket(nsFd, proto)    a netlink socket (NETLINK_ROUTE, or NETLINK_NETFILTER for nftables), created
 *                          inside the namespace of nsFd (or the caller's with -1); the calling thread
 *                          enters the namespace only for socket(2) and returns to its own at once, so no
 *                          JavaScript ever runs in another namespace
 *   transact(fd, buf, n)   sends the request(s) in buf and returns the answers once n final answers
 *                          (an ACK/error or the end of a dump) have arrived
 *   deleteLink(name, ms)   deletes a device of the caller's namespace and returns as soon as the device
 *                          is gone from the namespace, while the kernel finishes freeing it (an RCU wait
 *                          of ~20 ms) on a thread of its own
 *   close(fd), strerror(errno)
 *
 * Built by scripts/post-build.mjs with the system compiler against /usr/include/node; when it is
 * missing or cannot load, the kernel layer uses iproute2 instead.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

#define TRANSACT_TIMEOUT_MS 30000

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

/* A netlink socket in the current namespace, with extended ACKs (the kernel's error text). */
static int nl_open(int proto) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) return -1;
  int one = 1, rcvbuf = 1 << 20;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* socket(nsFd): see the header. A thread that cannot return to its own namespace must not run on. */
static napi_value js_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t nsfd = -1, proto = NETLINK_ROUTE;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && arg_int(env, argv[0], &nsfd) < 0) nsfd = -1;
  if (argc >= 2 && (arg_int(env, argv[1], &proto) < 0 || (proto != NETLINK_ROUTE && proto != NETLINK_NETFILTER))) {
    napi_throw_type_error(env, NULL, "socket(nsFd, NETLINK_ROUTE | NETLINK_NETFILTER)");
    return NULL;
  }
  if (nsfd < 0) {
    int fd = nl_open(proto);
    return fd < 0 ? throw_errno(env, "netlink socket", errno) : int_value(env, fd);
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return throw_errno(env, "open /proc/thread-self/ns/net", errno);
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(self);
    return throw_errno(env, "setns into the target namespace", e);
  }
  int fd = nl_open(proto);
  int e = errno;
  if (setns(self, CLONE_NEWNET) < 0) {
    fprintf(stderr, "weft-netlink: cannot return to the thread's own network namespace: %s\n", strerror(errno));
    abort();
  }
  close(self);
  return fd < 0 ? throw_errno(env, "netlink socket in the target namespace", e) : int_value(env, fd);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1 && arg_int(env, argv[0], &fd) == 0 && fd >= 0) close(fd);
  return NULL;
}

/* Counts the final answers (NLMSG_ERROR, i.e. ACK or error, and NLMSG_DONE) in a received datagram. */
static int count_final(const char *buf, size_t len) {
  int n = 0;
  const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
  for (size_t left = len; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
    if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) n++;
  return n;
}

/* transact(fd, request, finals) → Buffer of every answer datagram, concatenated. */
static napi_value js_transact(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, want;
  void *req;
  size_t reqlen;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || arg_int(env, argv[0], &fd) < 0 || arg_int(env, argv[2], &want) < 0 ||
      napi_get_buffer_info(env, argv[1], &req, &reqlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "transact(fd, Buffer, finals)");
    return NULL;
  }
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  struct iovec iov = {.iov_base = req, .iov_len = reqlen};
  struct msghdr mh = {.msg_name = &kernel, .msg_namelen = sizeof kernel, .msg_iov = &iov, .msg_iovlen = 1};
  ssize_t sent;
  do sent = sendmsg(fd, &mh, 0);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_errno(env, "netlink sendmsg", errno);

  size_t cap = 65536, len = 0;
  char *out = malloc(cap);
  if (!out) return throw_errno(env, "netlink answer buffer", ENOMEM);
  int got = 0;
  while (got < want) {
    if (cap - len < 65536) {
      char *bigger = realloc(out, cap * 2);
      if (!bigger) {
        free(out);
        return throw_errno(env, "netlink answer buffer", ENOMEM);
      }
      out = bigger;
      cap *= 2;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr = poll(&p, 1, TRANSACT_TIMEOUT_MS);
    if (pr == 0) {
      free(out);
      return throw_errno(env, "netlink: no answer from the kernel", ETIMEDOUT);
    }
    if (pr < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(out);
      return throw_errno(env, "netlink poll", e);
    }
    ssize_t n = recv(fd, out + len, cap - len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      free(out);
      return throw_errno(env, "netlink recv", e);
    }
    got += count_final(out + len, (size_t)n);
    len += (size_t)n;
  }
  napi_value result;
  void *data;
  napi_create_buffer_copy(env, len, out, &data, &result);
  free(out);
  return result;
}

/* ------------------------------------------------------------------------------ deleteLink */

struct del_job {
  int fd;
  /* 0 running, 1 finished (err valid), 2 abandoned by the caller (the thread frees the job) */
  atomic_int state;
  int err;
  size_t len;
  char req[NLMSG_SPACE(sizeof(struct ifinfomsg)) + RTA_SPACE(IFNAMSIZ)];
};

static void *del_thread(void *p) {
  struct del_job *j = p;
  int err = 0;
  if (send(j->fd, j->req, j->len, 0) < 0) err = errno;
  else {
    char buf[8192];
    for (;;) {
      ssize_t n = recv(j->fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = errno;
        break;
      }
      const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
      int done = 0;
      for (size_t left = (size_t)n; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
          err = -((const struct nlmsgerr *)NLMSG_DATA(h))->error;
          done = 1;
        }
      }
      if (done) break;
    }
  }
  close(j->fd);
  j->err = err;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&j->state, &expected, 1)) free(j); /* abandoned: ours to free */
  return NULL;
}

/*
 * deleteLink(name, timeoutMs) → 0 once the device is gone, or the errno of the deletion. A deleted
 * device is closed and unlisted by the kernel under its lock right away; the rest of the request waits
 * for RCU grace periods. The caller needs the first part only, and polls for it.
 */
static napi_value js_delete_link(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char name[IFNAMSIZ + 1];
  size_t nlen;
  int32_t timeout_ms = 5000;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok || nlen == 0 ||
      nlen >= IFNAMSIZ) {
    napi_throw_type_error(env, NULL, "deleteLink(name, timeoutMs)");
    return NULL;
  }
  if (argc >= 2) arg_int(env, argv[1], &timeout_ms);
  if (if_nametoindex(name) == 0) return int_value(env, ENODEV);

  struct del_job *j = calloc(1, sizeof *j);
  if (!j) return throw_errno(env, "deleteLink", ENOMEM);
  j->fd = nl_open(NETLINK_ROUTE);
  if (j->fd < 0) {
    int e = errno;
    free(j);
    return throw_errno(env, "netlink socket", e);
  }
  struct nlmsghdr *h = (struct nlmsghdr *)j->req;
  h->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  h->nlmsg_type = RTM_DELLINK;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  h->nlmsg_seq = 1;
  struct ifinfomsg *ifi = NLMSG_DATA(h);
  ifi->ifi_family = AF_UNSPEC;
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = IFLA_IFNAME;
  a->rta_len = RTA_LENGTH(nlen + 1);
  memcpy(RTA_DATA(a), name, nlen + 1);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
  j->len = h->nlmsg_len;

  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&t, &attr, del_thread, j);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    close(j->fd);
    free(j);
    return throw_errno(env, "deleteLink thread", e);
  }
  struct timespec start, now, nap = {.tv_sec = 0, .tv_nsec = 200000};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    if (atomic_load(&j->state) == 1) {
      int err = j->err;
      free(j);
      return int_value(env, err);
    }
    if (if_nametoindex(name) == 0 && errno == ENODEV) {
      int expected = 0;
      if (atomic_compare_exchange_strong(&j->state, &expected, 2)) return int_value(env, 0);
      continue; /* finished meanwhile: report its answer */
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (ms > timeout_ms) {
      int expected = 0;
      if (atomic_compare_exchange_strong(&j->state, &expected, 2)) return int_value(env, ETIMEDOUT);
      continue;
    }
    nanosleep(&nap, NULL);
  }
}

static napi_value js_strerror(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  int32_t e = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) arg_int(env, argv[0], &e);
  const char *s = strerror(e);
  napi_create_string_utf8(env, s, strlen(s), &r);
  return r;
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"socket", js_socket},
             {"close", js_close},
             {"transact", js_transact},
             {"deleteLink", js_delete_link},
             {"strerror", js_strerror}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}
