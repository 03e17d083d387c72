/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "nvme_drv.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nvd_reg_read32(struct nvd *d, uint32_t off, uint32_t *v)
{
	return vfk_region_read(d->dev, 0, off, v, 4);
}

int nvd_reg_read64(struct nvd *d, uint32_t off, uint64_t *v)
{
	return vfk_region_read(d->dev, 0, off, v, 8);
}

int nvd_reg_write32(struct nvd *d, uint32_t off, uint32_t v)
{
	return vfk_region_write(d->dev, 0, off, &v, 4);
}

int nvd_reg_write64(struct nvd *d, uint32_t off, uint64_t v)
{
	return vfk_region_write(d->dev, 0, off, &v, 8);
}

void *nvd_alloc(struct nvd *d, size_t size, uint64_t *iova)
{
	size_t off = d->used;

	size = (size + 4095) & ~(size_t)4095;
	if (size > d->mem_size - off)
		return NULL;
	d->used += size;
	if (iova)
		*iova = d->o.iova_base + off;
	return d->mem + off;
}

/* ---- doorbells and queues ---- */

static void mmio_db(struct nvd *d, unsigned idx, uint32_t v)
{
	if (d->bar0) {
		atomic_thread_fence(memory_order_seq_cst);
		*(volatile uint32_t *)(d->bar0 + NVME_DB_OFFSET + 4 * idx) = v;
	} else {
		vfk_region_write(d->dev, 0, NVME_DB_OFFSET + 4 * idx, &v, 4);
	}
}

void nvd_db_write(struct nvd *d, unsigned idx, uint32_t v)
{
	mmio_db(d, idx, v);
}

/* As Linux's nvme driver: the shadow first, the register only if the
 * controller's EventIdx asks for it. */
static void ring(struct nvd *d, unsigned qid, unsigned idx, uint32_t v)
{
	if (d->dbbuf && qid) {
		uint16_t old = (uint16_t)d->dbbuf[idx], ei;

		d->dbbuf[idx] = v;
		atomic_thread_fence(memory_order_seq_cst);
		ei = (uint16_t)d->ei[idx];
		if (!((uint16_t)(v - ei - 1) < (uint16_t)(v - old)))
			return;
	}
	mmio_db(d, idx, v);
}

void nvd_sq_push(struct nvd *d, struct nvd_queue *q, const struct nvme_sqe *cmd)
{
	(void)d;
	memcpy(&q->sq[q->sq_tail], cmd, sizeof(*cmd));
	if (++q->sq_tail == q->size)
		q->sq_tail = 0;
}

void nvd_sq_ring(struct nvd *d, struct nvd_queue *q)
{
	atomic_thread_fence(memory_order_release);
	ring(d, q->qid, 2u * q->qid, q->sq_tail);
}

bool nvd_cq_pop(struct nvd *d, struct nvd_queue *q, struct nvme_cqe *out)
{
	volatile struct nvme_cqe *e = &q->cq[q->cq_head];
	uint16_t st = e->status;

	(void)d;
	if ((st & 1) != q->phase)
		return false;
	atomic_thread_fence(memory_order_acquire);
	memcpy(out, (const void *)e, sizeof(*out));
	if (++q->cq_head == q->size) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	return true;
}

void nvd_cq_ring(struct nvd *d, struct nvd_queue *q)
{
	ring(d, q->qid, 2u * q->qid + 1, q->cq_head);
}

int nvd_wait_cqe(struct nvd *d, struct nvd_queue *q, struct nvme_cqe *cqe, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	unsigned spins = 0;

	while (!nvd_cq_pop(d, q, cqe)) {
		if (++spins % 1024 == 0) {
			if (now_ms() > deadline)
				return -ETIMEDOUT;
			sched_yield();
		}
	}
	return 0;
}

static struct nvd_queue *queue(struct nvd *d, unsigned q)
{
	return q == 0 ? &d->aq : &d->ioq[q];
}

int nvd_cmd(struct nvd *d, unsigned q, struct nvme_sqe *cmd, struct nvme_cqe *cqe)
{
	struct nvd_queue *nq = queue(d, q);
	int rc;

	cmd->cid = d->next_cid++;
	nvd_sq_push(d, nq, cmd);
	nvd_sq_ring(d, nq);
	rc = nvd_wait_cqe(d, nq, cqe, d->o.timeout_ms);
	if (rc)
		return rc;
	nvd_cq_ring(d, nq);
	if (cqe->cid != cmd->cid)
		return -EPROTO;
	return 0;
}

