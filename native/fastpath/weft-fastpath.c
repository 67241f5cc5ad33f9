// SPDX-License-Identifier: Apache-2.0
/*
 * weft-fastpath: loads weft's BPF fast path (bpf/fastpath.c) into the current network namespace,
 * attaches it with tcx, and keeps its maps. The agent runs it once per change with a script on
 * stdin (so 1,000 peers cost one process, not 1,000); the CNI plugin runs it once per pod.
 *
 * Ownership without a bpffs: the programs are attached to devices of this network namespace with
 * tcx (BPF_PROG_ATTACH, no link), so they stay when the process that attached them dies (an agent
 * kill -9 does not interrupt the fast path) and vanish with the devices. Each object is found again
 * through its weft_cfg map, which records this namespace's netns cookie (unique for the boot, never
 * reused) and the ids of its other maps and programs. Nothing is pinned: node namespaces of a lab
 * share one machine but, run under `ip netns exec`, not one /sys/fs/bpf.
 *
 *   weft-fastpath probe OBJ            exit 0, or exit 3 with the reason the kernel cannot run it
 *   weft-fastpath run < SCRIPT         the agent's commands, one per line (below)
 *   weft-fastpath pod-add DEV IP MAC   the CNI plugin: a local pod behind host veth DEV
 *   weft-fastpath pod-del IP
 *   weft-fastpath status | stats | unload
 *
 * Script commands: load OBJ | subnet CIDR | vxlan DEV VNI PORT LOCAL | vxlan off |
 * peer CIDR vxlan UNDERLAY VTEP-MAC REMOTE | peer CIDR routed DEV NEXTHOP | peers-end |
 * net-devs [DEV...] | attach DEV | pods-sync | stats | unload.
 * Output: one JSON object on stdout. Exit 1 with {"error": "..."} on failure, 3 on "unsupported".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../bpf/fastpath.h"

/* tcx (Linux 6.6): not in Debian 12's UAPI headers. */
#define WEFT_TCX_INGRESS 46
#define WEFT_F_REPLACE (1U << 2)
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define EXIT_UNSUPPORTED 3
#define MAX_PEERS 16384

/* ------------------------------------------------------------------------------------ output */
static char *out_buf;
static size_t out_len;
static FILE *out;
static int out_n;

static void out_key(const char *k)
{
	fprintf(out, "%s\"%s\":", out_n++ ? "," : "", k);
}

static void out_raw(const char *k, const char *fmt, ...)
{
	va_list ap;

	out_key(k);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void flush_out(void)
{
	fputc('}', out);
	fclose(out);
	fwrite(out_buf, 1, out_len, stdout);
	fputc('\n', stdout);
	free(out_buf);
}

static void finish(int code, const char *key, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	out_key(key);
	json_str(out, line);
	flush_out();
	exit(code);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	finish(1, "error", fmt, ap);
	va_end(ap);
	exit(1);
}

static void __attribute__((noreturn, format(printf, 1, 2))) unsupported(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	finish(EXIT_UNSUPPORTED, "unsupported", fmt, ap);
	va_end(ap);
	exit(EXIT_UNSUPPORTED);
}

/* libbpf's messages: kept (why a load failed), never printed. The verifier's log arrives as one
 * multi-line message: its last line before the statistics is the verifier's reason. */
static char libbpf_last[400];
static char verifier_reason[300];

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[8192];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (strstr(msg, "BEGIN PROG LOAD LOG")) {
		char *save = NULL;

		for (char *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (!strstr(l, "PROG LOAD LOG") && strncmp(l, "processed ", 10) &&
			    strncmp(l, "verification time", 17) && l[0])
				snprintf(verifier_reason, sizeof(verifier_reason), "%.299s", l);
		return 0;
	}
	msg[strcspn(msg, "\n")] = 0;
	if (level == LIBBPF_WARN && msg[0])
		snprintf(libbpf_last, sizeof(libbpf_last), "%.399s", msg);
	return 0;
}

/* ------------------------------------------------------------------------------------ tcx */
union tcx_attr {
	struct {
		__u32 target_ifindex;
		__u32 attach_bpf_fd;
		__u32 attach_type;
		__u32 attach_flags;
		__u32 replace_bpf_fd;
		__u32 relative_fd;
		__u64 expected_revision;
	} attach;
	struct {
		__u32 target_ifindex;
		__u32 attach_type;
		__u32 query_flags;
		__u32 attach_flags;
		__u64 prog_ids;
		__u32 count;
		__u32 pad;
		__u64 prog_attach_flags;
		__u64 link_ids;
		__u64 link_attach_flags;
		__u64 revision;
	} query;
	char size[160];
};

static int sys_bpf(int cmd, union tcx_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a)) < 0 ? -errno : 0;
}

/* The ids of the programs on a device's tcx ingress, in order; -errno when tcx is missing. */
static int tcx_query(int ifindex, __u32 *ids, __u32 *count)
{
	union tcx_attr a;

	memset(&a, 0, sizeof(a));
	a.query.target_ifindex = ifindex;
	a.query.attach_type = WEFT_TCX_INGRESS;
	a.query.prog_ids = (__u64)(uintptr_t)ids;
	a.query.count = *count;
	int err = sys_bpf(BPF_PROG_QUERY, &a);

	if (err == -ENOSPC) { /* more than asked for: the first *count are filled in */
		err = 0;
		a.query.count = *count;
	}
	*count = err ? 0 : a.query.count;
	return err;
}

/*
 * Attached last in the device's tcx chain (no BPF_F_BEFORE), or in the place of the program it
 * replaces: a program that asked to run first (weft trace's, BPF_F_BEFORE) sees every packet before
 * this one redirects it, whichever of the two came first.
 */
