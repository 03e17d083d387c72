/* SPDX-License-Identifier: MIT */
/*
 * Internals of the nvme model.
 *
 * Threads.  The server thread runs the library callbacks: register
 * accesses, config writes, resets, DMA map/unmap, attach/detach.  The I/O
 * thread ("poller", io.c) owns the queues: it runs admin and I/O commands,
 * the io_uring ring and the completion side.  The server thread hands it
 * controller transitions (enable, disable, shutdown) through a small
 * mailbox, and takes the queues over only while the poller is parked
 * (poller_hold()): parked means it holds no host pointer into client
 * memory and has nothing in flight.
 */
#ifndef VFK_NVME_INT_H
#define VFK_NVME_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vfiokit/proto.h"
#include "nvme.h"

#define NVME_MQES 1023u          /* CAP.MQES: 1024-entry queues */
#define NVME_MDTS 7u             /* 2^7 minimum pages = 512 KiB */
#define NVME_MAX_XFER (4096u << NVME_MDTS)
#define NVME_MAX_IOV 272u        /* pieces of one transfer, after merging */
#define NVME_AERL 3u             /* 4 Asynchronous Event Requests */
#define NVME_ERRLOG 64u          /* Error Information log entries */
#define NVME_RING 256u           /* io_uring submission entries */
#define NVME_LBA_SHIFT 9u        /* 512-byte logical blocks */
#define NVME_NQ (NVME_MAX_IOQ + 1)

enum nvme_mbox_op { MBOX_ENABLE = 1, MBOX_DISABLE, MBOX_SHUTDOWN };

struct nvme_mbox {
	enum nvme_mbox_op op;
	uint32_t cc, aqa;
	uint64_t asq, acq;
};

/* The namespace's storage. */
struct nvme_backing {
	bool ram;
	uint8_t *mem;             /* memory namespace */
	int fd_direct;            /* O_DIRECT, or -1 when the backing refuses it */
	int fd_buf;               /* the page-cache path for unaligned requests */
	bool blockdev;
	bool dealloc_zeroes;      /* deallocated blocks read back as zeros */
	uint32_t mem_align;       /* O_DIRECT buffer alignment */
	uint32_t off_align;       /* O_DIRECT offset/length alignment */
	uint64_t size;            /* bytes, a multiple of the block size */
};

/*
 * A queue's memory.  A queue is contiguous in IOVA space (CAP.CQR), but
 * behind a guest IOMMU each of its pages is a DMA window of its own over
 * guest memory that need not be contiguous, so the host side is one
 * pointer per 4 KiB page.  Entries (16 or 64 bytes) never straddle one.
 */
#define NVME_QPAGE 4096u
#define NVME_QPAGES (64u * (NVME_MQES + 1) / NVME_QPAGE)

struct nvme_qmem {
	bool mapped;              /* false: translate again before use */
	uint8_t *page[NVME_QPAGES];
};

struct nvme_cq {
	uint16_t qid;
	uint32_t size;            /* entries */
	uint32_t head, tail;
	uint8_t phase;
	bool ien;
	uint16_t iv;
	uint64_t iova;
	struct nvme_qmem mem;     /* cached translation */
	uint32_t reserved;        /* fetched commands that will post here */
	unsigned nsq;             /* SQs bound to it */
	uint32_t db_last, sh_last; /* doorbell / shadow values last seen */
	bool irq_pending;
	unsigned agg;             /* completions since the last interrupt */
	uint64_t agg_t0;          /* first of them, ns */
};

struct nvme_sq {
	uint16_t qid, cqid;
	uint32_t size;
	uint32_t head, tail;
	uint64_t iova;
	struct nvme_qmem mem;
	uint32_t inflight;        /* fetched, not completed */
	uint32_t db_last, sh_last;
	uint32_t ei_written;      /* EventIdx value we last stored */
	uint8_t prio;
};