void nvd_build_prp(struct nvd *d, struct nvme_sqe *cmd, uint64_t iova, uint32_t len,
		   uint64_t *list, uint64_t list_iova)
{
	uint64_t first = 4096 - (iova & 4095);

	(void)d;
	cmd->prp1 = iova;
	cmd->prp2 = 0;
	if (len <= first)
		return;
	len -= (uint32_t)first;
	iova += first;
	if (len <= 4096) {
		cmd->prp2 = iova;
		return;
	}
	for (unsigned i = 0; len; i++) {
		list[i] = iova;
		iova += 4096;
		len = len > 4096 ? len - 4096 : 0;
	}
	cmd->prp2 = list_iova;
}

int nvd_rw(struct nvd *d, unsigned q, bool write, uint64_t slba, uint32_t nlb, size_t buf_off,
	   uint32_t cdw12_flags)
{
	struct nvme_sqe cmd = { 0 };
	struct nvme_cqe cqe;
	int rc;

	cmd.opc = write ? NVME_CMD_WRITE : NVME_CMD_READ;
	cmd.nsid = 1;
	cmd.cdw10 = (uint32_t)slba;
	cmd.cdw11 = (uint32_t)(slba >> 32);
	cmd.cdw12 = (nlb - 1) | cdw12_flags;
	nvd_build_prp(d, &cmd, d->buf_iova + buf_off, nlb * d->lba_size, d->list, d->list_iova);
	rc = nvd_cmd(d, q, &cmd, &cqe);
	return rc ? rc : nvd_status(&cqe);
}

int nvd_flush(struct nvd *d, unsigned q)
{
	struct nvme_sqe cmd = { .opc = NVME_CMD_FLUSH, .nsid = 1 };
	struct nvme_cqe cqe;
	int rc = nvd_cmd(d, q, &cmd, &cqe);

	return rc ? rc : nvd_status(&cqe);
}

int nvd_wait_irq(struct nvd *d, unsigned v, int timeout_ms)
{
	struct pollfd p = { d->efd[v], POLLIN, 0 };
	uint64_t n;

	if (v >= NVME_NR_VECTORS || d->efd[v] < 0)
		return -EINVAL;
	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	return read(d->efd[v], &n, 8) == 8 ? 0 : -EIO;
}

/* ---- controller ---- */

int nvd_wait_csts(struct nvd *d, uint32_t mask, uint32_t val, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		uint32_t csts;
		int rc = nvd_reg_read32(d, NVME_REG_CSTS, &csts);

		if (rc)
			return rc;
		if (csts == 0xffffffffu)
			return -ENODEV;
		if ((csts & mask) == val)
			return 0;
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		usleep(100);
	}
}

int nvd_disable(struct nvd *d)
{
	uint32_t cc;
	int rc = nvd_reg_read32(d, NVME_REG_CC, &cc);

	if (rc)
		return rc;
	if ((rc = nvd_reg_write32(d, NVME_REG_CC, cc & ~NVME_CC_EN)))
		return rc;
	return nvd_wait_csts(d, NVME_CSTS_RDY, 0, 10000);
}

int nvd_enable(struct nvd *d)
{
	int rc;

	d->aq.sq_tail = d->aq.cq_head = 0;
	d->aq.phase = 1;
	memset(d->aq.cq, 0, d->aq.size * sizeof(struct nvme_cqe));
	if ((rc = nvd_reg_write32(d, NVME_REG_AQA, (d->aq.size - 1) | ((d->aq.size - 1) << 16))) ||
	    (rc = nvd_reg_write64(d, NVME_REG_ASQ, d->aq.sq_iova)) ||
	    (rc = nvd_reg_write64(d, NVME_REG_ACQ, d->aq.cq_iova)) ||
	    (rc = nvd_reg_write32(d, NVME_REG_CC, NVME_CC_DEFAULT_IO | NVME_CC_EN)))
		return rc;
	return nvd_wait_csts(d, NVME_CSTS_RDY, NVME_CSTS_RDY, 10000);
}

int nvd_shutdown(struct nvd *d)
{
	uint32_t cc;
	int rc = nvd_reg_read32(d, NVME_REG_CC, &cc);

	if (rc)
		return rc;
	if ((rc = nvd_reg_write32(d, NVME_REG_CC, cc | NVME_CC_SHN_NORMAL)))
		return rc;
	return nvd_wait_csts(d, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_DONE, 10000);
}

static int alloc_queue(struct nvd *d, struct nvd_queue *q, uint16_t qid, uint32_t size)
{
	q->qid = qid;
	q->size = size;
	q->sq = nvd_alloc(d, size * sizeof(struct nvme_sqe), &q->sq_iova);
	q->cq = nvd_alloc(d, size * sizeof(struct nvme_cqe), &q->cq_iova);
	q->sq_tail = q->cq_head = 0;
	q->phase = 1;
	return q->sq && q->cq ? 0 : -ENOMEM;
}

