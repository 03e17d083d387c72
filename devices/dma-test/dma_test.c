/* SPDX-License-Identifier: MIT */
/*
 * dma-test device model (see dma_test.h for the programming model).
 *
 * The doorbell only records the request and kicks an eventfd; the copy
 * runs from the server loop afterwards.  That keeps the register write's
 * reply fast, and lets the copy use DMA messages for client memory that has
 * no fd (which a register callback may not: the client is waiting).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "dma_test.h"

struct dma_test {
	struct vfk_shm *bar2, *bar4;
	int kick_fd;      /* eventfd: a copy is waiting */
	bool watching;
	uint64_t src, dst;
	uint32_t len, ctrl, status, err, count, scratch, bounced;
	uint32_t io_scratch;
	/* The copy as the doorbell found the registers: the client may
	 * rewrite them while the copy waits in message DMA. */
	struct {
		uint64_t src, dst;
		uint32_t len, ctrl;
		unsigned resets; /* vfk_dev_reset_count() at the doorbell */
	} job;
};

#define CHUNK (64u << 10)

static struct dma_test *dt(struct vfk_dev *dev)
{
	return vfk_dev_user(dev);
}

/* Register file read: accesses of 1-8 bytes at any offset are folded onto
 * the registers they overlap. */
static uint64_t reg_value(struct dma_test *t, uint64_t off)
{
	switch (off) {
	case DMA_TEST_REG_ID:
		return DMA_TEST_MAGIC | ((uint64_t)1 << 32);
	case DMA_TEST_REG_SRC:
		return t->src;
	case DMA_TEST_REG_DST:
		return t->dst;
	case DMA_TEST_REG_LEN:
		return t->len | ((uint64_t)t->ctrl << 32);
	case DMA_TEST_REG_DOORBELL:
		return (uint64_t)t->status << 32;
	case DMA_TEST_REG_ERRNO:
		return t->err | ((uint64_t)t->count << 32);
	case DMA_TEST_REG_BOUNCED:
		return t->bounced;
	case DMA_TEST_REG_SCRATCH:
		return t->scratch;
	}
	return 0;
}

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		    uint32_t count)
{
	struct dma_test *t = dt(dev);
	uint8_t *b = buf;

	if (bar == 5) {
		uint64_t io = t->io_scratch | ((uint64_t)DMA_TEST_MAGIC << 32);

		for (uint32_t i = 0; i < count; i++)
			b[i] = off + i < 8 ? (uint8_t)(io >> (8 * (off + i))) : 0;
		return 0;
	}
	if (bar != 0)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		b[i] = (uint8_t)(reg_value(t, o & ~7ull) >> (8 * (o & 7)));
	}
	return 0;
}

static void kick(struct dma_test *t)
{
	uint64_t one = 1;
	ssize_t n = write(t->kick_fd, &one, sizeof(one));

	(void)n;
}

static int bar_write(struct vfk_dev *dev, unsigned bar, uint64_t off,
		     const void *buf, uint32_t count)
{
	struct dma_test *t = dt(dev);
	const uint8_t *b = buf;

	if (bar == 5) {
		if (off < 4)
			t->io_scratch = (uint32_t)vfk_reg_merge(t->io_scratch, 0, 4, off, b, count);
		return 0;
	}
	if (bar != 0)
		return -EINVAL;
	if (vfk_reg_hit(off, count, DMA_TEST_REG_SRC, 8))
		t->src = vfk_reg_merge(t->src, DMA_TEST_REG_SRC, 8, off, b, count);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_DST, 8))
		t->dst = vfk_reg_merge(t->dst, DMA_TEST_REG_DST, 8, off, b, count);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_LEN, 4))
		t->len = (uint32_t)vfk_reg_merge(t->len, DMA_TEST_REG_LEN, 4, off, b, count);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_CTRL, 4))
		t->ctrl = (uint32_t)vfk_reg_merge(t->ctrl, DMA_TEST_REG_CTRL, 4, off, b, count);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_SCRATCH, 4))
		t->scratch = (uint32_t)vfk_reg_merge(t->scratch, DMA_TEST_REG_SCRATCH, 4, off, b, count);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_INJECT, 4) &&
	    vfk_reg_merge(0, DMA_TEST_REG_INJECT, 4, off, b, count) == DMA_TEST_INJECT_ERR)
		vfk_dev_report_error(dev);
	if (vfk_reg_hit(off, count, DMA_TEST_REG_STATUS, 4)) {
		uint32_t w1c = (uint32_t)vfk_reg_merge(0, DMA_TEST_REG_STATUS, 4, off, b, count);

		t->status &= ~(w1c & (DMA_TEST_STATUS_DONE | DMA_TEST_STATUS_ERROR));
		if (!(t->status & (DMA_TEST_STATUS_DONE | DMA_TEST_STATUS_ERROR)))
			vfk_intx_set(dev, false); /* the level interrupt is acked */
	}
	if (vfk_reg_hit(off, count, DMA_TEST_REG_DOORBELL, 4)) {
		uint32_t v = (uint32_t)vfk_reg_merge(0, DMA_TEST_REG_DOORBELL, 4, off, b, count);

		if ((v & 1) && !(t->status & DMA_TEST_STATUS_BUSY)) {
			t->status = (t->status & ~(DMA_TEST_STATUS_DONE |
						   DMA_TEST_STATUS_ERROR)) |
				    DMA_TEST_STATUS_BUSY;
			t->job.src = t->src;
			t->job.dst = t->dst;
			t->job.len = t->len;
			t->job.ctrl = t->ctrl;
			t->job.resets = vfk_dev_reset_count(dev);
			kick(t);
		}
	}
	return 0;
}

