/* SPDX-License-Identifier: MIT */
/*
 * The nvme model's device side: PCI identity and BAR0, the register page,
 * and the library callbacks, all on the server thread.  Controller
 * transitions are handed to the I/O thread (io.c) through the mailbox;
 * resets and DMA unmaps park it first (poller_hold()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "nvme_int.h"

static struct nvme_ctrl *ctl(struct vfk_dev *dev)
{
	return vfk_dev_user(dev);
}

uint64_t nvme_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void nvme_zero_doorbells(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < 1024; i++)
		atomic_store_explicit(&c->db[i], 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

/* Back to the state after a controller reset.  Nothing may be in flight
 * (the I/O thread drained, or is parked). */
void nvme_reset_state(struct nvme_ctrl *c, bool keep_features)
{
	nvme_free_queues(c);
	c->enabled = c->fatal = c->shut = false;
	c->nr_ioq = c->nr_iocq = NVME_MAX_IOQ;
	c->dbbuf_on = false;
	c->dbbuf = c->ei = NULL;
	c->dbbuf_mapped = false;
	c->nr_aer = c->nr_aen = 0;
	c->aen_masked = 0;
	c->page_size = 4096;
	if (!keep_features) {
		c->f_arb = c->f_pm = c->f_tmp_under = c->f_errrec = 0;
		c->f_tmp_over = 343;
		c->f_coalesce = c->f_atomic = c->f_aec = 0;
		memset(c->f_ivc_cd, 0, sizeof(c->f_ivc_cd));
		c->vwc = true;
	}
	if (c->intx_level) {
		vfk_intx_set(c->dev, false);
		c->intx_level = false;
	}
	nvme_zero_doorbells(c);
	atomic_store(&c->csts, 0);
}

/* ---- parking the I/O thread ---- */

/* Return once the I/O thread is parked: no host pointer held, nothing in
 * flight.  `silent`: in-flight results are dropped (a reset), else their
 * commands complete normally first. */
static void poller_hold(struct nvme_ctrl *c, bool silent)
{
	pthread_mutex_lock(&c->lock);
	c->holds++;
	c->silent |= silent;
	atomic_store(&c->attn, true);
	pthread_mutex_unlock(&c->lock);
	nvme_kick(c);
	pthread_mutex_lock(&c->lock);
	while (c->thread_started && !c->parked)
		pthread_cond_wait(&c->cv_parked, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static void poller_release(struct nvme_ctrl *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->holds && --c->holds == 0) {
		c->silent = false;
		pthread_cond_signal(&c->cv_release);
	}
	pthread_mutex_unlock(&c->lock);
}

static void mbox_post(struct nvme_ctrl *c, enum nvme_mbox_op op)
{
	pthread_mutex_lock(&c->lock);
	if (c->mbox_n < sizeof(c->mbox) / sizeof(c->mbox[0])) {
		c->mbox[c->mbox_n++] = (struct nvme_mbox){ .op = op, .cc = c->cc, .aqa = c->aqa,
							   .asq = c->asq, .acq = c->acq };
	}
	atomic_store(&c->attn, true);
	pthread_mutex_unlock(&c->lock);
	nvme_kick(c);
}

/* ---- registers ---- */

/* Messages handled so far; also published for the I/O thread, which may
 * not ask the server itself (its statistics log page reports it). */
static uint64_t msg_count(struct nvme_ctrl *c)
{
	struct vfk_server_stats st = { 0 };
	struct vfk_server *srv = vfk_dev_server(c->dev);

	if (srv)
		vfk_server_get_stats(srv, &st);
	atomic_store_explicit(&c->msgs_seen, st.messages, memory_order_relaxed);
	return st.messages;
}

static uint64_t reg_value(struct nvme_ctrl *c, uint64_t off)
{
	uint32_t intms = atomic_load(&c->intms);

	switch (off) {
	case NVME_REG_CAP:
		return c->cap;
	case NVME_REG_VS:
		return 0x00010400u | ((uint64_t)intms << 32);
	case 0x10: /* INTMC reads the mask too; CC */
		return intms | ((uint64_t)c->cc << 32);
	case 0x18: /* CSTS at 0x1c */
		return (uint64_t)atomic_load(&c->csts) << 32;
	case 0x20: /* NSSR; AQA */
		return (uint64_t)c->aqa << 32;
	case NVME_REG_ASQ:
		return c->asq;
	case NVME_REG_ACQ:
		return c->acq;
	case NVME_REG_VFK_MAGIC:
		return NVME_VFK_MAGIC;
	case NVME_REG_VFK_MSGS:
		return msg_count(c);
	case NVME_REG_VFK_CMDS:
		return atomic_load(&c->cmds_done);
	}
	return 0;
}

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		    uint32_t count)
{
	struct nvme_ctrl *c = ctl(dev);
	uint8_t *b = buf;

	if (bar != 0)
		return -EINVAL;
	msg_count(c);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		if (o >= NVME_DB_OFFSET && o < NVME_DB_OFFSET + 4096) {
			uint32_t v = atomic_load(&c->db[(o - NVME_DB_OFFSET) / 4]);

			b[i] = (uint8_t)(v >> (8 * (o & 3)));
		} else {
			b[i] = (uint8_t)(reg_value(c, o & ~7ull) >> (8 * (o & 7)));
		}
	}
	return 0;
}

