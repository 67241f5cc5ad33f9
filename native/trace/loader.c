// SPDX-License-Identifier: Apache-2.0
/*
 * weft-trace-node: the node-local half of `weft trace`. It loads bpf/trace.bpf.c, attaches it with tcx
 * to the devices of the network namespaces it is told to watch, turns nftables tracing on there, sends
 * the probe from a namespace when asked, and prints everything it sees as JSON lines on stdout.
 *
 * Nothing it sets up outlives it: every tcx link and the kfree_skb tracepoint are BPF links held only by
 * this process's file descriptors, and every nftables trace table is created with `flags owner` on a
 * netlink socket of this process; when the process ends (exit, crash, SIGKILL) the kernel detaches the
 * programs and deletes the tables. PR_SET_PDEATHSIG ends it when its parent (weft trace) dies.
 *
 * Commands, one per line on stdin:
 *   probe proto=N daddr=A sport=N dport=N sig=HEX32 reply=HEX8 [saddr=A] [vxlan=P,P] [udp=P]
 *   watch NETNS_PATH [IFNAME,...]        attach to every device (but lo), or to the ones named
 *   nft NETNS_PATH RULES_FILE            create the trace table in RULES_FILE there, monitor trace
 *   arm | disarm                         start/stop matching
 *   send NETNS_PATH TIMEOUT_MS           send the probe from that namespace, report the outcome
 *   stats | quit
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_arp.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <nftables/libnftables.h>
#include "trace.h"
#include "trace.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
/* Not in this libbpf's UAPI copy (Linux 6.1); stable kernel ABI since 6.6. */
#define ATTACH_TCX_INGRESS 46
#define ATTACH_TCX_EGRESS 47
#define LINK_F_BEFORE (1U << 3)

static struct trace_bpf *skel;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tr_config conf;
static int links[8192];
static int nlinks;
static pthread_mutex_t links_lock = PTHREAD_MUTEX_INITIALIZER;

static void keep_link(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&links_lock);
	if (nlinks < (int)(sizeof links / sizeof links[0]))
		links[nlinks++] = fd;
	else
		close(fd);
	pthread_mutex_unlock(&links_lock);
}

/* ---------------------------------------------------------------- output */
static void emit(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

/* A JSON string body (quotes and control characters escaped). */
static void json_str(char *dst, size_t cap, const char *s)
{
	size_t j = 0;
	for (; *s && j + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)ch;
		} else if (ch < 0x20) {
			j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", ch);
		} else
			dst[j++] = (char)ch;
	}
	dst[j] = 0;
}

static void fail(const char *what, int err)
{
	char m[512];
	json_str(m, sizeof m, what);
	emit("{\"ev\":\"error\",\"message\":\"%s: %s\"}", m, strerror(err));
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock bpf_ktime_get_ns reads */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- drop reasons (BTF) and symbols */
static char **reason_names;
static unsigned nreasons;

static void load_drop_reasons(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	if (!btf)
		return;
	for (unsigned id = 1; id < btf__type_cnt(btf); id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		if (!btf_is_enum(t) || strcmp(btf__name_by_offset(btf, t->name_off), "skb_drop_reason"))
			continue;
		const struct btf_enum *e = btf_enum(t);
		for (unsigned i = 0; i < btf_vlen(t); i++)
			if (e[i].val >= 0 && (unsigned)e[i].val + 1 > nreasons)
				nreasons = (unsigned)e[i].val + 1;
		reason_names = calloc(nreasons, sizeof(char *));
		for (unsigned i = 0; i < btf_vlen(t); i++) {
			const char *n = btf__name_by_offset(btf, e[i].name_off);
			if (!strncmp(n, "SKB_DROP_REASON_", 16))
				n += 16;
			if (e[i].val >= 0)
				reason_names[e[i].val] = strdup(n);
		}
		break;
	}
	btf__free(btf);
}

static void reason_name(uint32_t r, char *out, size_t cap)
{
	if (r >> 16) /* a subsystem's own reasons (SKB_DROP_REASON_SUBSYS_MASK) */
		snprintf(out, cap, "SUBSYS_%u_%u", r >> 16, r & 0xffff);
	else if (r < nreasons && reason_names[r])
		snprintf(out, cap, "%s", reason_names[r]);
	else
		snprintf(out, cap, "%u", r);
}

struct ksym {
	uint64_t addr;
	char *name;
};
static struct ksym *ksyms;
static size_t nksyms;

static int ksym_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ksym *)a)->addr, y = ((const struct ksym *)b)->addr;
	return x < y ? -1 : x > y;
}

