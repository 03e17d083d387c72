/* SPDX-License-Identifier: MIT */
/* Private declarations shared by the files of the benchmark. */
#ifndef VFK_BENCH_INTERNAL_H
#define VFK_BENCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "vfiokit/vfiokit.h"

#define MAX_ROUNDS 31

/* Sizes of a 4-byte REGION_READ on the wire. */
#define RR_REQ_SIZE 32u /* header + offset/region/count */
#define RR_REP_SIZE 36u /* header + echo + 4 data bytes */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One value per round; reported as the median of the rounds. */
struct series {
	double v[MAX_ROUNDS];
	unsigned n;
};
void series_add(struct series *s, double x);
double series_median(const struct series *s);
double series_min(const struct series *s);
double series_max(const struct series *s);

/* Percentile (nearest rank) of `n` samples, sorted in place. */
void sort_u64(uint64_t *v, size_t n);
uint64_t pct_sorted(const uint64_t *v, size_t n, double p);

/* ---- child processes ---- */

enum srv_kind {
	SRV_FLOOR,       /* blocking read(32)/write(36) */
	SRV_FLOOR_EPOLL, /* epoll_wait + recvmsg + sendmsg, no protocol */
	SRV_DMA_TEST,    /* vfiokit server, dma-test model */
	SRV_XDEV,        /* vfiokit server, the benchmark's translation model */
	SRV_KINDS,
};

/* A server in a forked child, connected to us by a socketpair. */
struct child {
	pid_t pid;
	int fd;          /* our end */
	enum srv_kind kind;
	unsigned slot;   /* its allocation counter slot */
};
int child_start(struct child *c, enum srv_kind kind, unsigned slot);
/* Close our end (the server then finishes) and reap it; exit status. */
int child_stop(struct child *c);
/* Kill every child still running (error paths). */
void children_kill(void);

/* ---- heap allocation counters (sys.c) ---- */

struct alloc_counts {
	uint64_t malloc, calloc, realloc, free, memalign;
};
#define ALLOC_SLOT_BENCH 0 /* the benchmark process (client side) */
#define ALLOC_SLOTS 8
/* Map the shared counter page; before any fork. */
int alloc_init(void);
/* Count in slot `slot` from now on (each child picks its own). */
void alloc_use_slot(unsigned slot);
/* Snapshot of a slot (any process's). */
void alloc_read(unsigned slot, struct alloc_counts *out);
/* Allocations (not frees) between two snapshots. */
uint64_t alloc_delta(const struct alloc_counts *a, const struct alloc_counts *b);
/* Whether this binary was linked with the counting wrappers. */
bool alloc_counting_works(void);

/* ---- system call counts (sys.c) ---- */

#define SC_MAX 24
struct sc_entry {
	char name[32];
	uint64_t calls;
	uint64_t errors;
};
struct sc_result {
	bool ok;
	char why[96];    /* when !ok */
	uint64_t requests;
	unsigned n;
	struct sc_entry e[SC_MAX];
};
struct strace_run {
	pid_t pid;       /* strace itself */
	char out[64];    /* its -o file */
};
/* Attach `strace -c -f` to `target`; returns once attached. */
int strace_start(struct strace_run *s, pid_t target, char *why, size_t whylen);
/* Detach and parse the summary into `r` (requests set by the caller). */
int strace_finish(struct strace_run *s, struct sc_result *r);
bool strace_available(void);

/* ---- round trips (rtt.c) ---- */

enum rtt_kind {
	RTT_FLOOR,        /* floor A */
	RTT_FLOOR_SEPOLL, /* floor A, server epoll_wait+recvmsg+sendmsg */
	RTT_FLOOR_CPOLL,  /* floor A, client write+poll+read */
	RTT_RAW,          /* raw client -> vfiokit server (dma-test) */
	RTT_LIB,          /* vfk_region_read -> vfiokit server (dma-test) */
	RTT_KINDS,
};
extern const char *const rtt_key[RTT_KINDS];
extern const char *const rtt_label[RTT_KINDS];

struct rtt_ctx {
	int fd;                   /* raw kinds */
	struct vfk_device *dev;   /* RTT_LIB */
	uint16_t id;
	uint64_t bad;             /* replies that were not what was expected */
};
typedef int (*rtt_fn)(struct rtt_ctx *c);
rtt_fn rtt_client_fn(enum rtt_kind k);
/* `n` timed round trips; one sample each, in ns. */
int rtt_measure(rtt_fn fn, struct rtt_ctx *c, unsigned n, uint64_t *samples);

/* The floor servers' loops (in the child). */
int floor_serve(int fd);
int floor_serve_epoll(int fd);

/* VERSION and enabling the device over a raw socket. */
int raw_setup(int fd);
/* Exactly `len` bytes, blocking. */
int write_full(int fd, const void *buf, size_t len);
int read_full(int fd, void *buf, size_t len);

