/* SPDX-License-Identifier: MIT */
/*
 * vfiokit benchmark driver.  One run measures everything, in rounds: each
 * round takes every round-trip figure (floors and vfiokit, in rotating
 * order), memcpy, the DMA_MAP rates and the translation costs once.  A
 * figure is reported as the median of its rounds, and every ratio to a
 * floor is taken within a round and then the median taken, so that a
 * neighbour's burst on a shared machine moves both sides of a ratio.
 *
 * Every server is a forked child of this process, serving through the
 * library over a socketpair: the same code path as `vfiokit serve`, with
 * the allocation counters of this binary (see sys.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "dma_test.h"
#include "driver.h"
#include "vfk_bench.h"
#include "xdev.h"

static bool quiet;

/* Pin process `pid` (0: this one) to `cpu`. */
static int pin_to(pid_t pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(pid, sizeof(set), &set) < 0 ? -errno : 0;
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* ---- statistics ---- */

void series_add(struct series *s, double x)
{
	if (s->n < MAX_ROUNDS)
		s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double series_median(const struct series *s)
{
	double v[MAX_ROUNDS];

	if (!s->n)
		return 0;
	memcpy(v, s->v, s->n * sizeof(double));
	qsort(v, s->n, sizeof(double), cmp_double);
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

double series_min(const struct series *s)
{
	double m = s->n ? s->v[0] : 0;

	for (unsigned i = 1; i < s->n; i++)
		if (s->v[i] < m)
			m = s->v[i];
	return m;
}

double series_max(const struct series *s)
{
	double m = s->n ? s->v[0] : 0;

	for (unsigned i = 1; i < s->n; i++)
		if (s->v[i] > m)
			m = s->v[i];
	return m;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void sort_u64(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

uint64_t pct_sorted(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return 0;
	/* nearest rank: the smallest value with at least p% at or below it */
	rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* ---- children ---- */

#define MAX_CHILDREN 8
static struct child *children[MAX_CHILDREN];

static int serve_model(enum srv_kind kind, int fd)
{
	struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION };
	struct vfk_server *srv = NULL;
	struct vfk_dev *dev = NULL;
	int rc;

	rc = kind == SRV_XDEV ? xdev_create(&dev) : dma_test_create(NULL, &dev);
	if (rc)
		return rc;
	rc = vfk_server_create(dev, &so, &srv);
	if (!rc)
		rc = vfk_server_adopt_fd(srv, fd);
	if (!rc)
		rc = vfk_server_run(srv);
	vfk_server_destroy(srv);
	if (kind == SRV_XDEV)
		xdev_destroy(dev);
	else
		dma_test_destroy(dev);
	return rc;
}

int child_start(struct child *c, enum srv_kind kind, unsigned slot)
{
	int sv[2], rc = 0;
	unsigned i;

	for (i = 0; i < MAX_CHILDREN && children[i]; i++)
		;
	if (i == MAX_CHILDREN)
		return -ENOSPC;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		rc = -errno;
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (c->pid == 0) {
		/* Only our own end stays open: another server holding a copy
		 * of a client end would never see that client leave. */
		close(sv[0]);
		if (sv[1] > 3)
			close_range(3, (unsigned)sv[1] - 1, 0);
		close_range((unsigned)sv[1] + 1, ~0u, 0);
		signal(SIGPIPE, SIG_IGN);
		alloc_use_slot(slot);
		switch (kind) {
		case SRV_FLOOR:
			rc = floor_serve(sv[1]);
			break;
		case SRV_FLOOR_EPOLL:
			rc = floor_serve_epoll(sv[1]);
			break;
		default:
			rc = serve_model(kind, sv[1]);
			break;
		}
		_exit(rc ? 1 : 0);
	}
	close(sv[1]);
	c->fd = sv[0];
	c->kind = kind;
	c->slot = slot;
	children[i] = c;
	return 0;
}

int child_stop(struct child *c)
{
	int st = 0;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->pid > 0 && waitpid(c->pid, &st, 0) < 0)
		st = 0xff00;
	c->pid = 0;
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == c)
			children[i] = NULL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void children_kill(void)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++) {
		struct child *c = children[i];

		if (!c || c->pid <= 0)
			continue;
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
		children[i] = NULL;
	}
}

/* ---- the measurements ---- */

struct env {
	struct results *r;
	struct child floor, floor_ep, srv_lib, srv_raw, srv_x;
	struct vfk_device *dev_lib, *dev_x;
	struct dma_env dma;
	uint64_t *samples;   /* max(iters, maps) */
	uint8_t *cpy_src, *cpy_dst;
};

const char *const map_key[MAP_KINDS] = {
	[MAP_SYNC_SMALL] = "sync_small",
	[MAP_SYNC_LARGE] = "sync_large",
	[MAP_PIPE_SMALL] = "pipelined_small",
	[MAP_PIPE_LARGE] = "pipelined_large",
};

const char *const xl_key[XL_KINDS] = {
	[XL_LOOP] = "loop_only",
	[XL_TR_RANDOM] = "translate_random",
	[XL_TR_SEQWIN] = "translate_seq_window",
	[XL_TR_SEQ64] = "translate_seq_64b",
	[XL_RD_RANDOM] = "dma_read8_random",
	[XL_RD_SEQWIN] = "dma_read8_seq_window",
	[XL_RD_SEQ64] = "dma_read8_seq_64b",
};

const char *const xl_label[XL_KINDS] = {
	[XL_LOOP] = "timing loop alone (included below)",
	[XL_TR_RANDOM] = "vfk_dma_translate, random window",
	[XL_TR_SEQWIN] = "vfk_dma_translate, next window each time",
	[XL_TR_SEQ64] = "vfk_dma_translate, sequential 64 B steps",
	[XL_RD_RANDOM] = "vfk_dma_read 8 B, random window",
	[XL_RD_SEQWIN] = "vfk_dma_read 8 B, next window each time",
	[XL_RD_SEQ64] = "vfk_dma_read 8 B, sequential 64 B steps",
};

static const struct {
	unsigned op, pattern;
} xl_mode[XL_KINDS] = {
	[XL_LOOP] = { XDEV_OP_LOOP, XDEV_PAT_RANDOM },
	[XL_TR_RANDOM] = { XDEV_OP_TRANSLATE, XDEV_PAT_RANDOM },
	[XL_TR_SEQWIN] = { XDEV_OP_TRANSLATE, XDEV_PAT_SEQWIN },
	[XL_TR_SEQ64] = { XDEV_OP_TRANSLATE, XDEV_PAT_SEQ64 },
	[XL_RD_RANDOM] = { XDEV_OP_READ8, XDEV_PAT_RANDOM },
	[XL_RD_SEQWIN] = { XDEV_OP_READ8, XDEV_PAT_SEQWIN },
	[XL_RD_SEQ64] = { XDEV_OP_READ8, XDEV_PAT_SEQ64 },
};

static int open_lib(struct child *c, struct vfk_device **dev)
{
	/* The translation runs inside a register write: allow it time. */
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION,
				      .timeout_ms = 120000 };
	int rc = vfk_device_open_fd(c->fd, &co, dev);

	if (rc)
		return rc;
	c->fd = -1; /* the handle owns it now */
	return dma_test_enable(*dev);
}

static _Noreturn void fail(const char *what, int rc)
{
	fprintf(stderr, "vfiokit-bench: %s: %s\n", what, vfk_strerror(rc));
	children_kill();
	exit(1);
}

#define RTT_CHUNK 500u

/*
 * One round of every round-trip kind.  The kinds take turns in chunks of
 * RTT_CHUNK round trips rather than one after the other, so that a burst
 * of load from a neighbour lands on all of them alike and the ratios of the
 * round stay meaningful.
 */
const char *const pl_key[PL_KINDS] = {
	[PL_SAME] = "same_cpu",
	[PL_SPLIT] = "two_cpus",
};

const char *const pl_label[PL_KINDS] = {
	[PL_SAME] = "client and server on one CPU",
	[PL_SPLIT] = "client and server on two CPUs",
};

/* Move the round-trip servers for placement `pl` (we stay on cpu_a). */
static void place(struct env *e, enum placement pl)
{
	int cpu = pl == PL_SPLIT ? e->r->cpu_b : e->r->cpu_a;
	struct child *c[] = { &e->floor, &e->floor_ep, &e->srv_lib, &e->srv_raw };
	int rc;

	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if ((rc = pin_to(c[i]->pid, cpu)))
			fail("setting CPU affinity", rc);
	/* let the moved processes settle on their CPU before timing */
	usleep(2000);
}

static void rtt_round(struct env *e, unsigned round, enum placement pl)
{
	struct results *r = e->r;
	struct rtt_stats *st = &r->rtt[pl];
	struct rtt_ctx ctx[RTT_KINDS];
	struct child *srv[RTT_KINDS];
	struct alloc_counts s0[RTT_KINDS], s1, c0, c1;
	uint64_t p50[RTT_KINDS], p99[RTT_KINDS], sum;
	unsigned done = 0;
	int rc;

	for (unsigned k = 0; k < RTT_KINDS; k++) {
		switch (k) {
		case RTT_FLOOR:
		case RTT_FLOOR_CPOLL:
			srv[k] = &e->floor;
			break;
		case RTT_FLOOR_SEPOLL:
			srv[k] = &e->floor_ep;
			break;
		case RTT_RAW:
			srv[k] = &e->srv_raw;
			break;
		default:
			srv[k] = &e->srv_lib;
			break;
		}
		ctx[k] = (struct rtt_ctx){ .fd = srv[k]->fd, .dev = e->dev_lib, .id = 100 };
		alloc_read(srv[k]->slot, &s0[k]);
		rc = rtt_measure(rtt_client_fn(k), &ctx[k], r->warm, e->samples);
		if (rc)
			fail(rtt_key[k], rc);
	}
	while (done < r->iters) {
		unsigned n = r->iters - done < RTT_CHUNK ? r->iters - done : RTT_CHUNK;

		for (unsigned j = 0; j < RTT_KINDS; j++) {
			/* rotate: no kind always follows the same one */
			unsigned k = (j + round + done / RTT_CHUNK) % RTT_KINDS;

			alloc_read(ALLOC_SLOT_BENCH, &c0);
			rc = rtt_measure(rtt_client_fn(k), &ctx[k], n,
					 e->samples + (size_t)k * r->iters + done);
			alloc_read(ALLOC_SLOT_BENCH, &c1);
			if (rc)
				fail(rtt_key[k], rc);
			r->rtt_alloc_cli[k] += alloc_delta(&c0, &c1);
		}
		done += n;
	}
	/* Whatever a server does after its last reply is done by now: each
	 * server's count covers every request of the round, warm-up included. */
	usleep(2000);
	for (unsigned k = 0; k < RTT_KINDS; k++) {
		alloc_read(srv[k]->slot, &s1);
		r->rtt_alloc_srv[k] += alloc_delta(&s0[k], &s1);
	}
	for (unsigned k = 0; k < RTT_KINDS; k++) {
		uint64_t *v = e->samples + (size_t)k * r->iters;

		sum = 0;
		for (unsigned i = 0; i < r->iters; i++)
			sum += v[i];
		sort_u64(v, r->iters);
		p50[k] = pct_sorted(v, r->iters, 50);
		p99[k] = pct_sorted(v, r->iters, 99);
		r->bad_replies += ctx[k].bad;
		r->rtt_requests[k] += r->warm + r->iters;
		series_add(&st->p50[k], (double)p50[k]);
		series_add(&st->p99[k], (double)p99[k]);
		series_add(&st->mean[k], (double)sum / r->iters);
	}
	for (unsigned k = 0; k < RTT_KINDS; k++) {
		series_add(&st->ratio_p50[k], (double)p50[k] / (double)p50[RTT_FLOOR]);
		series_add(&st->ratio_p99[k], (double)p99[k] / (double)p99[RTT_FLOOR]);
	}
}

static void memcpy_round(struct env *e, unsigned reps4k)
{
	/* Through a pointer: the copy the library gets is libc's, not one the
	 * compiler specialised for this call site. */
	static void *(*volatile cpy)(void *, const void *, size_t) = memcpy;
	static const size_t len[2] = { 4096, 65536 };

	for (unsigned i = 0; i < 2; i++) {
		unsigned reps = i ? reps4k / 16 + 1 : reps4k;
		uint64_t t0;

		for (unsigned k = 0; k < 64; k++)
			cpy(e->cpy_dst, e->cpy_src, len[i]);
		t0 = now_ns();
		for (unsigned k = 0; k < reps; k++) {
			cpy(e->cpy_dst, e->cpy_src, len[i]);
			__asm__ volatile("" : : : "memory");
		}
		series_add(&e->r->memcpy_ns[i], (double)(now_ns() - t0) / reps);
	}
}


static void map_sync_one(struct env *e, enum map_kind k, unsigned n)
{
	struct results *r = e->r;
	double total;
	int rc = map_sync(e->dev_x, &e->dma, n, e->samples, &total);

	if (rc)
		fail("DMA_MAP (vfk_device_dma_map)", rc);
	sort_u64(e->samples, n);
	series_add(&r->map_rate[k], n * 1e9 / total);
	series_add(&r->map_us[k], total / n / 1000);
	series_add(&r->map_p50_us[k], pct_sorted(e->samples, n, 50) / 1000.0);
	series_add(&r->map_p99_us[k], pct_sorted(e->samples, n, 99) / 1000.0);
	r->map_requests += n;
}

static void unmap_all_lib(struct env *e, enum map_kind k)
{
	uint64_t t0 = now_ns();
	int rc = vfk_device_dma_unmap_all(e->dev_x);

	if (rc)
		fail("DMA_UNMAP_ALL", rc);
	series_add(&e->r->unmap_ms[k], (now_ns() - t0) / 1e6);
}

static void map_pipe_one(struct env *e, enum map_kind k, unsigned n)
{
	struct results *r = e->r;
	double total, un;
	int rc = map_pipelined(e->srv_raw.fd, &e->dma, n, r->pipe_window, &total);

	if (rc)
		fail("DMA_MAP (pipelined)", rc);
	series_add(&r->map_rate[k], n * 1e9 / total);
	series_add(&r->map_us[k], total / n / 1000);
	rc = unmap_all_raw(e->srv_raw.fd, &un);
	if (rc)
		fail("DMA_UNMAP_ALL (raw)", rc);
	series_add(&r->unmap_ms[k], un / 1e6);
}

static void dma_round(struct env *e)
{
	struct results *r = e->r;
	struct alloc_counts a0, a1;

	alloc_read(e->srv_x.slot, &a0);
	map_sync_one(e, MAP_SYNC_SMALL, r->small_maps);
	alloc_read(e->srv_x.slot, &a1);
	r->map_alloc_srv += alloc_delta(&a0, &a1);
	unmap_all_lib(e, MAP_SYNC_SMALL);

	alloc_read(e->srv_x.slot, &a0);
	map_sync_one(e, MAP_SYNC_LARGE, r->large_maps);
	alloc_read(e->srv_x.slot, &a1);
	r->map_alloc_srv += alloc_delta(&a0, &a1);

	/* Translation against the large table. */
	alloc_read(e->srv_x.slot, &a0);
	for (unsigned k = 0; k < XL_KINDS; k++) {
		uint64_t ps;
		uint32_t errors;
		int rc = xlate_run(e->dev_x, r->large_maps, r->xlate_iters, xl_mode[k].op,
				   xl_mode[k].pattern, &ps, &errors);

		if (rc)
			fail("translation run", rc);
		r->xl_errors += errors;
		series_add(&r->xl_ns[k], ps / 1000.0);
	}
	alloc_read(e->srv_x.slot, &a1);
	r->xl_alloc_srv += alloc_delta(&a0, &a1);
	unmap_all_lib(e, MAP_SYNC_LARGE);

	map_pipe_one(e, MAP_PIPE_SMALL, r->small_maps);
	map_pipe_one(e, MAP_PIPE_LARGE, r->large_maps);
}

/* strace phase: what the server (and the client) do per request. */
static void syscall_phase(struct env *e)
{
	struct results *r = e->r;
	struct strace_run st_srv = { 0 }, st_cli = { 0 };
	struct rtt_ctx c = { .id = 100 };
	unsigned n = r->sc_requests;
	int rc;

	r->sc_floor.requests = r->sc_srv.requests = r->sc_cli.requests = n;
	r->sc_map.requests = r->sc_maps;
	if (!strace_available()) {
		static const char none[] = "strace not found";

		snprintf(r->sc_floor.why, sizeof(r->sc_floor.why), none);
		snprintf(r->sc_srv.why, sizeof(r->sc_srv.why), none);
		snprintf(r->sc_cli.why, sizeof(r->sc_cli.why), none);
		snprintf(r->sc_map.why, sizeof(r->sc_map.why), none);
		return;
	}

	/* The method on a server whose calls are known: read + write. */
	progress("  strace: floor A server\n");
	if (strace_start(&st_srv, e->floor.pid, r->sc_floor.why, sizeof(r->sc_floor.why)) == 0) {
		c.fd = e->floor.fd;
		for (unsigned i = 0; i < n; i++)
			if ((rc = rtt_client_fn(RTT_FLOOR)(&c)))
				fail("floor under strace", rc);
		strace_finish(&st_srv, &r->sc_floor);
	}

	progress("  strace: REGION_READ server and client\n");
	if (strace_start(&st_srv, e->srv_lib.pid, r->sc_srv.why, sizeof(r->sc_srv.why)) == 0) {
		if (strace_start(&st_cli, getpid(), r->sc_cli.why, sizeof(r->sc_cli.why)))
			st_cli.pid = 0;
		c.dev = e->dev_lib;
		for (unsigned i = 0; i < n; i++)
			if ((rc = rtt_client_fn(RTT_LIB)(&c)))
				fail("REGION_READ under strace", rc);
		if (st_cli.pid)
			strace_finish(&st_cli, &r->sc_cli);
		strace_finish(&st_srv, &r->sc_srv);
	}

	progress("  strace: DMA_MAP server\n");
	if (strace_start(&st_srv, e->srv_x.pid, r->sc_map.why, sizeof(r->sc_map.why)) == 0) {
		double total;

		rc = map_sync(e->dev_x, &e->dma, r->sc_maps, e->samples, &total);
		strace_finish(&st_srv, &r->sc_map);
		if (rc)
			fail("DMA_MAP under strace", rc);
		if ((rc = vfk_device_dma_unmap_all(e->dev_x)))
			fail("DMA_UNMAP_ALL", rc);
	}
}

static double timer_cost(void)
{
	uint64_t best = UINT64_MAX;

	for (unsigned k = 0; k < 10; k++) {
		uint64_t t0 = now_ns(), t1;

		for (unsigned i = 0; i < 10000; i++)
			__asm__ volatile("" : : "r"(now_ns()));
		t1 = now_ns();
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best / 10000.0;
}

static void host_info(struct results *r)
{
	struct utsname u;
	FILE *f;
	char line[256];

	r->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (uname(&u) == 0)
		snprintf(r->kernel, sizeof(r->kernel), "%s %s", u.sysname, u.release);
	f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && p) {
			p += 1 + strspn(p + 1, " \t");
			p[strcspn(p, "\n")] = 0;
			snprintf(r->cpu, sizeof(r->cpu), "%s", p);
			break;
		}
	}
	fclose(f);
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options]\n"
		"\n"
		"Measure vfiokit's request path next to raw floors taken in the same run:\n"
		"REGION_READ round trips, memcpy, DMA_MAP rates, DMA translation cost,\n"
		"and the server's system calls and heap allocations per request.\n"
		"Every figure is the median of --rounds rounds.\n"
		"\n"
		"  --rounds N       rounds (default 5, at most %d)\n"
		"  --iters N        timed round trips per kind and round (default 20000)\n"
		"  --maps N         windows in the large DMA_MAP test (default 65535)\n"
		"  --small-maps N   windows in the small one (default 1024)\n"
		"  --xlate-iters N  translations timed per pattern and round (default 1000000)\n"
		"  --strace-requests N  requests counted under strace (default 2000)\n"
		"  --no-strace      skip the system-call count\n"
		"  --placement P    round trips with client and server on the same CPU\n"
		"                   ('same'), on two CPUs ('split') or 'both' (default)\n"
		"  --quick          a short run to check that everything works\n"
		"  --json           print JSON instead of the table\n"
		"  -q, --quiet      no progress on stderr\n",
		prog, MAX_ROUNDS);
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || end == s || v < lo || v > hi)
		return false;
	*out = (unsigned)v;
	return true;
}