/* /proc/kallsyms is large: it is read in the background from the start, so that the first drop
 * does not hold the event stream up while the table loads. */
static pthread_t ksyms_thread;
static int ksyms_started;

static void *load_ksyms(void *arg)
{
	(void)arg;
	FILE *f = fopen("/proc/kallsyms", "r");
	size_t cap_syms = 0;
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		char *end;
		unsigned long long a = strtoull(line, &end, 16);
		if (!a || end[0] != ' ' || (end[1] != 't' && end[1] != 'T') || end[2] != ' ')
			continue;
		char *name = end + 3, *stop = strpbrk(name, " \t\n");
		if (stop)
			*stop = 0;
		if (nksyms == cap_syms) {
			cap_syms = cap_syms ? cap_syms * 2 : 65536;
			ksyms = realloc(ksyms, cap_syms * sizeof *ksyms);
		}
		ksyms[nksyms].addr = a;
		ksyms[nksyms++].name = strdup(name);
	}
	if (f)
		fclose(f);
	if (ksyms)
		qsort(ksyms, nksyms, sizeof *ksyms, ksym_cmp);
	return NULL;
}

static void symbolize(uint64_t addr, char *out, size_t cap)
{
	if (ksyms_started == 1) {
		pthread_join(ksyms_thread, NULL);
		ksyms_started = 2;
	}
	size_t lo = 0, hi = nksyms;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (ksyms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	if (nksyms && ksyms[lo].addr <= addr)
		snprintf(out, cap, "%s+0x%llx", ksyms[lo].name, (unsigned long long)(addr - ksyms[lo].addr));
	else
		snprintf(out, cap, "0x%llx", (unsigned long long)addr);
}

/* ---------------------------------------------------------------- events */
static const char *ip(uint32_t a, char *buf)
{
	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size < sizeof(struct tr_event))
		return 0;
	const struct tr_event *e = data;
	static const char *kinds[] = {"ingress", "egress", "drop"};
	static const char *dirs[] = {"none", "request", "reply"};
	static const char *encs[] = {"none", "vxlan", "udp"};
	char layers[2048];
	size_t n = 0;
	for (int i = 0; i < e->nlayers && i < TR_MAX_LAYERS; i++) {
		const struct tr_layer *l = &e->l[i];
		char s[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
		n += (size_t)snprintf(layers + n, sizeof layers - n,
				      "%s{\"src\":\"%s\",\"dst\":\"%s\",\"proto\":%u,\"ttl\":%u,\"len\":%u,\"id\":%u,"
				      "\"frag\":%u,\"sport\":%u,\"dport\":%u,\"tcpFlags\":%u,\"seq\":%u,\"ack\":%u,"
				      "\"icmpType\":%u,\"icmpCode\":%u,\"encap\":\"%s\",\"vni\":%u}",
				      i ? "," : "", ip(l->saddr, s), ip(l->daddr, d), l->proto, l->ttl, l->tot_len, l->id,
				      l->frag, l->sport, l->dport, l->tcp_flags, l->seq, l->ack, l->icmp_type, l->icmp_code,
				      encs[l->encap < 3 ? l->encap : 0], l->vni);
	}
	layers[n] = 0;
	char extra[512] = "";
	if (e->kind == TR_DROP) {
		char r[96], loc[320];
		reason_name(e->reason, r, sizeof r);
		symbolize(e->location, loc, sizeof loc);
		snprintf(extra, sizeof extra, ",\"reason\":\"%s\",\"reasonCode\":%u,\"location\":\"%s\"", r, e->reason, loc);
	}
	emit("{\"ev\":\"hop\",\"kind\":\"%s\",\"dir\":\"%s\",\"ts\":%llu,\"netns\":\"%llu\",\"ifindex\":%u,"
	     "\"len\":%u,\"mark\":%u,\"pktType\":%u,\"icmpError\":%s,\"layers\":[%s]%s}",
	     kinds[e->kind < 3 ? e->kind : 0], dirs[e->dir < 3 ? e->dir : 0], (unsigned long long)e->ts,
	     (unsigned long long)e->netns, e->ifindex, e->skb_len, e->mark, e->pkt_type,
	     e->icmp_error ? "true" : "false", layers, extra);
	return 0;
}

/* ---------------------------------------------------------------- namespaces and devices */
static int enter_ns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = setns(fd, CLONE_NEWNET);
	int e = errno;
	close(fd);
	return r < 0 ? -e : 0;
}