/* A command whose completion is not immediate (backing I/O). */
struct nvme_req {
	struct nvme_req *next;
	struct nvme_sq *sq;
	uint16_t cid;
	uint8_t opc;
	uint8_t stage;            /* REQ_* */
	uint16_t status;
	uint32_t dw0;             /* result, for a completion kept back */
	int pending;              /* io_uring operations outstanding */
	bool write, sync_after, buffered;
	int fd;
	uint32_t nsid;
	uint64_t slba;
	uint64_t off, len;        /* bytes still to transfer, and where */
	uint64_t t0;              /* fetch time when sampled, else 0 */
	unsigned niov;
	struct iovec iov[NVME_MAX_IOV];
};

struct nvme_ctrl {
	struct vfk_dev *dev;
	struct nvme_opts opts;
	struct vfk_shm *bar0;
	_Atomic uint32_t *db;     /* 2 * NVME_NQ doorbells, in shm or db_trap */
	_Atomic uint32_t db_trap[1024];
	bool db_trapped;
	char serial[21];
	uint64_t start_ns;

	/* Registers, written on the server thread. */
	uint64_t cap;
	uint32_t cc, aqa;
	uint64_t asq, acq;
	_Atomic uint32_t csts;
	_Atomic uint32_t intms;
	_Atomic bool bme;         /* Bus Master Enable */
	_Atomic int irq_mode;     /* vfk_irq_active() as last seen */

	/* Server thread <-> poller. */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cv_release; /* poller waits while held */
	pthread_cond_t cv_parked;  /* the server waits for the poller */
	_Atomic bool attn;         /* hold, mailbox or stop pending */
	_Atomic bool sleeping;
	unsigned holds;
	bool silent;               /* a hold asked to drop in-flight results */
	bool parked, stop;
	struct nvme_mbox mbox[8];
	unsigned mbox_n;
	int kick_fd;               /* eventfd: wakes a sleeping poller */
	int uring_fd;              /* eventfd: io_uring completions */

	/* Owned by the poller (or by the server thread while parked). */
	bool enabled, fatal, shut;
	uint32_t cc_io;            /* CC as it was at enable */
	uint64_t page_size;        /* CC.MPS */
	struct nvme_sq *sq[NVME_NQ];
	struct nvme_cq *cq[NVME_NQ];
	uint16_t sq_list[NVME_NQ]; /* existing I/O SQ ids, for the loop */
	unsigned nr_sq_list, rr;
	unsigned nr_ioq, nr_iocq;  /* I/O SQs and CQs granted (1-based) */
	bool nq_set;
	bool dbbuf_on;
	uint64_t dbbuf_iova, ei_iova;
	_Atomic uint32_t *dbbuf, *ei;
	bool dbbuf_mapped;
	/* Features. */
	uint32_t f_arb, f_pm, f_tmp_over, f_tmp_under, f_errrec, f_coalesce,
		 f_atomic, f_aec;
	bool f_ivc_cd[NVME_NR_VECTORS];
	bool vwc;                  /* volatile write cache enabled */
	bool dirty;                /* writes since the last flush */
	/* Asynchronous events. */
	uint16_t aer_cid[NVME_AERL + 1];
	unsigned nr_aer;
	uint32_t aen[8];
	unsigned nr_aen;
	uint8_t aen_masked;        /* by event type, until its log is read */
	/* Logs. */
	struct nvme_error_log errlog[NVME_ERRLOG];
	uint64_t err_count;
	uint64_t units_read, units_written, host_reads, host_writes;
	uint64_t media_errors, busy_ns;
	uint64_t unsafe_shutdowns, power_cycles;
	struct nvme_vfk_stats stats;
	unsigned lat_next;
	unsigned sample_ctr;
	bool intx_level;
	/* Requests in flight and their pool. */
	struct nvme_req *free_reqs;
	struct nvme_req *deferred;  /* completed, waiting to be posted */
	unsigned inflight;          /* requests with io_uring work */
	struct io_uring ring;
	bool ring_ok;
	unsigned ring_queued;
	struct nvme_backing bk;
	_Atomic uint64_t cmds_done;
	_Atomic uint64_t msgs_seen;  /* server messages, updated by callbacks */
};