static int tcx_attach(int ifindex, int prog_fd, int replace_fd)
{
	union tcx_attr a;

	memset(&a, 0, sizeof(a));
	a.attach.target_ifindex = ifindex;
	a.attach.attach_bpf_fd = prog_fd;
	a.attach.attach_type = WEFT_TCX_INGRESS;
	if (replace_fd >= 0) {
		a.attach.attach_flags = WEFT_F_REPLACE;
		a.attach.replace_bpf_fd = replace_fd;
	}
	return sys_bpf(BPF_PROG_ATTACH, &a);
}

static int tcx_detach(int ifindex, int prog_fd)
{
	union tcx_attr a;

	memset(&a, 0, sizeof(a));
	a.attach.target_ifindex = ifindex;
	a.attach.attach_bpf_fd = prog_fd;
	a.attach.attach_type = WEFT_TCX_INGRESS;
	return sys_bpf(BPF_PROG_DETACH, &a);
}

static int prog_name(__u32 id, char name[BPF_OBJ_NAME_LEN], int *fd_out)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		close(fd);
		return -errno;
	}
	memcpy(name, info.name, BPF_OBJ_NAME_LEN);
	name[BPF_OBJ_NAME_LEN - 1] = 0;
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return 0;
}

#define WEFT_PROG "weft_fastpath"

static int is_weft_prog(const char *name)
{
	return strcmp(name, WEFT_PROG) == 0;
}

/* ------------------------------------------------------------------------------------ objects */
struct fp {
	int cfg_fd, pods_fd, peers_fd, stats_fd, prog_fd;
	__u32 cfg_id;
	struct weft_cfg cfg;
};

static __u64 netns_cookie(void)
{
	__u64 c = 0;
	socklen_t len = sizeof(c);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &c, &len))
		unsupported("the kernel has no network namespace cookies (SO_NETNS_COOKIE, Linux 5.14)");
	close(s);
	return c;
}

static __u64 file_tag(const char *path)
{
	FILE *f = fopen(path, "rb");
	__u64 h = 1469598103934665603ULL; /* FNV-1a */
	int ch;

	if (!f)
		die("cannot read %s: %s (build it: npm run build)", path, strerror(errno));
	while ((ch = fgetc(f)) != EOF)
		h = (h ^ (unsigned char)ch) * 1099511628211ULL;
	fclose(f);
	return h;
}

static int fd_of_map(__u32 id)
{
	int fd = bpf_map_get_fd_by_id(id);

	if (fd < 0)
		die("weft map %u vanished: %s", id, strerror(errno));
	return fd;
}

static int fd_of_prog(__u32 id)
{
	int fd = bpf_prog_get_fd_by_id(id);

	if (fd < 0)
		die("weft program %u vanished: %s", id, strerror(errno));
	return fd;
}

static void open_fp(struct fp *fp)
{
	fp->pods_fd = fd_of_map(fp->cfg.map_ids[0]);
	fp->peers_fd = fd_of_map(fp->cfg.map_ids[1]);
	fp->stats_fd = fd_of_map(fp->cfg.map_ids[2]);
	fp->prog_fd = fd_of_prog(fp->cfg.prog_id);
}

/* An object whose program is gone is being freed (its maps go next): not one to work with. */
static int object_alive(const struct weft_cfg *cfg)
{
	int fd = bpf_prog_get_fd_by_id(cfg->prog_id);

	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

#define MAX_OBJECTS 16
static struct fp found[MAX_OBJECTS];
static int n_found;

/* Every weft object of this network namespace (live or retired), newest last. */
static void find_objects(__u64 cookie)
{
	__u32 id = 0;

	n_found = 0;
	while (bpf_map_get_next_id(id, &id) == 0) {
		struct bpf_map_info info;
		__u32 len = sizeof(info);
		__u32 zero = 0;
		struct weft_cfg cfg;
		int fd = bpf_map_get_fd_by_id(id);

		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || strcmp(info.name, "weft_cfg") ||
		    info.value_size != sizeof(cfg) || bpf_map_lookup_elem(fd, &zero, &cfg) ||
		    cfg.netns_cookie != cookie || cfg.abi != WEFT_FP_ABI || n_found == MAX_OBJECTS ||
		    !object_alive(&cfg)) {
			close(fd);
			continue;
		}
		found[n_found].cfg_fd = fd;
		found[n_found].cfg_id = id;
		found[n_found].cfg = cfg;
		n_found++;
	}
}

/* The object the CNI plugin and the agent work with: the newest one not retired. */
static struct fp *live_object(void)
{
	for (int i = n_found - 1; i >= 0; i--)
		if (!found[i].cfg.retired)
			return &found[i];
	return NULL;
}

static void write_cfg(struct fp *fp)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(fp->cfg_fd, &zero, &fp->cfg, BPF_ANY))
		die("cannot write weft_cfg: %s", strerror(errno));
}

static void retire(struct fp *fp)
{
	fp->cfg.retired = 1;
	write_cfg(fp);
}

static __u32 id_of(int fd, int is_prog)
{
	union {
		struct bpf_map_info m;
		struct bpf_prog_info p;
	} info;
	__u32 len = is_prog ? sizeof(info.p) : sizeof(info.m);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		die("cannot read a BPF object's id: %s", strerror(errno));
	return is_prog ? info.p.id : info.m.id;
}

static void check_kernel(void)
{
	__u32 ids[4], n = 4;

	if (access("/sys/kernel/btf/vmlinux", R_OK))
		unsupported("the kernel has no BTF (/sys/kernel/btf/vmlinux: CONFIG_DEBUG_INFO_BTF)");
	if (tcx_query(1, ids, &n) == -EINVAL)
		unsupported("the kernel has no tcx (BPF programs on device ingress need Linux 6.6)");
}