static int tcx_attach(int prog_fd, unsigned ifindex, int type)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.link_create.prog_fd = (uint32_t)prog_fd;
	attr.link_create.target_fd = ifindex; /* target_ifindex */
	attr.link_create.attach_type = (uint32_t)type;
	attr.link_create.flags = LINK_F_BEFORE; /* first in the device's chain: before any redirect */
	return (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof attr);
}

static int wanted(const char *name, const char *list)
{
	if (!list || !*list)
		return strcmp(name, "lo") != 0;
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && !strncmp(p, name, n))
			return 1;
		p += len + (c ? 1 : 0);
	}
	return 0;
}

/* Runs in a thread of its own, inside the namespace: attaching waits for an RCU grace period per
 * link, and grace periods of concurrent threads overlap, so namespaces are attached in parallel. */
static void watch_ns(const char *path, const char *list)
{
	char jpath[1024];
	json_str(jpath, sizeof jpath, path);
	int r = enter_ns(path);
	if (r < 0) {
		emit("{\"ev\":\"error\",\"netns\":\"%s\",\"message\":\"cannot enter %s: %s\"}", jpath, jpath, strerror(-r));
		return;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint64_t cookie = 0;
	socklen_t cl = sizeof cookie;
	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &cl) < 0)
		fail("netns cookie", errno);
	struct if_nameindex *ifs = if_nameindex();
	int count = 0;
	for (struct if_nameindex *i = ifs; i && i->if_index; i++) {
		if (!wanted(i->if_name, list))
			continue;
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		strncpy(ifr.ifr_name, i->if_name, IFNAMSIZ - 1);
		int mtu = ioctl(s, SIOCGIFMTU, &ifr) == 0 ? ifr.ifr_mtu : 0;
		int l2 = ioctl(s, SIOCGIFHWADDR, &ifr) == 0 && ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER;
		if (ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK && (!list || !*list))
			continue;
		int prog = bpf_program__fd(skel->progs.wtrace_tc);
		int a = tcx_attach(prog, i->if_index, ATTACH_TCX_INGRESS);
		int ae = a < 0 ? errno : 0;
		int b = a >= 0 ? tcx_attach(prog, i->if_index, ATTACH_TCX_EGRESS) : -1;
		int be = b < 0 ? errno : 0;
		keep_link(a);
		keep_link(b);
		char jn[64];
		json_str(jn, sizeof jn, i->if_name);
		if (a < 0 || b < 0) {
			emit("{\"ev\":\"error\",\"netns\":\"%s\",\"ifname\":\"%s\",\"message\":\"cannot attach tcx to %s: %s\"}",
			     jpath, jn, jn, strerror(a < 0 ? ae : be));
			continue;
		}
		count++;
		emit("{\"ev\":\"attached\",\"path\":\"%s\",\"netns\":\"%llu\",\"ifindex\":%u,\"ifname\":\"%s\",\"mtu\":%d,\"l2\":%s}",
		     jpath, (unsigned long long)cookie, i->if_index, jn, mtu, l2 ? "true" : "false");
	}
	if (ifs)
		if_freenameindex(ifs);
	if (s >= 0)
		close(s);
	emit("{\"ev\":\"watching\",\"path\":\"%s\",\"netns\":\"%llu\",\"devices\":%d}", jpath, (unsigned long long)cookie, count);
}

struct watch_job {
	char path[512];
	char list[1024];
};

static void *watch_thread(void *arg)
{
	struct watch_job *j = arg;
	watch_ns(j->path, j->list);
	free(j);
	return NULL;
}

static void cmd_watch(const char *path, const char *list)
{
	struct watch_job *j = calloc(1, sizeof *j);
	snprintf(j->path, sizeof j->path, "%s", path);
	snprintf(j->list, sizeof j->list, "%s", list ? list : "");
	pthread_t t;
	if (pthread_create(&t, NULL, watch_thread, j) != 0) {
		fail("watch thread", errno);
		free(j);
		return;
	}
	pthread_detach(t);
}