/* ctrl.c */
uint64_t nvme_now_ns(void);
void nvme_reset_state(struct nvme_ctrl *c, bool keep_features);
void nvme_zero_doorbells(struct nvme_ctrl *c);

/* io.c: the I/O thread (doorbells, fetch, completions, interrupts). */
void *nvme_poller_main(void *arg);
void nvme_kick(struct nvme_ctrl *c);
void nvme_complete(struct nvme_ctrl *c, struct nvme_sq *sq, uint16_t cid,
		   uint16_t status, uint32_t dw0);
void nvme_fatal(struct nvme_ctrl *c, const char *why);
void nvme_free_queues(struct nvme_ctrl *c);
void nvme_invalidate_host(struct nvme_ctrl *c);
void nvme_complete_raw(struct nvme_ctrl *c, struct nvme_sq *sq, uint16_t cid,
		       uint16_t status, uint32_t dw0);
/* Forget the completions kept back (bus mastering off) for `sq`, which is
 * being deleted: they would otherwise be posted through a freed queue. */
void nvme_drop_deferred(struct nvme_ctrl *c, struct nvme_sq *sq);
struct nvme_req *nvme_req_get(struct nvme_ctrl *c);
void nvme_req_put(struct nvme_ctrl *c, struct nvme_req *r);
void nvme_post_event(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t lid);
void nvme_deliver_events(struct nvme_ctrl *c);
void *nvme_contig(struct nvme_ctrl *c, uint64_t iova, uint64_t len, uint32_t prot);
/* Translate a queue of `len` bytes at the 4 KiB-aligned `iova` into `m`;
 * false if a byte is not mapped for `prot`, has no host mapping, or a
 * window boundary inside the queue is not 4 KiB-aligned. */
bool nvme_qmem_map(struct nvme_ctrl *c, struct nvme_qmem *m, uint64_t iova, uint64_t len,
		   uint32_t prot);
static inline void *nvme_qmem_at(const struct nvme_qmem *m, size_t off)
{
	return m->page[off / NVME_QPAGE] + off % NVME_QPAGE;
}
void nvme_sq_list_rebuild(struct nvme_ctrl *c);
void nvme_log_error(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
		    uint64_t lba, uint32_t nsid);

/* nvm.c: I/O commands and the io_uring requests behind them. */
void nvme_io_exec(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd);
bool nvme_reap(struct nvme_ctrl *c, bool silent);
/* Wait until nothing is in flight (with `only`: nothing of that SQ);
 * `silent`: drop the results (a reset) instead of completing them. */
void nvme_drain(struct nvme_ctrl *c, bool silent, struct nvme_sq *only);
void nvme_ring_submit(struct nvme_ctrl *c);

/* admin.c */
void nvme_admin_exec(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd);

/* dptr.c: PRP lists and SGLs to iovecs of host pointers. */
uint16_t nvme_map_data(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t len,
		       uint32_t prot, struct iovec *iov, unsigned max, unsigned *niov);
/* Copy a buffer to or from the command's data pointer. */
uint16_t nvme_data_out(struct nvme_ctrl *c, const struct nvme_sqe *cmd, const void *buf,
		       size_t len);
uint16_t nvme_data_in(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf, size_t len);

/* backing.c */
int nvme_backing_open(struct nvme_backing *bk, const char *path, uint64_t ram_size);
void nvme_backing_close(struct nvme_backing *bk);
bool nvme_backing_direct_ok(const struct nvme_backing *bk, uint64_t off, uint64_t len,
			    const struct iovec *iov, unsigned niov);
/* 0, or -EFAULT if the client's memory vanished (vfk_dma_memcpy). */
int nvme_ram_copy(struct nvme_backing *bk, bool write, uint64_t off,
		  const struct iovec *iov, unsigned niov);
int nvme_ram_zero(struct nvme_backing *bk, uint64_t off, uint64_t len);

#define NVME_ERR(sct, sc) (NVME_STATUS((sct), (sc)) | NVME_DNR)

#endif