/* Loads the object file: programs verified, maps created, weft_cfg filled. */
static void load_fresh(struct fp *fp, const char *path, __u64 cookie, __u64 tag)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);

	if (!obj)
		die("cannot open %s: %s", path, libbpf_last[0] ? libbpf_last : strerror(errno));
	if (bpf_object__load(obj)) {
		if (strstr(libbpf_last, "extern") || strstr(libbpf_last, "kfunc"))
			unsupported("the kernel lacks conntrack lookups from BPF (bpf_skb_ct_lookup): %s",
				    libbpf_last);
		unsupported("the kernel refused weft's BPF programs: %s",
			    verifier_reason[0] ? verifier_reason
			    : libbpf_last[0]   ? libbpf_last
					       : "the verifier rejected them");
	}
	struct bpf_map *cfg = bpf_object__find_map_by_name(obj, "weft_cfg");
	struct bpf_map *pods = bpf_object__find_map_by_name(obj, "weft_pods");
	struct bpf_map *peers = bpf_object__find_map_by_name(obj, "weft_peers");
	struct bpf_map *stats = bpf_object__find_map_by_name(obj, "weft_stats");
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, WEFT_PROG);

	if (!cfg || !pods || !peers || !stats || !prog)
		die("%s is not weft's fast path object (maps or programs missing)", path);
	/* dup: the fds outlive the bpf_object, which is left open until the process exits. */
	fp->cfg_fd = dup(bpf_map__fd(cfg));
	fp->pods_fd = dup(bpf_map__fd(pods));
	fp->peers_fd = dup(bpf_map__fd(peers));
	fp->stats_fd = dup(bpf_map__fd(stats));
	fp->prog_fd = dup(bpf_program__fd(prog));
	memset(&fp->cfg, 0, sizeof(fp->cfg));
	fp->cfg.abi = WEFT_FP_ABI;
	fp->cfg.netns_cookie = cookie;
	fp->cfg.tag = tag;
	fp->cfg.map_ids[0] = id_of(fp->pods_fd, 0);
	fp->cfg.map_ids[1] = id_of(fp->peers_fd, 0);
	fp->cfg.map_ids[2] = id_of(fp->stats_fd, 0);
	fp->cfg.prog_id = id_of(fp->prog_fd, 1);
	fp->cfg_id = id_of(fp->cfg_fd, 0);
}

/* ------------------------------------------------------------------------------------ devices */
/* Every weft program on a device other than prog_id: replaced by prog_fd in place (one atomic
 * swap: no packet sees neither), or detached when prog_fd < 0. Returns how many, or -errno. */
static int replace_weft(int ifindex, int prog_fd, __u32 prog_id)
{
	__u32 ids[64], n = 64;
	int done = 0, err = tcx_query(ifindex, ids, &n);

	if (err)
		return err;
	for (__u32 i = 0; i < n; i++) {
		char name[BPF_OBJ_NAME_LEN];
		int fd;

		if (ids[i] == prog_id || prog_name(ids[i], name, &fd))
			continue;
		if (is_weft_prog(name)) {
			err = prog_fd >= 0 ? tcx_attach(ifindex, prog_fd, fd) : tcx_detach(ifindex, fd);
			if (!err)
				done++;
			/* One program replaces one old one; any further old one goes. */
			if (!err && prog_fd >= 0)
				prog_fd = -1;
		}
		close(fd);
	}
	return done;
}

/* Attaches the program to a device's tcx ingress (in place of an older weft program). Idempotent. */
static int ensure_attached(int ifindex, int prog_fd, __u32 prog_id)
{
	__u32 ids[64], n = 64;
	int err = tcx_query(ifindex, ids, &n);

	if (err)
		return err;
	for (__u32 i = 0; i < n; i++)
		if (ids[i] == prog_id)
			return 0;
	err = replace_weft(ifindex, prog_fd, prog_id);
	return err > 0 ? 0 : err < 0 ? err : tcx_attach(ifindex, prog_fd, -1);
}

static int detach_weft(int ifindex)
{
	int n = replace_weft(ifindex, -1, 0);

	return n > 0 ? n : 0;
}

/* ------------------------------------------------------------------------------------ netlink */
struct link {
	int ifindex, master, peer, netnsid, veth;
	char name[IFNAMSIZ];
	unsigned char mac[6];
	int has_mac;
};

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	int one = 1;

	if (fd < 0)
		die("cannot open a netlink socket: %s", strerror(errno));
	setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	return fd;
}

static void nl_attr_u32(struct nlmsghdr *h, int type, __u32 v)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(sizeof(v));
	memcpy(RTA_DATA(a), &v, sizeof(v));
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

typedef void (*nl_cb)(struct nlmsghdr *h, void *arg);

/* Sends one request and feeds every answer to cb; returns 0 or -errno (from NLMSG_ERROR). */
static int nl_talk(int fd, struct nlmsghdr *req, nl_cb cb, void *arg)
{
	static char buf[65536];
	int dump = req->nlmsg_flags & NLM_F_DUMP;

	if (send(fd, req, req->nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		int n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;

				if (err || !dump)
					return err;
				continue;
			}
			cb(h, arg);
			if (!dump)
				return 0;
		}
	}
}

struct links {
	struct link *v;
	int n, cap;
};