/* Closing a link also waits for a grace period: close them from several threads at once. */
static void *close_slice(void *arg)
{
	long k = (long)arg;
	for (int i = (int)k; i < nlinks; i += 16)
		close(links[i]);
	return NULL;
}

static void close_links(void)
{
	pthread_t t[16];
	pthread_mutex_lock(&links_lock);
	for (long k = 0; k < 16; k++)
		if (pthread_create(&t[k], NULL, close_slice, (void *)k) != 0)
			close_slice((void *)k), t[k] = 0;
	for (int k = 0; k < 16; k++)
		if (t[k])
			pthread_join(t[k], NULL);
	pthread_mutex_unlock(&links_lock);
}

/* ---------------------------------------------------------------- nftables tracing, one thread per namespace */
/* The monitor subscribes some time after it is started, and nothing says when: until a canary (a UDP
 * datagram to 127.0.0.1:9 carrying CANARY_MARK, which the trace table traces) shows up in its output,
 * the namespace is not reported ready. */
#define CANARY_MARK 0x2ae7

struct nft_job {
	char path[512];
	char *rules;
	int fd; /* write end of the pipe the monitor prints to */
	struct nft_ctx *ctx;
	volatile int ready;
};

static void *monitor_thread(void *arg)
{
	struct nft_job *j = arg;
	/* setns is per thread: this one enters the namespace too (the netlink socket already lives there) */
	enter_ns(j->path);
	/* Blocks until the process ends; the trace table lives exactly as long as ctx's socket. */
	nft_run_cmd_from_buffer(j->ctx, "monitor trace");
	return NULL;
}

static void *nft_thread(void *arg)
{
	struct nft_job *j = arg;
	FILE *out = fdopen(j->fd, "w");
	if (!out)
		return NULL;
	setvbuf(out, NULL, _IOLBF, 0);
	int r = enter_ns(j->path);
	if (r < 0) {
		fprintf(out, "!error cannot enter the namespace: %s\n", strerror(-r));
		return NULL;
	}
	j->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	nft_ctx_set_output(j->ctx, out);
	nft_ctx_buffer_error(j->ctx);
	if (nft_run_cmd_from_buffer(j->ctx, j->rules) != 0) {
		const char *e = nft_ctx_get_error_buffer(j->ctx);
		char one[512];
		snprintf(one, sizeof one, "%s", e ? e : "failed");
		for (char *p = one; *p; p++)
			if (*p == '\n')
				*p = ' ';
		fprintf(out, "!error %s\n", one);
		return NULL;
	}
	pthread_t t;
	if (pthread_create(&t, NULL, monitor_thread, j) != 0) {
		fprintf(out, "!error cannot start the trace monitor\n");
		return NULL;
	}
	pthread_detach(t);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int mark = CANARY_MARK;
	setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < 300 && !j->ready; i++) {
		sendto(s, "canary", 6, 0, (struct sockaddr *)&lo, sizeof lo);
		usleep(10000);
	}
	close(s);
	if (!j->ready)
		fprintf(out, "!late the trace monitor did not confirm within 3 s\n");
	return NULL;
}

#define MAX_PIPES 64
static struct {
	int fd;
	char path[512];
	char buf[8192];
	size_t len;
	struct nft_job *job;
	int ready_sent;
	char canary[16][9]; /* trace ids of canary packets, not reported */
	int ncanary;
} pipes[MAX_PIPES];
static int npipes;

static int add_pipe(const char *path)
{
	int p[2];
	if (npipes >= MAX_PIPES || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	memset(&pipes[npipes], 0, sizeof pipes[npipes]);
	pipes[npipes].fd = p[0];
	snprintf(pipes[npipes].path, sizeof pipes[npipes].path, "%s", path);
	npipes++;
	return p[1];
}

static void cmd_nft(const char *path, const char *file)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		fail(file, errno);
		return;
	}
	struct nft_job *j = calloc(1, sizeof *j);
	snprintf(j->path, sizeof j->path, "%s", path);
	size_t cap = 65536, len = 0;
	j->rules = malloc(cap);
	size_t got;
	while ((got = fread(j->rules + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len + 1 >= cap)
			j->rules = realloc(j->rules, cap *= 2);
	}
	j->rules[len] = 0;
	fclose(f);
	j->fd = add_pipe(path);
	if (j->fd >= 0)
		pipes[npipes - 1].job = j;
	pthread_t t;
	if (j->fd < 0 || pthread_create(&t, NULL, nft_thread, j) != 0) {
		fail("nft monitor thread", errno);
		return;
	}
	pthread_detach(t);
}

