/*
 * sd_notify(3) for the agent, as a Node-API addon: Node has no unix datagram sockets, and
 * `systemd-notify` run as a child would need NotifyAccess=all (systemd attributes a message to the
 * process that sent it; the unit's main process is the agent). The protocol is one datagram with
 * "READY=1" (etc.) to the socket named by $NOTIFY_SOCKET: a path, or "@name" for an abstract one.
 *
 *   notify(state: string) -> boolean   false when $NOTIFY_SOCKET is unset (not run by systemd with
 *                                      Type=notify); throws when it is set but the message cannot go
 *
 * Build: cc -shared -fPIC -O2 -I<node>/include/node -o sd-notify.node sd-notify.c (post-build.mjs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static napi_value js_notify(napi_env env, napi_callback_info info) {
  size_t argc = 1, len;
  napi_value argv[1], result;
  char state[4096];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], state, sizeof state, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "notify(state: string)");
    return NULL;
  }
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) {
    napi_get_boolean(env, 0, &result);
    return result;
  }
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  size_t plen = strlen(path);
  if (plen >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) {
    napi_throw_error(env, NULL, "NOTIFY_SOCKET is not a unix socket path");
    return NULL;
  }
  memcpy(addr.sun_path, path, plen);
  if (path[0] == '@') addr.sun_path[0] = 0; /* abstract namespace */
  socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/' ? 1 : 0));
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ssize_t n = s < 0 ? -1 : sendto(s, state, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
  int e = errno;
  if (s >= 0) close(s);
  if (n < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "cannot notify %s: %s", path, strerror(e));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  napi_get_boolean(env, 1, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "notify", NAPI_AUTO_LENGTH, js_notify, NULL, &fn);
  napi_set_named_property(env, exports, "notify", fn);
  return exports;
}