int vfk_bench_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "iters", required_argument, NULL, 'i' },
		{ "maps", required_argument, NULL, 'm' },
		{ "small-maps", required_argument, NULL, 's' },
		{ "xlate-iters", required_argument, NULL, 'x' },
		{ "strace-requests", required_argument, NULL, 'S' },
		{ "no-strace", no_argument, NULL, 'N' },
		{ "placement", required_argument, NULL, 'P' },
		{ "quick", no_argument, NULL, 'Q' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	/* argv[0] is "bench" when run as `vfiokit bench` */
	const char *prog = argc < 1 ? "vfiokit-bench" :
			   strcmp(argv[0], "bench") ? argv[0] : "vfiokit bench";
	static struct results res;
	struct results *r = &res;
	struct env e = { .r = r };
	bool json = false, no_strace = false, quick = false;
	unsigned placements = 1u << PL_SAME | 1u << PL_SPLIT;
	cpu_set_t allowed;
	unsigned rounds = 5, iters = 20000, large = 65535, small = 1024;
	unsigned xiters = 1000000, screq = 2000;
	size_t nsamples;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
		bool ok = true;

		switch (c) {
		case 'r':
			ok = parse_uint(optarg, 1, MAX_ROUNDS, &rounds);
			break;
		case 'i':
			ok = parse_uint(optarg, 100, 1000000, &iters);
			break;
		case 'm':
			ok = parse_uint(optarg, 1, 65535, &large);
			break;
		case 's':
			ok = parse_uint(optarg, 1, 65535, &small);
			break;
		case 'x':
			ok = parse_uint(optarg, 1000, 1000000000, &xiters);
			break;
		case 'S':
			ok = parse_uint(optarg, 100, 10000000, &screq);
			break;
		case 'N':
			no_strace = true;
			break;
		case 'P':
			if (!strcmp(optarg, "same"))
				placements = 1u << PL_SAME;
			else if (!strcmp(optarg, "split"))
				placements = 1u << PL_SPLIT;
			else if (!strcmp(optarg, "both"))
				placements = 1u << PL_SAME | 1u << PL_SPLIT;
			else
				ok = false;
			break;
		case 'Q':
			quick = true;
			break;
		case 'j':
			json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(stdout, prog);
			return 0;
		default:
			usage(stderr, prog);
			return 2;
		}
		if (!ok) {
			fprintf(stderr, "%s: value out of range: '%s'\n", prog, optarg);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, prog);
		return 2;
	}
	if (quick) {
		rounds = 3;
		iters = 2000;
		large = 4096;
		small = 256;
		xiters = 100000;
		screq = 300;
	}

	memset(r, 0, sizeof(*r));
	r->rounds = rounds;
	r->iters = iters;
	r->warm = iters / 10 < 1000 ? iters / 10 : 1000;
	r->small_maps = small;
	r->large_maps = large;
	r->pipe_window = 64;
	r->xlate_iters = xiters;
	r->sc_requests = screq;
	r->sc_maps = small;
	host_info(r);
	r->timer_ns = timer_cost();

	signal(SIGPIPE, SIG_IGN);
	/* Everything runs pinned (see enum placement): we, and the servers
	 * forked after this, on the first CPU we may use; the second one takes
	 * the servers for the split round trips. */
	r->cpu_a = r->cpu_b = -1;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		fail("reading CPU affinity", -errno);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (r->cpu_a < 0)
			r->cpu_a = cpu;
		else if (r->cpu_b < 0)
			r->cpu_b = cpu;
	}
	if (r->cpu_b < 0 && (placements & 1u << PL_SPLIT)) {
		if (placements == 1u << PL_SPLIT) {
			fprintf(stderr, "%s: --placement split needs two CPUs\n", prog);
			return 2;
		}
		placements &= ~(1u << PL_SPLIT);
	}
	r->pl_run[PL_SAME] = placements & 1u << PL_SAME;
	r->pl_run[PL_SPLIT] = placements & 1u << PL_SPLIT;
	if ((rc = pin_to(0, r->cpu_a)))
		fail("setting CPU affinity", rc);
	if ((rc = alloc_init()))
		fail("shared counters", rc);
	r->alloc_ok = alloc_counting_works();
	if ((rc = dma_env_init(&e.dma)))
		fail("memfd", rc);
	nsamples = (size_t)iters * RTT_KINDS > large ? (size_t)iters * RTT_KINDS : large;
	if (small > nsamples)
		nsamples = small;
	e.samples = calloc(nsamples, sizeof(uint64_t));
	e.cpy_src = aligned_alloc(64, 65536);
	e.cpy_dst = aligned_alloc(64, 65536);
	if (!e.samples || !e.cpy_src || !e.cpy_dst)
		fail("memory", -ENOMEM);
	memset(e.cpy_src, 0x5a, 65536);
	memset(e.cpy_dst, 0, 65536);

	if ((rc = child_start(&e.floor, SRV_FLOOR, 1)) ||
	    (rc = child_start(&e.floor_ep, SRV_FLOOR_EPOLL, 2)) ||
	    (rc = child_start(&e.srv_lib, SRV_DMA_TEST, 3)) ||
	    (rc = child_start(&e.srv_raw, SRV_DMA_TEST, 4)) ||
	    (rc = child_start(&e.srv_x, SRV_XDEV, 5)))
		fail("starting servers", rc);
	if ((rc = open_lib(&e.srv_lib, &e.dev_lib)))
		fail("connecting to the dma-test server", rc);
	if ((rc = raw_setup(e.srv_raw.fd)))
		fail("raw session with the dma-test server", rc);
	if ((rc = open_lib(&e.srv_x, &e.dev_x)))
		fail("connecting to the translation server", rc);

	for (unsigned round = 0; round < rounds; round++) {
		progress("round %u/%u: round trips", round + 1, rounds);
		/* alternate which placement goes first */
		for (unsigned i = 0; i < PL_KINDS; i++) {
			enum placement pl = (enum placement)((i + round) % PL_KINDS);

			if (!r->pl_run[pl])
				continue;
			place(&e, pl);
			rtt_round(&e, round, pl);
		}
		place(&e, PL_SAME);
		progress(", memcpy");
		memcpy_round(&e, quick ? 2000 : 20000);
		progress(", DMA\n");
		dma_round(&e);
	}
	if (!no_strace) {
		progress("system calls per request\n");
		syscall_phase(&e);
	} else {
		static const char skip[] = "skipped (--no-strace)";

		snprintf(r->sc_floor.why, sizeof(r->sc_floor.why), skip);
		snprintf(r->sc_srv.why, sizeof(r->sc_srv.why), skip);
		snprintf(r->sc_cli.why, sizeof(r->sc_cli.why), skip);
		snprintf(r->sc_map.why, sizeof(r->sc_map.why), skip);
	}

	vfk_device_close(e.dev_lib);
	vfk_device_close(e.dev_x);
	rc = child_stop(&e.floor) | child_stop(&e.floor_ep) | child_stop(&e.srv_lib) |
	     child_stop(&e.srv_raw) | child_stop(&e.srv_x);
	dma_env_fini(&e.dma);
	free(e.samples);
	free(e.cpy_src);
	free(e.cpy_dst);
	if (rc) {
		fprintf(stderr, "vfiokit-bench: a server exited with an error\n");
		return 1;
	}
	if (r->bad_replies || r->xl_errors) {
		fprintf(stderr, "vfiokit-bench: %llu wrong replies, %llu failed translations\n",
			(unsigned long long)r->bad_replies, (unsigned long long)r->xl_errors);
		return 1;
	}
	if (json)
		report_json(r);
	else
		report_table(r);
	return 0;
}