/* A canary's trace line: its packet goes to 127.0.0.1 port 9, or its rule matches the mark. */
static int canary_line(int k, const char *line)
{
	char id[9] = "";
	if (strncmp(line, "trace id ", 9) || sscanf(line + 9, "%8s", id) != 1)
		return 0;
	for (int i = 0; i < pipes[k].ncanary; i++)
		if (!strcmp(pipes[k].canary[i], id))
			return 1;
	if (!strstr(line, "0x00002ae7") && !(strstr(line, "ip daddr 127.0.0.1 ") && strstr(line, "udp dport 9 ")))
		return 0;
	if (pipes[k].ncanary < 16)
		snprintf(pipes[k].canary[pipes[k].ncanary++], 9, "%s", id);
	return 1;
}

static void pipe_line(int k, const char *line)
{
	char jl[4096], jp[1024];
	json_str(jp, sizeof jp, pipes[k].path);
	if (line[0] == '!') {
		if (!strncmp(line, "!sent ", 6) || !strncmp(line, "!outcome ", 9))
			emit("%s", strchr(line, ' ') + 1);
		else {
			json_str(jl, sizeof jl, strchr(line, ' ') ? strchr(line, ' ') + 1 : line);
			emit("{\"ev\":\"error\",\"path\":\"%s\",\"message\":\"%s\"}", jp, jl);
			if (!strncmp(line, "!late", 5) && !pipes[k].ready_sent) {
				pipes[k].ready_sent = 1;
				emit("{\"ev\":\"nft-ready\",\"path\":\"%s\",\"confirmed\":false}", jp);
			}
		}
		return;
	}
	if (pipes[k].job && canary_line(k, line)) {
		pipes[k].job->ready = 1;
		if (!pipes[k].ready_sent) {
			pipes[k].ready_sent = 1;
			emit("{\"ev\":\"nft-ready\",\"path\":\"%s\",\"confirmed\":true}", jp);
		}
		return;
	}
	json_str(jl, sizeof jl, line);
	emit("{\"ev\":\"nft\",\"path\":\"%s\",\"line\":\"%s\"}", jp, jl);
}

static void drain_pipe(int k)
{
	ssize_t r = read(pipes[k].fd, pipes[k].buf + pipes[k].len, sizeof pipes[k].buf - pipes[k].len - 1);
	if (r <= 0) {
		close(pipes[k].fd);
		pipes[k].fd = -1;
		return;
	}
	pipes[k].len += (size_t)r;
	pipes[k].buf[pipes[k].len] = 0;
	char *start = pipes[k].buf, *nl;
	while ((nl = strchr(start, '\n'))) {
		*nl = 0;
		if (*start)
			pipe_line(k, start);
		start = nl + 1;
	}
	size_t rest = pipes[k].len - (size_t)(start - pipes[k].buf);
	memmove(pipes[k].buf, start, rest);
	pipes[k].len = rest;
	if (rest == sizeof pipes[k].buf - 1)
		pipes[k].len = 0; /* an absurdly long line: drop it */
}

/* ---------------------------------------------------------------- the probe */
struct send_job {
	char path[512];
	int timeout_ms;
	int fd;
};