static void parse_link(struct nlmsghdr *h, void *arg)
{
	struct links *ls = arg;
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
	struct link l = { .ifindex = ifi->ifi_index, .netnsid = -1 };

	if (h->nlmsg_type != RTM_NEWLINK)
		return;
	for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case IFLA_IFNAME:
			snprintf(l.name, sizeof(l.name), "%s", (char *)RTA_DATA(a));
			break;
		case IFLA_MASTER:
			l.master = *(__u32 *)RTA_DATA(a);
			break;
		case IFLA_LINK:
			l.peer = *(__u32 *)RTA_DATA(a);
			break;
		case IFLA_LINK_NETNSID:
			l.netnsid = *(__s32 *)RTA_DATA(a);
			break;
		case IFLA_ADDRESS:
			if (RTA_PAYLOAD(a) == 6) {
				memcpy(l.mac, RTA_DATA(a), 6);
				l.has_mac = 1;
			}
			break;
		case IFLA_LINKINFO: {
			int ilen = RTA_PAYLOAD(a);

			for (struct rtattr *b = RTA_DATA(a); RTA_OK(b, ilen); b = RTA_NEXT(b, ilen))
				if (b->rta_type == IFLA_INFO_KIND && !strcmp(RTA_DATA(b), "veth"))
					l.veth = 1;
			break;
		}
		}
	}
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? ls->cap * 2 : 64;
		ls->v = realloc(ls->v, ls->cap * sizeof(*ls->v));
		if (!ls->v)
			die("out of memory");
	}
	ls->v[ls->n++] = l;
}

/* The links of this namespace (netnsid < 0), or one link of a peer namespace by its nsid. */
static struct links get_links(int nl, int netnsid, int ifindex)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
		char attrs[64];
	} req;
	struct links ls = { 0 };

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.i));
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | (ifindex ? 0 : NLM_F_DUMP);
	req.i.ifi_family = AF_UNSPEC;
	req.i.ifi_index = ifindex;
	if (netnsid >= 0)
		nl_attr_u32(&req.h, IFLA_TARGET_NETNSID, netnsid);
	int err = nl_talk(nl, &req.h, parse_link, &ls);

	if (err && netnsid < 0)
		die("cannot list this namespace's links: %s", strerror(-err));
	return ls;
}

struct addr_query {
	int ifindex;
	__u32 subnet, mask;
	__u32 found;
};

static void parse_addr(struct nlmsghdr *h, void *arg)
{
	struct addr_query *q = arg;
	struct ifaddrmsg *ifa = NLMSG_DATA(h);
	int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa));

	if (h->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET || (int)ifa->ifa_index != q->ifindex)
		return;
	for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		__u32 ip;

		if (a->rta_type != IFA_LOCAL && a->rta_type != IFA_ADDRESS)
			continue;
		memcpy(&ip, RTA_DATA(a), 4);
		if ((ip & q->mask) == q->subnet && !q->found)
			q->found = ip;
	}
}

/* The IPv4 address inside the node's subnet of interface `ifindex` in peer namespace `netnsid`. */
static __u32 peer_address(int nl, int netnsid, int ifindex, __u32 subnet, __u32 mask)
{
	struct {
		struct nlmsghdr h;
		struct ifaddrmsg a;
		char attrs[64];
	} req;
	struct addr_query q = { .ifindex = ifindex, .subnet = subnet, .mask = mask };

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.a));
	req.h.nlmsg_type = RTM_GETADDR;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.a.ifa_family = AF_INET;
	req.a.ifa_index = ifindex; /* filtered by the kernel (strict checking) */
	nl_attr_u32(&req.h, IFA_TARGET_NETNSID, netnsid);
	if (nl_talk(nl, &req.h, parse_addr, &q))
		return 0;
	return q.found;
}

static struct link *link_by_index(struct links *ls, int ifindex)
{
	for (int i = 0; i < ls->n; i++)
		if (ls->v[i].ifindex == ifindex)
			return &ls->v[i];
	return NULL;
}

static struct link *link_by_name(struct links *ls, const char *name)
{
	for (int i = 0; i < ls->n; i++)
		if (!strcmp(ls->v[i].name, name))
			return &ls->v[i];
	return NULL;
}

/* ------------------------------------------------------------------------------------ parsing */
static int parse_mac(const char *s, __u8 mac[6])
{
	unsigned int b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return -1;
		mac[i] = b[i];
	}
	return 0;
}

static int parse_cidr(const char *s, __u32 *addr, __u32 *len)
{
	char ip[32];
	const char *slash = strchr(s, '/');
	struct in_addr a;

	if (!slash || slash - s >= (long)sizeof(ip))
		return -1;
	memcpy(ip, s, slash - s);
	ip[slash - s] = 0;
	*len = atoi(slash + 1);
	if (inet_pton(AF_INET, ip, &a) != 1 || *len > 32)
		return -1;
	*addr = a.s_addr;
	return 0;
}

static __u32 mask_of(__u32 len)
{
	return len ? htonl(~0U << (32 - len)) : 0;
}

/* Every key of a map (a snapshot: deleting while walking would restart the walk); free() the result. */
static int map_keys(int fd, size_t key_size, void **keys)
{
	char prev[64], next[64];
	int n = 0, cap = 0;
	char *v = NULL;

	if (key_size > sizeof(prev))
		die("map key of %zu bytes is too large", key_size);
	while (bpf_map_get_next_key(fd, n ? prev : NULL, next) == 0) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = realloc(v, cap * key_size);
			if (!v)
				die("out of memory");
		}
		memcpy(v + n * key_size, next, key_size);
		memcpy(prev, next, key_size);
		n++;
	}
	*keys = v;
	return n;
}

/* ------------------------------------------------------------------------------------ commands */
static __u64 cookie;
static struct fp *cur; /* the object this run works on */
static struct fp loaded;

static void need_object(void)
{
	if (!cur)
		die("no fast path in this network namespace (run `load OBJ` first)");
}