static int admin(struct nvd *d, struct nvme_sqe *cmd)
{
	struct nvme_cqe cqe;
	int rc = nvd_cmd(d, 0, cmd, &cqe);

	if (rc)
		return rc;
	return nvd_status(&cqe) ? -EIO : 0;
}

static int setup_io(struct nvd *d)
{
	unsigned n = d->o.nr_io_queues;
	struct nvme_sqe cmd;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_SET_FEAT;
	cmd.cdw10 = NVME_FEAT_NUM_QUEUES;
	cmd.cdw11 = (n - 1) | ((n - 1) << 16);
	if ((rc = admin(d, &cmd)))
		return rc;
	if (d->o.dbbuf) {
		d->dbbuf = nvd_alloc(d, 4096, &d->dbbuf_iova);
		d->ei = nvd_alloc(d, 4096, &d->ei_iova);
		if (!d->dbbuf || !d->ei)
			return -ENOMEM;
		memset((void *)d->dbbuf, 0, 4096);
		memset((void *)d->ei, 0, 4096);
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = NVME_ADM_DBBUF;
		cmd.prp1 = d->dbbuf_iova;
		cmd.prp2 = d->ei_iova;
		if ((rc = admin(d, &cmd)))
			return rc;
	}
	for (unsigned q = 1; q <= n; q++) {
		struct nvd_queue *nq = &d->ioq[q];
		bool ien = d->o.irq;

		if ((rc = alloc_queue(d, nq, (uint16_t)q, d->o.qsize)))
			return rc;
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = NVME_ADM_CREATE_CQ;
		cmd.prp1 = nq->cq_iova;
		cmd.cdw10 = q | ((d->o.qsize - 1) << 16);
		cmd.cdw11 = 1 | (ien ? 2 : 0) | ((d->o.intx ? 0 : q) << 16);
		if ((rc = admin(d, &cmd)))
			return rc;
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = NVME_ADM_CREATE_SQ;
		cmd.prp1 = nq->sq_iova;
		cmd.cdw10 = q | ((d->o.qsize - 1) << 16);
		cmd.cdw11 = 1 | (q << 16);
		if ((rc = admin(d, &cmd)))
			return rc;
		d->nr_ioq = q;
	}
	return 0;
}

static int identify(struct nvd *d)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .cdw10 = NVME_CNS_CTRL };
	uint64_t iova;
	uint8_t *page = nvd_alloc(d, 4096, &iova);
	uint32_t lbaf;
	int rc;

	if (!page)
		return -ENOMEM;
	cmd.prp1 = iova;
	if ((rc = admin(d, &cmd)))
		return rc;
	memcpy(d->id_ctrl, page, 4096);
	d->mdts_bytes = d->id_ctrl[77] ? 4096u << d->id_ctrl[77] : 1u << 30;
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_IDENTIFY;
	cmd.nsid = 1;
	cmd.cdw10 = NVME_CNS_NS;
	cmd.prp1 = iova;
	if ((rc = admin(d, &cmd)))
		return rc;
	memcpy(&d->nsze, page, 8);
	memcpy(&lbaf, page + 128 + 4 * (page[26] & 0xf), 4);
	d->lba_size = 1u << ((lbaf >> 16) & 0xff);
	return 0;
}

/* Page k of the IOVA range is page iommu_page(k) of the memfd: swapped in
 * pairs, so no two IOVA-adjacent pages are adjacent in the file. */
static size_t iommu_page(size_t k)
{
	return k ^ 1;
}

/*
 * The driver memory, and its DMA mapping.  With iommu_pages the driver's
 * own view is laid out page by page in IOVA order, the way a guest's
 * virtual memory sits over scattered guest-physical pages, and each page
 * is a DMA window of its own (one DMA_MAP each, as QEMU sends for every
 * guest IOMMU mapping).
 */