static uint16_t csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)(p[len - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static int remaining(uint64_t deadline)
{
	uint64_t n = now_ns();
	return n >= deadline ? 0 : (int)((deadline - n) / 1000000) + 1;
}

/* Waits for an answer on s; returns the outcome word. */
static const char *await_answer(int s, int proto, uint64_t deadline, uint64_t *when, int *err)
{
	uint8_t buf[2048];
	*err = 0;
	for (;;) {
		struct pollfd p = {.fd = s, .events = proto == IPPROTO_TCP ? POLLOUT : POLLIN};
		int ms = remaining(deadline);
		if (ms == 0 || poll(&p, 1, ms) <= 0)
			return "timeout";
		*when = now_ns();
		if (proto == IPPROTO_TCP) {
			socklen_t l = sizeof *err;
			getsockopt(s, SOL_SOCKET, SO_ERROR, err, &l);
			if (*err == 0)
				return "reply";
			return *err == ECONNREFUSED ? "refused" : "unreachable";
		}
		ssize_t r = recv(s, buf, sizeof buf, 0);
		if (r < 0) {
			*err = errno;
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNREFUSED ? "refused" : "unreachable";
		}
		if (proto == IPPROTO_UDP) {
			if (r >= TR_SIG_LEN && !memcmp(buf + 4, conf.sig + 4, TR_SIG_LEN - 4))
				return "reply";
			continue;
		}
		/* raw ICMP: every ICMP packet of the namespace arrives here, IPv4 header included */
		size_t ihl = (size_t)(buf[0] & 0xf) * 4;
		if ((size_t)r < ihl + 8 + TR_SIG_LEN)
			continue;
		const uint8_t *icmp = buf + ihl;
		if (icmp[0] == ICMP_ECHOREPLY && !memcmp(icmp + 8 + 4, conf.sig + 4, TR_SIG_LEN - 4))
			return "reply";
		if ((icmp[0] == ICMP_DEST_UNREACH || icmp[0] == ICMP_TIME_EXCEEDED) && (size_t)r >= ihl + 8 + 20 + 8 + TR_SIG_LEN) {
			const uint8_t *q = icmp + 8;
			size_t qihl = (size_t)(q[0] & 0xf) * 4;
			if ((size_t)r >= ihl + 8 + qihl + 8 + TR_SIG_LEN && !memcmp(q + qihl + 8 + 4, conf.sig + 4, TR_SIG_LEN - 4))
				return icmp[0] == ICMP_TIME_EXCEEDED ? "ttl-exceeded" : "unreachable";
		}
	}
}

static void *send_thread(void *arg)
{
	struct send_job *j = arg;
	FILE *out = fdopen(j->fd, "w");
	setvbuf(out, NULL, _IOLBF, 0);
	int r = enter_ns(j->path);
	if (r < 0) {
		fprintf(out, "!error cannot enter the namespace: %s\n", strerror(-r));
		return NULL;
	}
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_addr.s_addr = conf.daddr, .sin_port = conf.dport};
	struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = conf.saddr, .sin_port = conf.sport};
	uint8_t payload[64];
	memset(payload, 0, sizeof payload);
	memcpy(payload, conf.sig, TR_SIG_LEN);
	int s = -1;
	uint64_t sent = 0, when = 0;
	int err = 0;
	const char *outcome = "error";
	uint64_t deadline = now_ns() + (uint64_t)j->timeout_ms * 1000000ull;
	if (conf.proto == IPPROTO_ICMP) {
		s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
		uint8_t pkt[8 + sizeof payload];
		memset(pkt, 0, sizeof pkt);
		pkt[0] = ICMP_ECHO;
		uint16_t id = conf.sport, seq = htons(1);
		memcpy(pkt + 4, &id, 2);
		memcpy(pkt + 6, &seq, 2);
		memcpy(pkt + 8, payload, sizeof payload);
		uint16_t c = csum(pkt, sizeof pkt);
		memcpy(pkt + 2, &c, 2);
		sent = now_ns();
		if (s < 0 || sendto(s, pkt, sizeof pkt, 0, (struct sockaddr *)&dst, sizeof dst) < 0)
			err = errno, outcome = err == ENETUNREACH || err == EHOSTUNREACH ? "no-route" : "error";
		else
			outcome = await_answer(s, IPPROTO_ICMP, deadline, &when, &err);
	} else {
		int tcp = conf.proto == IPPROTO_TCP;
		s = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | (tcp ? SOCK_NONBLOCK : 0), 0);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (s < 0 || bind(s, (struct sockaddr *)&src, sizeof src) < 0) {
			err = errno;
		} else {
			sent = now_ns();
			int c = connect(s, (struct sockaddr *)&dst, sizeof dst);
			if (c < 0 && errno != EINPROGRESS)
				err = errno, outcome = err == ENETUNREACH || err == EHOSTUNREACH ? "no-route" : "error";
			else if (!tcp && send(s, payload, sizeof payload, 0) < 0)
				err = errno, outcome = "error";
			else
				outcome = await_answer(s, conf.proto, deadline, &when, &err);
		}
		if (tcp) { /* abort instead of closing: no FIN exchange and no TIME_WAIT after the probe */
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
	}
	fprintf(out, "!sent {\"ev\":\"sent\",\"ts\":%llu}\n", (unsigned long long)sent);
	fprintf(out, "!outcome {\"ev\":\"outcome\",\"outcome\":\"%s\",\"ts\":%llu,\"errno\":\"%s\"}\n", outcome,
		(unsigned long long)when, err ? strerror(err) : "");
	if (s >= 0)
		close(s);
	fclose(out);
	return NULL;
}