/* Finds this namespace's object made from OBJ (same tag) or loads it. An older object's pods and
 * subnet are carried over, it is retired (its programs pass everything to the stack), and at the
 * end of the run its programs are swapped for the new ones wherever they are attached. */
static int swap_pending;

static void cmd_load(const char *path)
{
	__u64 tag = file_tag(path);
	struct fp *old = cur;

	check_kernel();
	if (old && old->cfg.tag == tag) {
		out_raw("load", "\"reused\"");
		return;
	}
	load_fresh(&loaded, path, cookie, tag);
	if (old) {
		__u32 *ips;
		int n = map_keys(old->pods_fd, sizeof(*ips), (void **)&ips);
		struct weft_pod pod;

		loaded.cfg.subnet = old->cfg.subnet;
		loaded.cfg.mask = old->cfg.mask;
		loaded.cfg.vxlan_local = old->cfg.vxlan_local;
		loaded.cfg.vxlan_vni = old->cfg.vxlan_vni;
		loaded.cfg.vxlan_port = old->cfg.vxlan_port;
		memcpy(loaded.cfg.vtep_mac, old->cfg.vtep_mac, 6);
		for (int i = 0; i < n; i++)
			if (!bpf_map_lookup_elem(old->pods_fd, &ips[i], &pod))
				bpf_map_update_elem(loaded.pods_fd, &ips[i], &pod, BPF_ANY);
		free(ips);
	}
	/*
	 * Wherever a weft program is attached (an older object of this ABI; or one of an older ABI, which
	 * find_objects does not see: an upgrade of weft), the new one takes its place at the end of the
	 * run, on every device at once, the pods' veths included.
	 */
	swap_pending = 1;
	write_cfg(&loaded);
	if (old)
		retire(old);
	cur = &loaded;
	out_raw("load", old ? "\"upgraded\"" : "\"fresh\"");
}

static void finish_swap(void)
{
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);

	for (int i = 0; i < ls.n; i++)
		replace_weft(ls.v[i].ifindex, cur->prog_fd, cur->cfg.prog_id);
	free(ls.v);
	close(nl);
}

static void cmd_subnet(const char *cidr)
{
	__u32 addr, len;

	need_object();
	if (parse_cidr(cidr, &addr, &len))
		die("subnet: %s is not an IPv4 CIDR", cidr);
	cur->cfg.subnet = addr & mask_of(len);
	cur->cfg.mask = mask_of(len);
	write_cfg(cur);
}

struct peer_entry {
	struct weft_peer_key k;
	struct weft_peer v;
};
static struct peer_entry *want_peers;
static int n_want;
static char *perr_buf;
static size_t perr_len;
static FILE *perr;

static int mac_of_device(const char *dev, __u8 mac[6])
{
	struct ifreq r;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int err;

	memset(&r, 0, sizeof(r));
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", dev);
	err = s < 0 || ioctl(s, SIOCGIFHWADDR, &r) ? -1 : 0;
	if (s >= 0)
		close(s);
	if (!err)
		memcpy(mac, r.ifr_hwaddr.sa_data, 6);
	return err;
}

/*
 * The node's VXLAN endpoint, as its VXLAN device DEV has it (VNI, UDP port, local address, the
 * device's MAC as the VTEP MAC): what the program encapsulates with and accepts to decapsulate.
 * `vxlan off`: no VXLAN here (host-gw), nothing is decapsulated. Before the peers: they take this
 * node's VTEP MAC from it.
 */
static void cmd_vxlan(char **arg, int n)
{
	struct in_addr local;
	char *e1, *e2;

	need_object();
	if (n == 1 && !strcmp(arg[0], "off")) {
		cur->cfg.vxlan_vni = 0;
		cur->cfg.vxlan_local = 0;
		cur->cfg.vxlan_port = 0;
		memset(cur->cfg.vtep_mac, 0, 6);
		write_cfg(cur);
		return;
	}
	if (n != 4)
		die("vxlan: expected DEV VNI PORT LOCAL, or off");
	unsigned long vni = strtoul(arg[1], &e1, 10), port = strtoul(arg[2], &e2, 10);

	if (*e1 || !vni || vni > 0xffffff || *e2 || !port || port > 0xffff)
		die("vxlan: VNI %s or port %s out of range", arg[1], arg[2]);
	if (inet_pton(AF_INET, arg[3], &local) != 1)
		die("vxlan: %s is not an IPv4 address", arg[3]);
	if (mac_of_device(arg[0], cur->cfg.vtep_mac))
		die("vxlan: no device %s in this network namespace", arg[0]);
	cur->cfg.vxlan_vni = vni;
	cur->cfg.vxlan_port = htons(port);
	cur->cfg.vxlan_local = local.s_addr;
	write_cfg(cur);
}

/* A peer that cannot be programmed: reported by name with the others, never fatal. */
static void __attribute__((format(printf, 1, 2))) peer_error(const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!perr)
		perr = open_memstream(&perr_buf, &perr_len);
	else
		fputc(',', perr);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	json_str(perr, line);
}

/*
 * peer CIDR vxlan UNDERLAY VTEP-MAC REMOTE | peer CIDR routed DEV NEXTHOP: one desired entry
 * (applied by peers-end).
 */