static int map_memory(struct nvd *d)
{
	const int prot = PROT_READ | PROT_WRITE;
	size_t pages = d->mem_size / 4096;
	struct vfk_dma_mapping m;

	if (!d->o.iommu_pages) {
		d->mem = mmap(NULL, d->mem_size, prot, MAP_SHARED, d->memfd, 0);
		if (d->mem == MAP_FAILED) {
			d->mem = NULL;
			return -errno;
		}
		m = (struct vfk_dma_mapping){ .iova = d->o.iova_base, .size = d->mem_size,
					      .vaddr = d->mem, .fd = d->memfd,
					      .prot = VFK_DMA_READ | VFK_DMA_WRITE };
		return vfk_device_dma_map(d->dev, &m);
	}
	d->mem = mmap(NULL, d->mem_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return -errno;
	}
	for (size_t k = 0; k < pages; k++) {
		off_t off = (off_t)iommu_page(k) * 4096;
		int rc;

		if (mmap(d->mem + k * 4096, 4096, prot, MAP_SHARED | MAP_FIXED, d->memfd, off) ==
		    MAP_FAILED)
			return -errno;
		m = (struct vfk_dma_mapping){ .iova = d->o.iova_base + k * 4096, .size = 4096,
					      .vaddr = d->mem + k * 4096, .fd = d->memfd,
					      .fd_offset = (uint64_t)off,
					      .prot = VFK_DMA_READ | VFK_DMA_WRITE };
		if ((rc = vfk_device_dma_map(d->dev, &m)))
			return rc;
	}
	return 0;
}

int nvd_open(struct vfk_device *dev, const struct nvd_opts *o, struct nvd **out)
{
	struct vfk_region_info ri;
	struct nvd *d;
	uint16_t cmd;
	void *base;
	int rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->dev = dev;
	d->memfd = -1;
	for (unsigned i = 0; i < NVME_NR_VECTORS; i++)
		d->efd[i] = -1;
	d->o = o ? *o : (struct nvd_opts){ 0 };
	if (!d->o.nr_io_queues && !d->o.no_io)
		d->o.nr_io_queues = 1;
	if (d->o.nr_io_queues > NVME_MAX_IOQ)
		d->o.nr_io_queues = NVME_MAX_IOQ;
	if (!d->o.qsize)
		d->o.qsize = 256;
	if (!d->o.admin_qsize)
		d->o.admin_qsize = 32;
	if (!d->o.buf_size)
		d->o.buf_size = 4u << 20;
	if (!d->o.iova_base)
		d->o.iova_base = 1ull << 32;
	if (!d->o.timeout_ms)
		d->o.timeout_ms = 5000;

	if ((rc = vfk_device_config_read(dev, PCI_COMMAND, &cmd, 2)))
		goto fail;
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if ((rc = vfk_device_config_write(dev, PCI_COMMAND, &cmd, 2)))
		goto fail;
	if (!d->o.no_map && vfk_region_get_info(dev, 0, &ri) == 0 &&
	    vfk_region_map(dev, 0, &base) == 0) {
		for (unsigned i = 0; i < ri.nr_areas; i++)
			if (ri.areas[i].offset <= NVME_DB_OFFSET &&
			    ri.areas[i].offset + ri.areas[i].size >= NVME_DB_OFFSET + 4096)
				d->bar0 = base;
	}

	d->mem_size = (2u << 20) + d->o.buf_size +
		      (size_t)(d->o.nr_io_queues + 1) * d->o.qsize * 80 + 65536;
	d->mem_size = (d->mem_size + 8191) & ~(size_t)8191; /* whole page pairs */
	d->memfd = memfd_create("nvd", MFD_CLOEXEC);
	if (d->memfd < 0 || ftruncate(d->memfd, (off_t)d->mem_size) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = map_memory(d)))
		goto fail;
	d->buf = nvd_alloc(d, d->o.buf_size, &d->buf_iova);
	d->list = nvd_alloc(d, 4096, &d->list_iova);

	if (d->o.irq) {
		unsigned nv = d->o.intx ? 1 : d->o.nr_io_queues + 1;

		for (unsigned i = 0; i < nv; i++) {
			d->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (d->efd[i] < 0) {
				rc = -errno;
				goto fail;
			}
		}
		rc = vfk_device_irq_set_eventfds(dev, d->o.intx ? VFK_PCI_INTX : VFK_PCI_MSIX, 0,
						 nv, d->efd);
		if (rc)
			goto fail;
	}

	if ((rc = nvd_reg_read64(d, NVME_REG_CAP, &d->cap)))
		goto fail;
	if ((rc = alloc_queue(d, &d->aq, 0, d->o.admin_qsize)))
		goto fail;
	if ((rc = nvd_disable(d)) || (rc = nvd_enable(d)))
		goto fail;
	if ((rc = identify(d)))
		goto fail;
	if (!d->o.no_io && (rc = setup_io(d)))
		goto fail;
	*out = d;
	return 0;
fail:
	nvd_close(d);
	return rc;
}

void nvd_close(struct nvd *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < NVME_NR_VECTORS; i++)
		if (d->efd[i] >= 0)
			close(d->efd[i]);
	if (d->mem) {
		vfk_device_dma_unmap(d->dev, d->o.iova_base, d->mem_size);
		munmap(d->mem, d->mem_size);
	}
	if (d->memfd >= 0)
		close(d->memfd);
	free(d);
}