static void cmd_send(const char *path, int timeout_ms)
{
	struct send_job *j = calloc(1, sizeof *j);
	snprintf(j->path, sizeof j->path, "%s", path);
	j->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	j->fd = add_pipe(path);
	pthread_t t;
	if (j->fd < 0 || pthread_create(&t, NULL, send_thread, j) != 0) {
		fail("sender thread", errno);
		return;
	}
	pthread_detach(t);
}

/* ---------------------------------------------------------------- commands */
static int hexbytes(const char *h, uint8_t *out, size_t n)
{
	if (strlen(h) != n * 2)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void push_config(void)
{
	uint32_t k = 0;
	if (bpf_map__update_elem(skel->maps.cfg, &k, sizeof k, &conf, sizeof conf, BPF_ANY) < 0)
		fail("config map", errno);
}

static void cmd_probe(char *args)
{
	memset(&conf, 0, sizeof conf);
	conf.vxlan_ports[0] = 8472;
	conf.vxlan_ports[1] = 4789;
	conf.udp_port = 8285;
	for (char *tok = strtok(args, " "); tok; tok = strtok(NULL, " ")) {
		char *v = strchr(tok, '=');
		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(tok, "proto"))
			conf.proto = (uint8_t)atoi(v);
		else if (!strcmp(tok, "saddr"))
			inet_pton(AF_INET, v, &conf.saddr);
		else if (!strcmp(tok, "daddr"))
			inet_pton(AF_INET, v, &conf.daddr);
		else if (!strcmp(tok, "sport"))
			conf.sport = htons((uint16_t)atoi(v));
		else if (!strcmp(tok, "dport"))
			conf.dport = htons((uint16_t)atoi(v));
		else if (!strcmp(tok, "sig"))
			hexbytes(v, conf.sig, TR_SIG_LEN);
		else if (!strcmp(tok, "reply"))
			hexbytes(v, conf.reply_magic, 4);
		else if (!strcmp(tok, "vxlan"))
			sscanf(v, "%hu,%hu", &conf.vxlan_ports[0], &conf.vxlan_ports[1]);
		else if (!strcmp(tok, "udp"))
			conf.udp_port = (uint16_t)atoi(v);
	}
	push_config();
	emit("{\"ev\":\"probe-set\"}");
}

static void cmd_stats(void)
{
	uint32_t k = 0;
	struct tr_config c;
	if (bpf_map__lookup_elem(skel->maps.cfg, &k, sizeof k, &c, sizeof c, 0) == 0)
		emit("{\"ev\":\"stats\",\"matched\":%llu,\"links\":%d,\"isnKnown\":%s}", (unsigned long long)c.matched, nlinks,
		     c.isn_known ? "true" : "false");
}