static void cmd_peer(char **arg, int n)
{
	struct peer_entry e;
	__u32 addr, len;

	need_object();
	memset(&e, 0, sizeof(e));
	if (n < 4 || parse_cidr(arg[0], &addr, &len))
		{ peer_error("peer: expected CIDR vxlan|routed DEV MAC REMOTE|NEXTHOP"); return; }
	e.k.prefixlen = len;
	e.k.addr = addr & mask_of(len);
	e.v.ifindex = if_nametoindex(arg[2]);
	if (!e.v.ifindex)
		{ peer_error("peer %s: no device %s", arg[0], arg[2]); return; }
	if (!strcmp(arg[1], "vxlan")) {
		struct in_addr remote;

		e.v.kind = WEFT_PEER_VXLAN;
		if (n != 5 || parse_mac(arg[3], e.v.dmac) || inet_pton(AF_INET, arg[4], &remote) != 1)
			{ peer_error("peer %s: expected vxlan UNDERLAY VTEP-MAC REMOTE", arg[0]); return; }
		if (!cur->cfg.vxlan_vni)
			{ peer_error("peer %s: no VXLAN endpoint (a `vxlan DEV ...` line first)", arg[0]); return; }
		e.v.remote = remote.s_addr;
		memcpy(e.v.smac, cur->cfg.vtep_mac, 6);
	} else if (!strcmp(arg[1], "routed") && n == 4) {
		struct in_addr nh;

		e.v.kind = WEFT_PEER_ROUTED;
		if (inet_pton(AF_INET, arg[3], &nh) != 1)
			{ peer_error("peer %s: bad next hop %s", arg[0], arg[3]); return; }
		e.v.nexthop = nh.s_addr;
	} else
		{ peer_error("peer %s: unknown kind %s", arg[0], arg[1]); return; }
	if (n_want == MAX_PEERS)
		{ peer_error("peer %s: more than %d peers", arg[0], MAX_PEERS); return; }
	if (!want_peers && !(want_peers = calloc(MAX_PEERS, sizeof(*want_peers))))
		die("out of memory");
	want_peers[n_want++] = e;
}

/* Makes weft_peers hold exactly the desired entries: new and changed ones written first (each
 * write replaces its entry atomically), stale ones deleted after, so an unchanged peer never sees
 * a gap. */
static void cmd_peers_end(void)
{
	int added = 0, changed = 0, removed = 0, unchanged = 0;

	need_object();
	for (int i = 0; i < n_want; i++) {
		struct weft_peer have;

		if (!bpf_map_lookup_elem(cur->peers_fd, &want_peers[i].k, &have)) {
			if (!memcmp(&have, &want_peers[i].v, sizeof(have))) {
				unchanged++;
				continue;
			}
			changed++;
		} else
			added++;
		if (bpf_map_update_elem(cur->peers_fd, &want_peers[i].k, &want_peers[i].v, BPF_ANY))
			die("cannot write weft_peers: %s", strerror(errno));
	}
	struct weft_peer_key *keys;
	int n = map_keys(cur->peers_fd, sizeof(*keys), (void **)&keys);

	for (int k = 0; k < n; k++) {
		int wanted = 0;

		for (int i = 0; i < n_want && !wanted; i++)
			wanted = !memcmp(&want_peers[i].k, &keys[k], sizeof(keys[k]));
		if (!wanted && !bpf_map_delete_elem(cur->peers_fd, &keys[k]))
			removed++;
	}
	free(keys);
	out_raw("peers", "{\"added\":%d,\"changed\":%d,\"removed\":%d,\"unchanged\":%d}", added, changed,
		removed, unchanged);
	if (perr) {
		fclose(perr);
		out_raw("peerErrors", "[%.*s]", (int)perr_len, perr_buf);
		free(perr_buf);
		perr = NULL;
	}
	n_want = 0;
}

static int is_pod_veth(const struct link *l)
{
	return l->veth && l->master && l->netnsid >= 0;
}

/* Attaches the program to exactly these node devices (and takes it off any other that is not a
 * pod's veth). */
static void cmd_net_devs(char **devs, int n)
{
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);

	need_object();
	for (int j = 0; j < n; j++)
		if (!link_by_name(&ls, devs[j]))
			die("net-devs: no device %s in this network namespace", devs[j]);
	for (int i = 0; i < ls.n; i++) {
		int want = 0;

		for (int j = 0; j < n && !want; j++)
			want = !strcmp(devs[j], ls.v[i].name);
		if (!want) {
			if (!is_pod_veth(&ls.v[i]))
				detach_weft(ls.v[i].ifindex);
			continue;
		}
		int err = ensure_attached(ls.v[i].ifindex, cur->prog_fd, cur->cfg.prog_id);

		if (err)
			die("cannot attach " WEFT_PROG " to %s: %s", ls.v[i].name, strerror(-err));
	}
	out_raw("netDevs", "%d", n);
	free(ls.v);
	close(nl);
}

/* Attaches the program to one node device (no other device is touched). */
static void cmd_attach(const char *dev)
{
	int ifindex = if_nametoindex(dev);

	need_object();
	if (!ifindex)
		die("attach: no device %s in this network namespace", dev);
	int err = ensure_attached(ifindex, cur->prog_fd, cur->cfg.prog_id);

	if (err)
		die("cannot attach " WEFT_PROG " to %s: %s", dev, strerror(-err));
}

/* Writes one pod's entry and attaches the program to its host veth. */
static int add_pod(struct links *ls, struct link *veth, __u32 ip, const __u8 *pod_mac)
{
	struct link *master = link_by_index(ls, veth->master);
	struct weft_pod pod;

	if (!master || !master->has_mac)
		return -ENODEV;
	memset(&pod, 0, sizeof(pod));
	pod.ifindex = veth->ifindex;
	memcpy(pod.mac, pod_mac, 6);
	memcpy(pod.gw_mac, master->mac, 6);
	int err = ensure_attached(veth->ifindex, cur->prog_fd, cur->cfg.prog_id);

	if (err)
		return err;
	struct weft_pod have;

	if (!bpf_map_lookup_elem(cur->pods_fd, &ip, &have) && !memcmp(&have, &pod, sizeof(pod)))
		return 0;
	return bpf_map_update_elem(cur->pods_fd, &ip, &pod, BPF_ANY) ? -errno : 0;
}