/* ---- DMA (dma.c) ---- */

struct map_layout {
	uint64_t base;    /* IOVA of window 0 */
	uint64_t stride;  /* from one window to the next (leaves a gap) */
	uint32_t size;    /* bytes per window */
	uint32_t file_pages; /* windows cycle over this many pages of the memfd */
};
extern const struct map_layout map_layout;

struct dma_env {
	int memfd;
	uint8_t *mem;       /* our mapping of the memfd */
	size_t mem_len;
};
int dma_env_init(struct dma_env *e);
void dma_env_fini(struct dma_env *e);

/* `n` windows with vfk_device_dma_map, one round trip each. */
int map_sync(struct vfk_device *dev, const struct dma_env *e, unsigned n,
	     uint64_t *samples, double *total_ns);
/* `n` windows sent on a raw socket with up to `window` unanswered, as QEMU
 * sends its map burst. */
int map_pipelined(int fd, const struct dma_env *e, unsigned n, unsigned window,
		  double *total_ns);
int unmap_all_raw(int fd, double *ns);

/* ---- the translation model (xdev.c) ---- */

/* Run translations in the server; picoseconds per operation. */
int xlate_run(struct vfk_device *dev, unsigned nwin, unsigned iters,
	      unsigned op, unsigned pattern, uint64_t *ps, uint32_t *errors);

/* ---- results (bench.c fills, report.c prints) ---- */

enum map_kind {
	MAP_SYNC_SMALL,  /* vfk_device_dma_map, one round trip per map */
	MAP_SYNC_LARGE,
	MAP_PIPE_SMALL,  /* raw socket, a window of maps in flight (QEMU) */
	MAP_PIPE_LARGE,
	MAP_KINDS,
};

enum xl_kind {
	XL_LOOP,         /* the timing loop alone */
	XL_TR_RANDOM,    /* vfk_dma_translate */
	XL_TR_SEQWIN,
	XL_TR_SEQ64,
	XL_RD_RANDOM,    /* vfk_dma_read, 8 bytes */
	XL_RD_SEQWIN,
	XL_RD_SEQ64,
	XL_KINDS,
};
extern const char *const map_key[MAP_KINDS];
extern const char *const xl_key[XL_KINDS];
extern const char *const xl_label[XL_KINDS];

/*
 * Where the client and the servers run.  A synchronous round trip costs
 * very different amounts with both ends on one CPU (a context switch) and
 * on two (a cross-CPU wake-up, slow in a VM); left to the scheduler, the
 * floor and a vfiokit server can end up in different placements and their
 * ratio means nothing.  So the round trips are measured in both, each
 * with every server placed alike.
 */
enum placement {
	PL_SAME,  /* everything on one CPU */
	PL_SPLIT, /* the client on one CPU, the servers on another */
	PL_KINDS,
};
extern const char *const pl_key[PL_KINDS];
extern const char *const pl_label[PL_KINDS];

struct rtt_stats {
	struct series p50[RTT_KINDS], p99[RTT_KINDS], mean[RTT_KINDS];
	struct series ratio_p50[RTT_KINDS], ratio_p99[RTT_KINDS];
};

struct results {
	/* what was run */
	unsigned rounds, iters, warm, small_maps, large_maps, pipe_window;
	unsigned xlate_iters, sc_requests, sc_maps;
	long ncpu;
	char kernel[160];
	char cpu[80];
	double timer_ns;          /* cost of one clock reading */
	int cpu_a, cpu_b;         /* this process's CPU; the servers' in PL_SPLIT */
	bool pl_run[PL_KINDS];    /* placements measured */
	bool alloc_ok;            /* the counting wrappers are linked in */

	/* round trips, ns, per placement; ratios are per round, to floor A of
	 * that round and placement */
	struct rtt_stats rtt[PL_KINDS];
	uint64_t rtt_requests[RTT_KINDS];
	uint64_t rtt_alloc_srv[RTT_KINDS], rtt_alloc_cli[RTT_KINDS];
	uint64_t bad_replies;

	/* floor B */
	struct series memcpy_ns[2];

	/* DMA_MAP */
	struct series map_rate[MAP_KINDS];   /* maps per second */
	struct series map_us[MAP_KINDS];     /* mean time per map */
	struct series map_p50_us[MAP_KINDS], map_p99_us[MAP_KINDS]; /* sync only */
	struct series unmap_ms[MAP_KINDS];   /* DMA_UNMAP_ALL after the maps */
	uint64_t map_alloc_srv, map_requests;

	/* translation, ns per operation */
	struct series xl_ns[XL_KINDS];
	uint64_t xl_errors;
	uint64_t xl_alloc_srv;

	/* strace */
	struct sc_result sc_floor, sc_srv, sc_cli, sc_map;
};

void report_table(const struct results *r);
void report_json(const struct results *r);

#endif