static void cc_write(struct nvme_ctrl *c, uint32_t v)
{
	uint32_t old = c->cc;

	c->cc = v;
	vfk_dev_log(c->dev, VFK_LOG_INFO,
		    "nvme: CC %#x (was %#x); %llu messages, %llu commands so far", v, old,
		    (unsigned long long)msg_count(c),
		    (unsigned long long)atomic_load(&c->cmds_done));
	if (!(old & NVME_CC_EN) && (v & NVME_CC_EN))
		mbox_post(c, MBOX_ENABLE);
	else if ((old & NVME_CC_EN) && !(v & NVME_CC_EN))
		mbox_post(c, MBOX_DISABLE);
	if ((v & NVME_CC_EN) && NVME_CC_SHN(v) && !NVME_CC_SHN(old))
		mbox_post(c, MBOX_SHUTDOWN);
}

static int bar_write(struct vfk_dev *dev, unsigned bar, uint64_t off, const void *buf,
		     uint32_t count)
{
	struct nvme_ctrl *c = ctl(dev);
	const uint8_t *b = buf;

	if (bar != 0)
		return -EINVAL;
	msg_count(c);
	if (off >= NVME_DB_OFFSET && off < NVME_DB_OFFSET + 4096) {
		/* Trapped doorbells (only reached when the page is not
		 * shared memory): store, then wake the I/O thread if it
		 * sleeps.  The store comes first; see sleep_wait(). */
		for (uint32_t i = 0; i < count && off + i < NVME_DB_OFFSET + 4096; i += 4) {
			unsigned idx = (unsigned)((off + i - NVME_DB_OFFSET) / 4);
			uint32_t v = (uint32_t)vfk_reg_merge(atomic_load(&c->db[idx]),
						     NVME_DB_OFFSET + 4ull * idx, 4, off, b, count);

			atomic_store(&c->db[idx], v);
		}
		if (atomic_load(&c->sleeping))
			nvme_kick(c);
		return 0;
	}
	if (vfk_reg_hit(off, count, NVME_REG_INTMS, 4)) {
		atomic_fetch_or(&c->intms, (uint32_t)vfk_reg_merge(0, NVME_REG_INTMS, 4, off, b, count));
		nvme_kick(c);
	}
	if (vfk_reg_hit(off, count, NVME_REG_INTMC, 4)) {
		atomic_fetch_and(&c->intms, ~(uint32_t)vfk_reg_merge(0, NVME_REG_INTMC, 4, off, b, count));
		nvme_kick(c);
	}
	if (vfk_reg_hit(off, count, NVME_REG_AQA, 4))
		c->aqa = (uint32_t)vfk_reg_merge(c->aqa, NVME_REG_AQA, 4, off, b, count) & 0x0fff0fffu;
	if (vfk_reg_hit(off, count, NVME_REG_ASQ, 8))
		c->asq = vfk_reg_merge(c->asq, NVME_REG_ASQ, 8, off, b, count) & ~0xfffull;
	if (vfk_reg_hit(off, count, NVME_REG_ACQ, 8))
		c->acq = vfk_reg_merge(c->acq, NVME_REG_ACQ, 8, off, b, count) & ~0xfffull;
	if (vfk_reg_hit(off, count, NVME_REG_CC, 4))
		cc_write(c, (uint32_t)vfk_reg_merge(c->cc, NVME_REG_CC, 4, off, b, count));
	/* CAP, VS, CSTS, NSSR (no subsystem reset: CAP.NSSRS = 0) and the
	 * rest are read-only. */
	return 0;
}

/* ---- library callbacks ---- */