/* The local pods as the kernel shows them: veths on a bridge whose peer, in another namespace, has
 * an address in the node's subnet. Missing entries are added; entries whose veth is gone or now
 * belongs to another address are removed (never one the CNI plugin added meanwhile). */
static void cmd_pods_sync(void)
{
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);
	int added = 0, present = 0, removed = 0, failed = 0;
	__u32 *seen_ip = calloc(ls.n + 1, sizeof(__u32));

	need_object();
	if (!seen_ip)
		die("out of memory");
	for (int i = 0; i < ls.n; i++) {
		struct link *l = &ls.v[i];

		if (!is_pod_veth(l) || !cur->cfg.mask)
			continue;
		struct links peer = get_links(nl, l->netnsid, l->peer);
		__u32 ip = peer.n == 1 && peer.v[0].has_mac
				   ? peer_address(nl, l->netnsid, l->peer, cur->cfg.subnet, cur->cfg.mask)
				   : 0;

		if (ip) {
			struct weft_pod have;
			int had = !bpf_map_lookup_elem(cur->pods_fd, &ip, &have);

			if (add_pod(&ls, l, ip, peer.v[0].mac))
				failed++;
			else if (had)
				present++;
			else
				added++;
			seen_ip[i] = ip;
		}
		free(peer.v);
	}
	/* Stale: the device is gone (and did not appear since the listing), is no pod veth, or its
	 * pod now has another address. */
	__u32 *ips;
	int n = map_keys(cur->pods_fd, sizeof(*ips), (void **)&ips);

	for (int k = 0; k < n; k++) {
		struct weft_pod pod;
		char name[IF_NAMESIZE];

		if (bpf_map_lookup_elem(cur->pods_fd, &ips[k], &pod))
			continue;
		struct link *l = link_by_index(&ls, pod.ifindex);
		int stale = l ? !l->veth || !l->master || (seen_ip[l - ls.v] && seen_ip[l - ls.v] != ips[k])
			      : !if_indextoname(pod.ifindex, name);

		if (stale && !bpf_map_delete_elem(cur->pods_fd, &ips[k]))
			removed++;
	}
	free(ips);
	out_raw("pods", "{\"added\":%d,\"present\":%d,\"removed\":%d,\"failed\":%d}", added, present,
		removed, failed);
	free(seen_ip);
	free(ls.v);
	close(nl);
}

static void cmd_pod_add(const char *dev, const char *ip_s, const char *mac_s)
{
	struct in_addr ip;
	__u8 mac[6];

	if (!cur) {
		out_raw("fastPath", "\"off\"");
		return;
	}
	if (inet_pton(AF_INET, ip_s, &ip) != 1 || parse_mac(mac_s, mac))
		die("pod-add: expected DEV IP MAC, got %s %s %s", dev, ip_s, mac_s);
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);
	struct link *veth = link_by_name(&ls, dev);

	if (!veth || !veth->master)
		die("pod-add: %s is not a bridge port in this network namespace", dev);
	int err = add_pod(&ls, veth, ip.s_addr, mac);

	if (err)
		die("pod-add: cannot attach " WEFT_PROG " to %s: %s", dev, strerror(-err));
	out_raw("fastPath", "\"on\"");
	free(ls.v);
	close(nl);
}

static void cmd_pod_del(const char *ip_s)
{
	struct in_addr ip;

	if (!cur) {
		out_raw("fastPath", "\"off\"");
		return;
	}
	if (inet_pton(AF_INET, ip_s, &ip) != 1)
		die("pod-del: %s is not an IPv4 address", ip_s);
	bpf_map_delete_elem(cur->pods_fd, &ip.s_addr);
	out_raw("fastPath", "\"on\"");
}

static const char *counter_names[WEFT_COUNTERS] = {
	[WEFT_FAST_LOCAL] = "fast_local",	[WEFT_FAST_VXLAN] = "fast_vxlan",
	[WEFT_FAST_ROUTED] = "fast_routed",	[WEFT_FAST_IN] = "fast_in",
	[WEFT_SLOW_NOT_IPV4] = "slow_not_ipv4", [WEFT_SLOW_UNKNOWN] = "slow_unknown_destination",
	[WEFT_SLOW_NAT] = "slow_nat",		[WEFT_SLOW_PROTO] = "slow_protocol",
	[WEFT_SLOW_TTL] = "slow_ttl",		[WEFT_SLOW_MTU] = "slow_mtu",
	[WEFT_SLOW_OTHER] = "slow_other",	[WEFT_NOT_POD] = "not_pod",
	[WEFT_FAST_DECAP] = "fast_decap",	[WEFT_SLOW_VXLAN_GSO] = "slow_vxlan_gso",
};

static void cmd_stats(void)
{
	int ncpu = libbpf_num_possible_cpus();
	struct weft_counter *v = calloc(ncpu > 0 ? ncpu : 1, sizeof(*v));

	if (!v)
		die("out of memory");
	out_key("counters");
	fputc('{', out);
	for (__u32 k = 0; k < WEFT_COUNTERS; k++) {
		__u64 p = 0, b = 0;

		for (int f = 0; f < n_found; f++) {
			/* Every object of the namespace: an upgrade must not make counters go back. */
			int fd = bpf_map_get_fd_by_id(found[f].cfg.map_ids[2]);

			if (fd < 0 || bpf_map_lookup_elem(fd, &k, v)) {
				if (fd >= 0)
					close(fd);
				continue;
			}
			for (int c = 0; c < ncpu; c++) {
				p += v[c].packets;
				b += v[c].bytes;
			}
			close(fd);
		}
		fprintf(out, "%s\"%s\":[%llu,%llu]", k ? "," : "", counter_names[k], (unsigned long long)p,
			(unsigned long long)b);
	}
	fputc('}', out);
	free(v);
}