static int command(char *line)
{
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	char *rest = strchr(line, ' ');
	if (rest)
		*rest++ = 0;
	else
		rest = line + strlen(line);
	if (!strcmp(line, "probe"))
		cmd_probe(rest);
	else if (!strcmp(line, "watch")) {
		char *list = strchr(rest, ' ');
		if (list)
			*list++ = 0;
		cmd_watch(rest, list);
	} else if (!strcmp(line, "nft")) {
		char *file = strchr(rest, ' ');
		if (!file) {
			emit("{\"ev\":\"error\",\"message\":\"nft NETNS_PATH RULES_FILE\"}");
			return 0;
		}
		*file++ = 0;
		cmd_nft(rest, file);
	} else if (!strcmp(line, "arm") || !strcmp(line, "disarm")) {
		uint32_t k = 0;
		struct tr_config c;
		if (bpf_map__lookup_elem(skel->maps.cfg, &k, sizeof k, &c, sizeof c, 0) == 0) {
			c.active = line[0] == 'a';
			bpf_map__update_elem(skel->maps.cfg, &k, sizeof k, &c, sizeof c, BPF_ANY);
		}
		emit("{\"ev\":\"%s\",\"ts\":%llu}", line[0] == 'a' ? "armed" : "disarmed", (unsigned long long)now_ns());
	} else if (!strcmp(line, "send")) {
		char *ms = strchr(rest, ' ');
		if (ms)
			*ms++ = 0;
		cmd_send(rest, ms ? atoi(ms) : 2000);
	} else if (!strcmp(line, "stats"))
		cmd_stats();
	else if (!strcmp(line, "quit"))
		return 1;
	else if (*line)
		emit("{\"ev\":\"error\",\"message\":\"unknown command %s\"}", line);
	return 0;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && getenv("WEFT_TRACE_DEBUG"))
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int main(void)
{
	/* Die with the parent: a killed `weft trace` must not leave this process (and its links) behind. */
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(libbpf_quiet);
	skel = trace_bpf__open_and_load();
	if (!skel) {
		fail("cannot load the trace BPF programs (root, BTF and kernel >= 6.6 needed)", errno);
		return 1;
	}
	struct bpf_link *drop = bpf_program__attach(skel->progs.wtrace_drop);
	if (!drop)
		fail("cannot attach to the kfree_skb tracepoint (drop reasons will be missing)", errno);
	load_drop_reasons();
	ksyms_started = pthread_create(&ksyms_thread, NULL, load_ksyms, NULL) == 0 ? 1 : 2;
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	if (!rb) {
		fail("ring buffer", errno);
		return 1;
	}
	/* the kernel's ids of our programs: anyone can check with bpftool that they are gone afterwards */
	unsigned ids[2] = {0, 0};
	struct bpf_program *progs[2] = {skel->progs.wtrace_tc, skel->progs.wtrace_drop};
	for (int i = 0; i < 2; i++) {
		struct bpf_prog_info info;
		uint32_t len = sizeof info;
		memset(&info, 0, sizeof info);
		if (bpf_obj_get_info_by_fd(bpf_program__fd(progs[i]), &info, &len) == 0)
			ids[i] = info.id;
	}
	emit("{\"ev\":\"ready\",\"clock\":\"CLOCK_MONOTONIC\",\"now\":%llu,\"dropReasons\":%u,\"pid\":%d,\"progIds\":[%u,%u]}",
	     (unsigned long long)now_ns(), nreasons, getpid(), ids[0], ids[1]);

	char line[4096];
	size_t llen = 0;
	for (;;) {
		struct pollfd fds[2 + MAX_PIPES];
		int nf = 0;
		fds[nf++] = (struct pollfd){.fd = 0, .events = POLLIN};
		fds[nf++] = (struct pollfd){.fd = ring_buffer__epoll_fd(rb), .events = POLLIN};
		int map[MAX_PIPES];
		for (int k = 0; k < npipes; k++)
			if (pipes[k].fd >= 0) {
				map[nf - 2] = k;
				fds[nf++] = (struct pollfd){.fd = pipes[k].fd, .events = POLLIN};
			}
		if (poll(fds, (nfds_t)nf, 200) < 0 && errno != EINTR)
			break;
		ring_buffer__consume(rb);
		for (int i = 2; i < nf; i++)
			if (fds[i].revents)
				drain_pipe(map[i - 2]);
		if (fds[0].revents) {
			ssize_t r = read(0, line + llen, sizeof line - llen - 1);
			if (r <= 0)
				break; /* stdin closed: the orchestrator is done (or gone) */
			llen += (size_t)r;
			line[llen] = 0;
			char *start = line, *nl;
			int quit = 0;
			while (!quit && (nl = strchr(start, '\n'))) {
				*nl = 0;
				quit = command(start);
				start = nl + 1;
			}
			if (quit)
				break;
			llen = strlen(start);
			memmove(line, start, llen + 1);
		}
	}
	ring_buffer__consume(rb);
	int n = nlinks;
	close_links();
	emit("{\"ev\":\"bye\",\"links\":%d}", n);
	/* Exit closes every link and nft socket: the kernel detaches and deletes all of it. */
	return 0;
}