static void full_reset(struct nvme_ctrl *c)
{
	pthread_mutex_lock(&c->lock);
	c->mbox_n = 0;
	pthread_mutex_unlock(&c->lock);
	c->cc = c->aqa = 0;
	c->asq = c->acq = 0;
	atomic_store(&c->intms, 0);
	nvme_reset_state(c, false);
}

static int reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	struct nvme_ctrl *c = ctl(dev);

	/* Bus mastering is already off: in-flight results go nowhere. */
	poller_hold(c, true);
	full_reset(c);
	atomic_store(&c->bme, vfk_dev_bus_master(dev));
	atomic_store(&c->irq_mode, vfk_irq_active(dev));
	vfk_dev_log(dev, VFK_LOG_INFO, "nvme: controller reset by %s",
		    kind == VFK_RESET_FLR ? "FLR" : kind == VFK_RESET_RELEASE ? "the client leaving"
									  : "DEVICE_RESET");
	poller_release(c);
	return 0;
}

static void config_written(struct vfk_dev *dev, uint32_t offset, uint32_t count)
{
	struct nvme_ctrl *c = ctl(dev);

	msg_count(c);
	if (offset <= PCI_COMMAND + 1 && offset + count > PCI_COMMAND) {
		atomic_store(&c->bme, vfk_dev_bus_master(dev));
		nvme_kick(c);
	}
}

static void irq_changed(struct vfk_dev *dev, unsigned index)
{
	struct nvme_ctrl *c = ctl(dev);

	(void)index;
	msg_count(c);
	atomic_store(&c->irq_mode, vfk_irq_active(dev));
	nvme_kick(c);
}

/*
 * The library takes the window out of its table before calling us, so once
 * the I/O thread has been parked (nothing in flight, no pointer held) and
 * its cached queue pointers dropped, no translation can reach the window
 * again (tests/nvme/test_unmap_order.c holds the library to that order).
 */
static void dma_unmap(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	struct nvme_ctrl *c = ctl(dev);

	(void)w;
	poller_hold(c, false);
	nvme_invalidate_host(c);
	poller_release(c);
}

static int dma_map(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	(void)w;
	nvme_kick(ctl(dev));
	return 0;
}

static void attach(struct vfk_dev *dev)
{
	struct nvme_ctrl *c = ctl(dev);

	atomic_store(&c->bme, vfk_dev_bus_master(dev));
	atomic_store(&c->irq_mode, vfk_irq_active(dev));
}

static void detach(struct vfk_dev *dev)
{
	struct nvme_ctrl *c = ctl(dev);

	/* The client's memory is gone: the controller cannot go on.  Like a
	 * power loss, minus the data, which is in the backing already. */
	poller_hold(c, true);
	if (c->enabled && !c->shut) {
		c->unsafe_shutdowns++;
		vfk_dev_log(dev, VFK_LOG_INFO, "nvme: client left with the controller enabled");
	}
	full_reset(c);
	c->power_cycles++;
	poller_release(c);
}

static const struct vfk_dev_ops nvme_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "nvme",
	.bar_read = bar_read,
	.bar_write = bar_write,
	.config_written = config_written,
	.reset = reset,
	.dma_map = dma_map,
	.dma_unmap = dma_unmap,
	.attach = attach,
	.detach = detach,
	.irq_changed = irq_changed,
};

/* ---- creation ---- */

static void make_serial(struct nvme_ctrl *c, const char *backing)
{
	uint64_t h = 1469598103934665603ull;
	char real[PATH_MAX];

	/* Stable for a backing, unique per memory namespace: two devices
	 * with one serial would look like one subsystem to a host. */
	if (backing && realpath(backing, real)) {
		for (const char *s = real; *s; s++)
			h = (h ^ (uint8_t)*s) * 1099511628211ull;
	} else {
		h ^= nvme_now_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	}
	snprintf(c->serial, sizeof(c->serial), "VFK%016llX", (unsigned long long)h);
}

static void free_ctrl(struct nvme_ctrl *c)
{
	struct nvme_req *r;

	nvme_free_queues(c);
	while ((r = c->free_reqs)) {
		c->free_reqs = r->next;
		free(r);
	}
	if (c->ring_ok)
		io_uring_queue_exit(&c->ring);
	nvme_backing_close(&c->bk);
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	if (c->uring_fd >= 0)
		close(c->uring_fd);
	vfk_shm_put(c->bar0);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cv_release);
	pthread_cond_destroy(&c->cv_parked);
	free(c);
}