/* Takes every weft program off every device of the namespace; the maps go with the programs. */
static void cmd_unload(void)
{
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);
	int detached = 0;

	for (int f = 0; f < n_found; f++)
		retire(&found[f]);
	for (int i = 0; i < ls.n; i++)
		detached += detach_weft(ls.v[i].ifindex);
	out_raw("unloaded", "{\"objects\":%d,\"detached\":%d}", n_found, detached);
	cur = NULL;
	free(ls.v);
	close(nl);
}

static void cmd_status(void)
{
	int nl = nl_open();
	struct links ls = get_links(nl, -1, 0);
	struct fp *live = live_object();

	out_raw("netnsCookie", "%llu", (unsigned long long)cookie);
	out_key("objects");
	fputc('[', out);
	for (int f = 0; f < n_found; f++)
		fprintf(out,
			"%s{\"cfgMap\":%u,\"maps\":[%u,%u,%u],\"program\":%u,\"retired\":%s,\"tag\":\"%016llx\"}",
			f ? "," : "", found[f].cfg_id, found[f].cfg.map_ids[0], found[f].cfg.map_ids[1],
			found[f].cfg.map_ids[2], found[f].cfg.prog_id,
			found[f].cfg.retired ? "true" : "false", (unsigned long long)found[f].cfg.tag);
	fputc(']', out);
	out_key("attached");
	fputc('{', out);
	int first = 1;

	for (int i = 0; i < ls.n; i++) {
		__u32 ids[64], n = 64;
		int any = 0;

		if (tcx_query(ls.v[i].ifindex, ids, &n))
			continue;
		for (__u32 j = 0; j < n; j++) {
			char name[BPF_OBJ_NAME_LEN];

			if (prog_name(ids[j], name, NULL) || !is_weft_prog(name))
				continue;
			if (!any) {
				fprintf(out, "%s", first ? "" : ",");
				json_str(out, ls.v[i].name);
				fputs(":[", out);
				first = 0;
			}
			fprintf(out, "%s%u", any++ ? "," : "", ids[j]);
		}
		if (any)
			fputc(']', out);
	}
	fputc('}', out);
	if (live) {
		void *keys;
		int pods = map_keys(live->pods_fd, sizeof(__u32), &keys);

		free(keys);
		int peers = map_keys(live->peers_fd, sizeof(struct weft_peer_key), &keys);

		free(keys);
		out_raw("pods", "%d", pods);
		out_raw("peers", "%d", peers);
	}
	free(ls.v);
	close(nl);
}

/* ------------------------------------------------------------------------------------ main */
static void run_line(char **w, int n)
{
	if (!n)
		return;
	if (!strcmp(w[0], "load") && n == 2)
		cmd_load(w[1]);
	else if (!strcmp(w[0], "subnet") && n == 2)
		cmd_subnet(w[1]);
	else if (!strcmp(w[0], "vxlan"))
		cmd_vxlan(w + 1, n - 1);
	else if (!strcmp(w[0], "peer"))
		cmd_peer(w + 1, n - 1);
	else if (!strcmp(w[0], "peers-end") && n == 1)
		cmd_peers_end();
	else if (!strcmp(w[0], "attach") && n == 2)
		cmd_attach(w[1]);
	else if (!strcmp(w[0], "net-devs"))
		cmd_net_devs(w + 1, n - 1);
	else if (!strcmp(w[0], "pods-sync") && n == 1)
		cmd_pods_sync();
	else if (!strcmp(w[0], "pod-add") && n == 4)
		cmd_pod_add(w[1], w[2], w[3]);
	else if (!strcmp(w[0], "pod-del") && n == 2)
		cmd_pod_del(w[1]);
	else if (!strcmp(w[0], "stats") && n == 1)
		cmd_stats();
	else if (!strcmp(w[0], "status") && n == 1)
		cmd_status();
	else if (!strcmp(w[0], "unload") && n == 1)
		cmd_unload();
	else
		die("unknown command: %s (with %d arguments)", w[0], n - 1);
}

static int split(char *line, char **w, int max)
{
	int n = 0;

	for (char *t = strtok(line, " \t\r\n"); t && n < max; t = strtok(NULL, " \t\r\n"))
		w[n++] = t;
	return n;
}

int main(int argc, char **argv)
{
	out = open_memstream(&out_buf, &out_len);
	fputc('{', out);
	libbpf_set_print(libbpf_log);
	if (argc < 2)
		die("usage: weft-fastpath probe OBJ | run < SCRIPT | pod-add DEV IP MAC | pod-del IP | status | stats | unload");
	cookie = netns_cookie();
	if (!strcmp(argv[1], "probe")) {
		if (argc != 3)
			die("usage: weft-fastpath probe OBJ");
		check_kernel();
		load_fresh(&loaded, argv[2], cookie, 0); /* freed when this process exits */
		out_raw("supported", "true");
		flush_out();
		return 0;
	}
	find_objects(cookie);
	cur = live_object();
	if (cur)
		open_fp(cur);
	if (!strcmp(argv[1], "run")) {
		char line[512], *w[64];

		while (fgets(line, sizeof(line), stdin))
			run_line(w, split(line, w, 64));
	} else
		run_line(argv + 1, argc - 1);
	if (swap_pending)
		finish_swap();
	flush_out();
	return 0;
}