/*
 * The copy, run from the server loop when the doorbell was rung, on the
 * registers latched then.  Its DMA calls may serve the client meanwhile
 * (server.h, "Message DMA and re-entrancy"): a window may go, so both
 * buffers are checked before the engine touches them, and a reset voids
 * the copy, which then signals nothing.
 */
static void run_copy(struct vfk_server *srv, int fd, uint32_t events, void *arg)
{
	struct vfk_dev *dev = arg;
	struct dma_test *t = dt(dev);
	uint64_t v, done = 0;
	uint32_t len = t->job.len;
	int rc = 0;

	(void)srv;
	(void)events;
	if (read(fd, &v, sizeof(v)) != sizeof(v) || !(t->status & DMA_TEST_STATUS_BUSY))
		return;
	if (!vfk_dev_bus_master(dev))
		rc = -EACCES; /* no DMA without Bus Master Enable, as in hardware */
	else if (len > DMA_TEST_MAX_LEN)
		rc = -E2BIG;
	while (!rc && done < len) {
		uint32_t n = len - done < CHUNK ? (uint32_t)(len - done) : CHUNK;
		struct vfk_dma_buf src, dst;

		/* As a driver would with the DMA API: map, let the engine
		 * work on host memory, sync, unmap. */
		rc = vfk_dma_map_buf(dev, t->job.src + done, n, VFK_DMA_TO_DEVICE, &src);
		if (rc)
			break;
		rc = vfk_dma_map_buf(dev, t->job.dst + done, n, VFK_DMA_FROM_DEVICE, &dst);
		if (rc) {
			vfk_dma_unmap_buf(dev, &src);
			break;
		}
		t->bounced += src.bounced + dst.bounced;
		/* Mapping synced for the device already; the second map may
		 * have served an unmap of the first's memory. */
		rc = vfk_dma_buf_check(dev, &src);
		if (!rc)
			rc = vfk_dma_buf_check(dev, &dst);
		if (!rc)
			rc = vfk_dma_memcpy(dst.host, src.host, n); /* the client may shrink it */
		if (!rc) {
			rc = vfk_dma_unmap_buf(dev, &dst); /* syncs for the CPU */
		} else {
			vfk_dma_release_buf(dev, &dst); /* an IOMMU fault: nothing lands */
		}
		vfk_dma_unmap_buf(dev, &src);
		done += n;
		if (vfk_dev_reset_count(dev) != t->job.resets)
			return; /* reset meanwhile: the copy is void */
	}
	if (vfk_dev_reset_count(dev) != t->job.resets)
		return;
	t->status &= ~DMA_TEST_STATUS_BUSY;
	if (rc) {
		t->status |= DMA_TEST_STATUS_ERROR;
		t->err = (uint32_t)-rc;
		vfk_dev_log(dev, VFK_LOG_INFO, "copy of %u bytes failed: %s", t->len,
			    vfk_strerror(rc));
	} else {
		t->status |= DMA_TEST_STATUS_DONE;
		t->count++;
		vfk_dev_log(dev, VFK_LOG_DEBUG, "copied %u bytes %#llx -> %#llx", t->len,
			    (unsigned long long)t->src, (unsigned long long)t->dst);
	}
	if (t->ctrl & DMA_TEST_CTRL_IRQ) {
		int irc = vfk_irq_raise(dev, (t->ctrl >> 8) & 0xff);

		if (irc)
			vfk_dev_log(dev, VFK_LOG_INFO, "no interrupt delivered: %s",
				    vfk_strerror(irc));
	}
}

static void attach(struct vfk_dev *dev)
{
	struct dma_test *t = dt(dev);

	if (!t->watching &&
	    vfk_server_watch(vfk_dev_server(dev), t->kick_fd, EPOLLIN, run_copy, dev) == 0)
		t->watching = true;
}

