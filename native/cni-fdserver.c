/*
 * The socket side of the weft-cni server (src/cni/server.ts), as a Node-API addon: Node's net module
 * cannot receive file descriptors (SCM_RIGHTS), and the shim (cni-shim.c) sends the pod's network
 * namespace as one, opened in the runtime's own mount namespace. Everything about the request's
 * meaning stays in JavaScript; this file only moves bytes and descriptors.
 *
 *   listen(path, onRequest) -> handle   a unix stream socket at path; for every connection, once the
 *                                        peer has sent its whole request and shut down its writing side:
 *                                        onRequest(conn, request: Buffer, fd) on the main thread, fd the
 *                                        descriptor that came with it (-1 if none; the receiver closes it)
 *   reply(conn, data)  -> boolean        writes the answer and closes the connection
 *   closeFd(fd)                          closes a received descriptor
 *   stop(handle)                         stops accepting (calls in flight are still answered)
 *
 * An accept thread waits for connections; each connection is read by a short-lived thread of its own
 * (a stalled peer delays nobody else), which hands the request to the main thread through a
 * thread-safe function. Descriptors are received with MSG_CMSG_CLOEXEC: no child process inherits one.
 *
 * Build: cc -shared -fPIC -O2 -I<node>/include/node -o fdserver.node cni-fdserver.c -lpthread
 * (scripts/post-build.mjs does it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_REQUEST (4 * 1024 * 1024)
#define MAX_FDS 4
#define IO_TIMEOUT_SECONDS 10

typedef struct {
  int lfd;
  napi_threadsafe_function tsfn;
} server_t;

typedef struct {
  server_t *srv;
  int conn;
  int fd;
  char *buf;
  size_t len;
} request_t;

static void free_request(request_t *r, int close_all) {
  if (close_all) {
    if (r->conn >= 0) close(r->conn);
    if (r->fd >= 0) close(r->fd);
  }
  free(r->buf);
  free(r);
}

static void timeouts(int s) {
  struct timeval tv = {.tv_sec = IO_TIMEOUT_SECONDS};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Reads the whole request (up to the peer's shutdown) and the descriptors that came with it. */
static int read_request(request_t *r) {
  size_t cap = 4096;
  if (!(r->buf = malloc(cap))) return -1;
  for (;;) {
    if (r->len == cap) {
      if (cap >= MAX_REQUEST) return -1;
      char *nb = realloc(r->buf, cap *= 2);
      if (!nb) return -1;
      r->buf = nb;
    }
    union {
      char space[CMSG_SPACE(sizeof(int) * MAX_FDS)];
      struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = r->buf + r->len, .iov_len = cap - r->len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
    ssize_t n = recvmsg(r->conn, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      int fds[MAX_FDS];
      memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)count);
      for (int i = 0; i < count; i++) {
        if (r->fd < 0) r->fd = fds[i];
        else close(fds[i]); /* one namespace per request: any other descriptor is dropped */
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) return -1;
    if (n == 0) return 0;
    r->len += (size_t)n;
  }
}

static void *read_thread(void *arg) {
  request_t *r = arg;
  napi_threadsafe_function tsfn = r->srv->tsfn;
  if (read_request(r) < 0 || napi_call_threadsafe_function(tsfn, r, napi_tsfn_blocking) != napi_ok)
    free_request(r, 1); /* the peer sees the connection closed unanswered, and runs the plugin itself */
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

static void *accept_thread(void *arg) {
  server_t *srv = arg;
  for (;;) {
    int c = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        usleep(10000); /* out of descriptors for a moment: callers queue in the backlog meanwhile */
        continue;
      }
      break; /* stop() shut the socket down */
    }
    timeouts(c);
    request_t *r = calloc(1, sizeof *r);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int ok = r && napi_acquire_threadsafe_function(srv->tsfn) == napi_ok;
    if (ok) {
      *r = (request_t){.srv = srv, .conn = c, .fd = -1};
      if (pthread_create(&t, &attr, read_thread, r) != 0) {
        napi_release_threadsafe_function(srv->tsfn, napi_tsfn_release);
        ok = 0;
      }
    }
    pthread_attr_destroy(&attr);
    if (!ok) {
      close(c);
      free(r);
    }
  }
  close(srv->lfd);
  napi_release_threadsafe_function(srv->tsfn, napi_tsfn_release);
  return NULL;
}

/* On the main thread: the request to JavaScript. */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  request_t *r = data;
  if (!env) { /* shutting down */
    free_request(r, 1);
    return;
  }
  napi_value args[3], buf, undefined;
  void *copy;
  napi_create_int32(env, r->conn, &args[0]);
  napi_create_buffer_copy(env, r->len, r->buf, &copy, &buf);
  args[1] = buf;
  napi_create_int32(env, r->fd, &args[2]);
  napi_get_undefined(env, &undefined);
  free_request(r, 0); /* conn and fd now belong to JavaScript */
  napi_call_function(env, undefined, cb, 3, args, NULL);
}

static void finalize_server(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value throw_errno(napi_env env, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int int_arg(napi_env env, napi_value v, int *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t len;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &len) != napi_ok ||
      len >= sizeof addr.sun_path - 1) {
    napi_throw_type_error(env, NULL, "listen(path, onRequest): path must be a string shorter than 107 bytes");
    return NULL;
  }
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return throw_errno(env, "socket");
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 256) < 0) {
    int e = errno;
    close(lfd);
    errno = e;
    return throw_errno(env, addr.sun_path);
  }
  server_t *srv = calloc(1, sizeof *srv);
  srv->lfd = lfd;
  napi_create_string_utf8(env, "weft-cni-server", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, srv, finalize_server, NULL, call_js, &srv->tsfn) !=
      napi_ok) {
    close(lfd);
    free(srv);
    napi_throw_error(env, NULL, "cannot create the request queue");
    return NULL;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, accept_thread, srv) != 0) {
    close(lfd);
    napi_release_threadsafe_function(srv->tsfn, napi_tsfn_abort);
    return throw_errno(env, "cannot start the accept thread");
  }
  pthread_detach(t);
  napi_value handle;
  napi_create_int32(env, lfd, &handle);
  return handle;
}

static napi_value js_reply(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int conn;
  void *data;
  size_t len;
  if (argc < 2 || int_arg(env, argv[0], &conn) < 0 || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "reply(conn, data: Buffer)");
    return NULL;
  }
  const char *p = data;
  int ok = 1;
  while (len > 0) {
    ssize_t w = send(conn, p, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ok = 0;
      break;
    }
    p += w;
    len -= (size_t)w;
  }
  close(conn);
  napi_get_boolean(env, ok, &result);
  return result;
}

/* The one descriptor argument of closeFd and stop; -1 when there is none. */
static int fd_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int fd;
  return argc == 1 && int_arg(env, argv[0], &fd) == 0 && fd >= 0 ? fd : -1;
}

static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  int fd = fd_arg(env, info);
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  int lfd = fd_arg(env, info);
  if (lfd >= 0) shutdown(lfd, SHUT_RDWR); /* wakes accept() */
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, js_reply, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, js_stop, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