int nvme_create(const struct nvme_opts *o, struct vfk_dev **out)
{
	static const struct nvme_opts defaults = { .poll_us = NVME_DEFAULT_POLL_US };
	struct vfk_pci_id id = {
		.vendor = NVME_VFK_VENDOR, .device = NVME_VFK_DEVICE,
		.subsys_vendor = NVME_VFK_VENDOR, .subsys_device = 0x0001,
		.class_code = NVME_VFK_CLASS, .revision = 1,
	};
	struct vfk_range trapped[2] = { { 0, NVME_DB_OFFSET }, { NVME_DB_OFFSET, 4096 } };
	struct nvme_ctrl *c;
	struct vfk_dev *dev = NULL;
	int rc;

	if (!o)
		o = &defaults;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kick_fd = c->uring_fd = -1;
	c->bk.fd_direct = c->bk.fd_buf = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cv_release, NULL);
	pthread_cond_init(&c->cv_parked, NULL);
	c->opts = *o;
	c->start_ns = nvme_now_ns();
	c->power_cycles = 1;
	make_serial(c, o->backing);

	rc = nvme_backing_open(&c->bk, o->backing, o->ram_size);
	if (rc)
		goto fail;
	c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->kick_fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (!c->bk.ram) {
		rc = io_uring_queue_init(NVME_RING, &c->ring, 0);
		if (rc)
			goto fail;
		c->ring_ok = true;
		c->uring_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->uring_fd < 0) {
			rc = -errno;
			goto fail;
		}
		rc = io_uring_register_eventfd(&c->ring, c->uring_fd);
		if (rc)
			goto fail;
	}
	rc = vfk_shm_create(NVME_BAR0_SIZE, "nvme-bar0", &c->bar0);
	if (rc)
		goto fail;
	/* The doorbell page can be mapped only with 4 KiB host pages; with
	 * larger ones (or on request) doorbells come by message. */
	c->db_trapped = o->trap_doorbells || (o->page_size && o->page_size > 4096);
	c->db = c->db_trapped ? c->db_trap
			      : (_Atomic uint32_t *)((uint8_t *)vfk_shm_ptr(c->bar0) + NVME_DB_OFFSET);
	c->cap = NVME_MQES | (1ull << 16) /* CQR */ | (20ull << 24) /* TO: 10 s */ |
		 (1ull << 37) /* CSS: NVM */ | (0ull << 48) /* MPSMIN 4K */ |
		 (4ull << 52) /* MPSMAX 64K */;
	nvme_reset_state(c, false);

	rc = vfk_dev_create(&nvme_ops, c, &dev);
	if (rc)
		goto fail;
	if (o->page_size && (rc = vfk_dev_set_page_size(dev, o->page_size)))
		goto fail_dev;
	if ((rc = vfk_dev_set_policy(dev, &o->policy)) || (rc = vfk_pci_set_id(dev, &id)))
		goto fail_dev;
	rc = vfk_dev_set_bar(dev, 0, &(struct vfk_bar_desc){
		.size = NVME_BAR0_SIZE, .flags = VFK_BAR_MEM64, .shm = c->bar0,
		.trapped = trapped, .nr_trapped = c->db_trapped ? 2 : 1 });
	if (rc)
		goto fail_dev;
	if ((rc = vfk_pci_add_pm(dev)) ||
	    (rc = vfk_pci_add_msix(dev, NVME_NR_VECTORS, 0, NVME_MSIX_TABLE, 0, NVME_MSIX_PBA)) ||
	    (rc = vfk_pci_add_express(dev, VFK_PCIE_ENDPOINT, VFK_PCIE_FLR)) ||
	    (rc = vfk_dev_realize(dev)))
		goto fail_dev;
	c->dev = dev;
	rc = pthread_create(&c->thread, NULL, nvme_poller_main, c);
	if (rc) {
		rc = -rc;
		goto fail_dev;
	}
	c->thread_started = true;
	*out = dev;
	return 0;
fail_dev:
	vfk_dev_destroy(dev);
fail:
	free_ctrl(c);
	return rc;
}

void nvme_destroy(struct vfk_dev *dev)
{
	struct nvme_ctrl *c;

	if (!dev)
		return;
	c = ctl(dev);
	if (c->thread_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		atomic_store(&c->attn, true);
		pthread_cond_signal(&c->cv_release);
		pthread_mutex_unlock(&c->lock);
		nvme_kick(c);
		pthread_join(c->thread, NULL);
	}
	vfk_dev_destroy(dev);
	free_ctrl(c);
}