static int reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	struct dma_test *t = dt(dev);

	(void)kind;
	t->src = t->dst = 0;
	t->len = t->ctrl = t->status = t->err = t->count = t->scratch = 0;
	t->bounced = 0;
	t->io_scratch = 0;
	return 0;
}

static const struct vfk_dev_ops dma_test_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "dma-test",
	.bar_read = bar_read,
	.bar_write = bar_write,
	.reset = reset,
	.attach = attach,
};

int dma_test_create(const struct dma_test_opts *o, struct vfk_dev **out)
{
	static const struct vfk_pci_id id = {
		.vendor = DMA_TEST_VENDOR, .device = DMA_TEST_DEVICE,
		.subsys_vendor = DMA_TEST_VENDOR, .subsys_device = 0x0001,
		.class_code = DMA_TEST_CLASS, .revision = 1,
	};
	struct dma_test_opts defaults = { 0 };
	struct dma_test *t;
	struct vfk_dev *dev = NULL;
	size_t page;
	uint8_t rom[2048];
	uint8_t dsn[8] = { 0x01, 0x00, 0x6b, 0x66, 0x76, 0x00, 0x00, 0x00 };
	static const char vendor_text[] = "vfiokit dma-test";
	int rc;

	if (!o)
		o = &defaults;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->kick_fd < 0) {
		rc = -errno;
		free(t);
		return rc;
	}
	rc = vfk_dev_create(&dma_test_ops, t, &dev);
	if (rc)
		goto fail;
	if (o->page_size && (rc = vfk_dev_set_page_size(dev, o->page_size)))
		goto fail;
	page = o->page_size ? o->page_size : (size_t)sysconf(_SC_PAGESIZE);
	if ((rc = vfk_dev_set_policy(dev, &o->policy)) || (rc = vfk_pci_set_id(dev, &id)))
		goto fail;

	rc = vfk_dev_set_bar(dev, 0, &(struct vfk_bar_desc){ .size = 4096 });
	if (rc)
		goto fail;
	rc = vfk_shm_create(DMA_TEST_BAR2_SIZE, "dma-test-bar2", &t->bar2);
	if (rc)
		goto fail;
	rc = vfk_dev_set_bar(dev, 2, &(struct vfk_bar_desc){
		.size = DMA_TEST_BAR2_SIZE, .flags = VFK_BAR_MEM64, .shm = t->bar2 });
	if (rc)
		goto fail;
	/* The sub-page BAR gets a page of its own, so nothing else can be
	 * reached through its mapping. */
	rc = vfk_shm_create(page, "dma-test-bar4", &t->bar4);
	if (rc)
		goto fail;
	rc = vfk_dev_set_bar(dev, 4, &(struct vfk_bar_desc){
		.size = DMA_TEST_BAR4_SIZE, .shm = t->bar4 });
	if (rc)
		goto fail;
	rc = vfk_dev_set_bar(dev, 5, &(struct vfk_bar_desc){
		.size = DMA_TEST_BAR5_SIZE, .flags = VFK_BAR_IO });
	if (rc)
		goto fail;
	memset(rom, 0, sizeof(rom));
	memcpy(rom, "VFKROM dma-test expansion ROM (data only, no code)", 50);
	if ((rc = vfk_dev_set_rom(dev, rom, sizeof(rom))))
		goto fail;

	if ((rc = vfk_pci_add_pm(dev)) ||
	    (rc = vfk_pci_add_msi(dev, 1, VFK_MSI_64BIT | VFK_MSI_MASKABLE)) ||
	    (rc = vfk_pci_add_msix(dev, DMA_TEST_MSIX_VECTORS, 2, DMA_TEST_MSIX_TABLE,
				   2, DMA_TEST_MSIX_PBA)) ||
	    (rc = vfk_pci_add_express(dev, VFK_PCIE_ENDPOINT, VFK_PCIE_FLR)) ||
	    (rc = vfk_pci_add_vendor(dev, vendor_text, sizeof(vendor_text) - 1, NULL)) ||
	    (rc = vfk_pci_add_ext_cap(dev, PCI_EXT_CAP_ID_DSN, 1, dsn, sizeof(dsn), NULL)))
		goto fail;
	rc = vfk_dev_realize(dev);
	if (rc)
		goto fail;
	*out = dev;
	return 0;
fail:
	vfk_dev_destroy(dev);
	vfk_shm_put(t->bar2);
	vfk_shm_put(t->bar4);
	close(t->kick_fd);
	free(t);
	return rc;
}

void dma_test_destroy(struct vfk_dev *dev)
{
	struct dma_test *t;

	if (!dev)
		return;
	t = dt(dev);
	vfk_dev_destroy(dev);
	vfk_shm_put(t->bar2);
	vfk_shm_put(t->bar4);
	close(t->kick_fd);
	free(t);
}
