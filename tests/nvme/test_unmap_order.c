/* SPDX-License-Identifier: MIT */
/*
 * The order in which a DMA window goes away: out of the DMA table first,
 * then the model's dma_unmap callback.  Otherwise a device thread calling
 * vfk_dma_translate() between the callback's return and the removal would
 * still get a host pointer into the window, against the callback's
 * contract ("when dma_unmap returns, the model must hold no host pointer
 * into the window").  The nvme model's I/O thread relies on it.
 *
 * A forked server with a two-register model shows it deterministically:
 * inside its dma_unmap callback it translates the window being removed and
 * counts successes (register 0, which must be 0) and calls (register 1,
 * which must be 1: no call would prove nothing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/pci_regs.h>

#include "testlib.h"

static uint32_t translatable, unmaps;

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf, uint32_t count)
{
	uint32_t regs[2] = { translatable, unmaps };
	uint8_t *b = buf;

	(void)dev;
	(void)bar;
	for (uint32_t i = 0; i < count; i++)
		b[i] = off + i < sizeof(regs) ? ((const uint8_t *)regs)[off + i] : 0;
	return 0;
}

static void dma_unmap(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	struct vfk_sg sg;

	unmaps++;
	if (vfk_dma_translate(dev, w->iova, w->size, VFK_PROT_READ, &sg, 1) == 1 && sg.host)
		translatable++;
}

static const struct vfk_dev_ops ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "unmap-order",
	.bar_read = bar_read,
	.dma_unmap = dma_unmap,
};

static int setup(void *arg, struct vfk_dev **dev, struct vfk_server_opts *so)
{
	int rc;

	(void)arg;
	(void)so;
	if ((rc = vfk_dev_create(&ops, NULL, dev)))
		return rc;
	return vfk_dev_set_bar(*dev, 0, &(struct vfk_bar_desc){ .size = 4096 });
}

static void teardown_dev(void *arg, struct vfk_dev *dev)
{
	(void)arg;
	vfk_dev_destroy(dev);
}

static void test_window_gone_before_dma_unmap(void **state)
{
	struct tsrv srv;
	struct vfk_device *dev;
	struct vfk_dma_mapping m;
	uint16_t cmd = PCI_COMMAND_MEMORY;
	uint32_t regs[2] = { 99, 99 };
	void *mem;
	int fd;

	(void)state;
	assert_int_equal(tsrv_start_fork(&srv, setup, teardown_dev, NULL), 0);
	dev = tsrv_open(&srv, NULL);
	assert_non_null(dev);
	fd = memfd_create("w", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fd, 65536), 0);
	mem = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	m = (struct vfk_dma_mapping){ .iova = 1ull << 32, .size = 65536, .vaddr = mem, .fd = fd,
				      .prot = VFK_DMA_READ | VFK_DMA_WRITE };
	assert_int_equal(vfk_device_dma_map(dev, &m), 0);
	assert_int_equal(vfk_device_dma_unmap(dev, m.iova, m.size), 0);
	assert_int_equal(vfk_device_config_write(dev, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(vfk_region_read(dev, 0, 0, regs, sizeof(regs)), 0);
	vfk_device_close(dev);
	munmap(mem, 65536);
	close(fd);
	assert_int_equal(tsrv_stop(&srv), 0);
	/* Translations of the departing window that succeeded inside the
	 * callback: each one could as well have run just after it. */
	assert_int_equal(regs[0], 0);
	assert_int_equal(regs[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_gone_before_dma_unmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
