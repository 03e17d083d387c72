/* SPDX-License-Identifier: MIT */
/*
 * A small userspace NVMe driver on the client library, for the tests and
 * the benchmark: it maps BAR0's doorbell page, gives the device a memfd of
 * its own memory (queues and data buffers) by DMA_MAP, enables the
 * controller and creates I/O queue pairs.  Low-level pieces (push an SQE,
 * ring a doorbell, pop a CQE) are exposed so that tests can misbehave on
 * purpose.
 */
#ifndef VFK_NVME_DRV_H
#define VFK_NVME_DRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfiokit/client.h"
#include "vfiokit/proto.h"
#include "nvme_spec.h"

struct nvd_opts {
	unsigned nr_io_queues;  /* I/O queue pairs (default 1; 0 with no_io) */
	unsigned qsize;         /* entries per I/O queue (default 256) */
	unsigned admin_qsize;   /* default 32 */
	bool no_io;             /* enable the controller, create no I/O queue */
	bool irq;               /* MSI-X: an eventfd per CQ, IEN set */
	bool intx;              /* INTx instead (with irq) */
	bool dbbuf;             /* Doorbell Buffer Config, doorbells as Linux */
	bool no_map;            /* doorbells by message even if mappable */
	size_t buf_size;        /* data buffer memory (default 4 MiB) */
	uint64_t iova_base;     /* where the memory goes (default 4 GiB) */
	bool iommu_pages;       /* map the memory as a guest IOMMU does: one
				 * 4 KiB window per page, IOVA-adjacent pages
				 * at non-adjacent offsets of the memfd */
	int timeout_ms;         /* per command (default 5000) */
};

/* One queue pair as the driver sees it. */
struct nvd_queue {
	uint16_t qid;             /* 0: admin */
	uint32_t size;            /* entries of each queue */
	struct nvme_sqe *sq;      /* the rings, in driver memory */
	struct nvme_cqe *cq;
	uint64_t sq_iova, cq_iova; /* ... and where the device sees them */
	uint32_t sq_tail, cq_head; /* next SQE to write, next CQE to read */
	uint8_t phase;            /* phase tag a new CQE at cq_head carries */
};

struct nvd {
	struct vfk_device *dev;   /* the caller's handle */
	struct nvd_opts o;        /* as given, defaults filled in */
	volatile uint8_t *bar0;   /* NULL: doorbells by message */
	int memfd;                /* the driver memory, DMA-mapped at o.iova_base */
	uint8_t *mem;
	size_t mem_size, used;    /* bytes, and bytes nvd_alloc() handed out */
	uint64_t cap;             /* CAP as read at open */
	uint64_t nsze;            /* namespace blocks */
	uint32_t lba_size;        /* bytes per block */
	uint32_t mdts_bytes;      /* largest transfer (from MDTS) */
	uint8_t id_ctrl[4096];    /* Identify Controller data */
	struct nvd_queue aq;      /* admin queues */
	struct nvd_queue ioq[NVME_MAX_IOQ + 1]; /* I/O queues, by qid (0 unused) */
	unsigned nr_ioq;          /* created */
	int efd[NVME_NR_VECTORS]; /* -1 when none */
	volatile uint32_t *dbbuf, *ei; /* shadow doorbells, EventIdx (o.dbbuf) */
	uint64_t dbbuf_iova, ei_iova;
	uint16_t next_cid;        /* nvd_cmd() numbers commands from here */
	uint8_t *buf;             /* data buffer memory */
	uint64_t buf_iova;
	uint64_t *list;           /* a PRP list page for nvd_rw() */
	uint64_t list_iova;
};

/* Access a BAR0 register by message; 0 or -errno. */
int nvd_reg_read32(struct nvd *d, uint32_t off, uint32_t *v);
int nvd_reg_read64(struct nvd *d, uint32_t off, uint64_t *v);
int nvd_reg_write32(struct nvd *d, uint32_t off, uint32_t v);
int nvd_reg_write64(struct nvd *d, uint32_t off, uint64_t v);

/* PCI enable, memory, interrupts, controller enable, Identify, queues. */
int nvd_open(struct vfk_device *dev, const struct nvd_opts *o, struct nvd **out);
/* Frees what nvd_open set up; the device handle stays the caller's. */
void nvd_close(struct nvd *d);

/* Controller enable/disable by the book (CC.EN, wait for CSTS.RDY). */
int nvd_disable(struct nvd *d);
int nvd_enable(struct nvd *d);
/* Normal shutdown notification, waiting for CSTS.SHST = complete. */
int nvd_shutdown(struct nvd *d);
/* Wait until (CSTS & mask) == val. */
int nvd_wait_csts(struct nvd *d, uint32_t mask, uint32_t val, int timeout_ms);

/* Page-aligned memory in the device's reach (its IOVA in *iova), or NULL
 * when the driver memory is used up; lasts until nvd_close(). */
void *nvd_alloc(struct nvd *d, size_t size, uint64_t *iova);

/* Low level: copy an SQE into the queue (no doorbell), ring the SQ tail,
 * take the next CQE if its phase says it is new (no doorbell), ring the
 * CQ head.  nvd_db_write writes any doorbell register. */
void nvd_sq_push(struct nvd *d, struct nvd_queue *q, const struct nvme_sqe *cmd);
void nvd_sq_ring(struct nvd *d, struct nvd_queue *q);
bool nvd_cq_pop(struct nvd *d, struct nvd_queue *q, struct nvme_cqe *out);
void nvd_cq_ring(struct nvd *d, struct nvd_queue *q);
void nvd_db_write(struct nvd *d, unsigned idx, uint32_t v);

/* Submit on queue `q` (0: admin), wait for the completion.  The CID is
 * assigned here.  0 and the CQE in *cqe (NVMe status there), or -errno
 * (-ETIMEDOUT). */
int nvd_cmd(struct nvd *d, unsigned q, struct nvme_sqe *cmd, struct nvme_cqe *cqe);
/* Wait for the next CQE of queue q (returns -ETIMEDOUT). */
int nvd_wait_cqe(struct nvd *d, struct nvd_queue *q, struct nvme_cqe *cqe, int timeout_ms);

/* Read/write `nlb` blocks at `slba` through buf+off (PRPs built in a list
 * page when needed).  Returns the NVMe status (0 = success) or -errno. */
int nvd_rw(struct nvd *d, unsigned q, bool write, uint64_t slba, uint32_t nlb, size_t buf_off,
	   uint32_t cdw12_flags);
/* Flush namespace 1 on queue `q`: the NVMe status or -errno. */
int nvd_flush(struct nvd *d, unsigned q);

/* Build PRP1/PRP2 for [iova, iova+len) of driver memory into cmd, using
 * `list` (a page of driver memory at list_iova) for a PRP list. */
void nvd_build_prp(struct nvd *d, struct nvme_sqe *cmd, uint64_t iova, uint32_t len,
		   uint64_t *list, uint64_t list_iova);

/* Wait for an interrupt on vector `v` (eventfd), timeout in ms. */
int nvd_wait_irq(struct nvd *d, unsigned v, int timeout_ms);

/* Status of a CQE without phase: (SCT << 8) | SC, plus DNR/M bits. */
static inline uint16_t nvd_status(const struct nvme_cqe *e)
{
	return NVME_CQE_STATUS(e);
}

#endif
