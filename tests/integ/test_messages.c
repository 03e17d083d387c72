/* SPDX-License-Identifier: MIT */
/*
 * Every vfio-user message, end to end: a real `vfiokit serve dma-test`
 * process and the client library (raw sockets for the messages the client
 * library has no call for).  One server for the whole file, as a VMM that
 * reconnects would see it; every test opens its own client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/pci_regs.h>

#include "dma_test.h"
#include "driver.h"
#include "testlib.h"

static struct tsrv srv;

static int group_setup(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };

	(void)state;
	return tsrv_start_exec(&srv, args) ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	/* The server must exit cleanly on SIGTERM (and, under ASan, leak-free). */
	return tsrv_stop(&srv) == 0 ? 0 : -1;
}

/* The client of the running test; closed by its teardown even when the
 * test fails half-way, so that one failure cannot lock the next tests out
 * of the (one-client-at-a-time) server. */
static struct vfk_device *cur;

static struct vfk_device *open_dev(void)
{
	int err;

	if (cur) {
		vfk_device_close(cur);
		cur = NULL;
	}
	cur = tsrv_open(&srv, &err);
	if (!cur)
		fail_msg("connect: %s", vfk_strerror(err));
	return cur;
}

static void close_dev(struct vfk_device *d)
{
	if (d == cur)
		cur = NULL;
	vfk_device_close(d);
}

static int teardown_dev(void **state)
{
	(void)state;
	if (cur)
		vfk_device_close(cur);
	cur = NULL;
	return 0;
}

static bool fired(int efd, int timeout_ms)
{
	struct pollfd p = { efd, POLLIN, 0 };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(efd, &v, sizeof(v)) == sizeof(v);
}

static void test_version_and_info(void **state)
{
	struct vfk_device *d = open_dev();
	struct vfk_session_info si;
	struct vfk_device_info di;

	(void)state;
	assert_int_equal(vfk_device_session(d, &si), 0);
	assert_int_equal(si.major, 0);
	assert_int_equal(si.minor, 0);
	/* The server never answers above what the client proposed. */
	assert_int_equal(si.server_max_msg_fds, 16);
	assert_int_equal(si.server_max_data_xfer, 1u << 20);
	assert_int_equal(si.server_pgsizes, 4096);
	assert_int_equal(vfk_device_get_info(d, &di), 0);
	assert_int_equal(di.flags, VFK_DEVICE_FLAGS_PCI | VFK_DEVICE_FLAGS_RESET);
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);
	close_dev(d);
}

static void test_region_info(void **state)
{
	struct vfk_device *d = open_dev();
	struct vfk_region_info ri;

	(void)state;
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	assert_int_equal(ri.size, 4096);
	/* CAPS: every BAR carries vfiokit's attributes capability. */
	assert_int_equal(ri.flags, VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE |
					   VFK_REGION_FLAG_CAPS);
	assert_false(ri.mappable);
	assert_int_equal(vfk_region_get_info(d, 1, &ri), 0);
	assert_int_equal(ri.size, 0);
	assert_int_equal(vfk_region_get_info(d, 2, &ri), 0);
	assert_int_equal(ri.size, DMA_TEST_BAR2_SIZE);
	assert_true(ri.flags & VFK_REGION_FLAG_MMAP);
	assert_true(ri.flags & VFK_REGION_FLAG_CAPS);
	assert_true(ri.mappable);
	/* The whole BAR, MSI-X table included, with MSIX_MAPPABLE: the
	 * default layout, as vfio-pci's since Linux 4.16 (the client keeps
	 * emulating the table; --msix trapped leaves its pages out). */
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].offset, 0);
	assert_int_equal(ri.areas[0].size, DMA_TEST_BAR2_SIZE);
	assert_true(ri.msix_mappable);
	assert_int_equal(vfk_region_get_info(d, 3, &ri), 0); /* upper half of BAR2 */
	assert_int_equal(ri.size, 0);
	assert_int_equal(vfk_region_get_info(d, 4, &ri), 0);
	assert_int_equal(ri.size, DMA_TEST_BAR4_SIZE);
	assert_true(ri.mappable);
	assert_int_equal(ri.nr_areas, 1); /* whole region: no sparse list */
	assert_int_equal(vfk_region_get_info(d, 5, &ri), 0);
	assert_int_equal(ri.size, DMA_TEST_BAR5_SIZE);
	assert_false(ri.mappable);
	assert_int_equal(vfk_region_get_info(d, VFK_PCI_ROM, &ri), 0);
	assert_int_equal(ri.size, 2048);
	assert_int_equal(ri.flags, VFK_REGION_FLAG_READ);
	assert_int_equal(vfk_region_get_info(d, VFK_PCI_CONFIG, &ri), 0);
	assert_int_equal(ri.size, 4096);
	assert_int_equal(vfk_region_get_info(d, VFK_PCI_VGA, &ri), 0);
	assert_int_equal(ri.size, 0);
	assert_int_equal(vfk_region_get_info(d, 9, &ri), -EINVAL);
	close_dev(d);
}

static void test_region_io(void **state)
{
	struct vfk_device *d = open_dev();
	uint32_t v = 0;
	uint64_t q;
	uint8_t rom[8], *bar2, *bar4;
	void *base;

	(void)state;
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &v), 0);
	assert_int_equal(v, DMA_TEST_MAGIC);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 0xcafef00d), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &v), 0);
	assert_int_equal(v, 0xcafef00d);
	/* An 8-byte access and a posted write, ordered before the read. */
	assert_int_equal(vfk_region_read(d, 0, 0, &q, 8), 0);
	assert_int_equal(q, DMA_TEST_MAGIC | (1ull << 32));
	v = 0x1234;
	assert_int_equal(vfk_region_write_posted(d, 0, DMA_TEST_REG_SCRATCH, &v, 4), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &v), 0);
	assert_int_equal(v, 0x1234);
	/* I/O BAR. */
	v = 0x55aa;
	assert_int_equal(vfk_region_write(d, 5, 0, &v, 4), 0);
	assert_int_equal(vfk_region_read(d, 5, 4, &v, 4), 0);
	assert_int_equal(v, DMA_TEST_MAGIC);
	/* ROM: read-only, contents as built. */
	assert_int_equal(vfk_region_read(d, VFK_PCI_ROM, 0, rom, 6), 0);
	assert_memory_equal(rom, "VFKROM", 6);
	assert_int_equal(vfk_region_write(d, VFK_PCI_ROM, 0, rom, 1), -EINVAL);
	/* Beyond a region, and past the end through a valid start. */
	assert_int_equal(vfk_region_read(d, 0, 4096, &v, 4), -EINVAL);
	/* Shared memory: a mapping and messages see the same bytes. */
	assert_int_equal(vfk_region_map(d, 2, &base), 0);
	bar2 = base;
	bar2[0x10] = 0x42;
	bar2[0x3008] = 0x43;
	assert_int_equal(vfk_region_read(d, 2, 0x10, rom, 1), 0); /* through the mapping */
	assert_int_equal(rom[0], 0x42);
	vfk_region_unmap(d, 2);
	assert_int_equal(vfk_region_read(d, 2, 0x3008, rom, 1), 0); /* by message */
	assert_int_equal(rom[0], 0x43);
	assert_int_equal(vfk_region_map(d, 4, &base), 0);
	bar4 = base;
	bar4[255] = 0x99;
	vfk_region_unmap(d, 4);
	assert_int_equal(vfk_region_read(d, 4, 255, rom, 1), 0);
	assert_int_equal(rom[0], 0x99);
	assert_int_equal(vfk_region_map(d, 0, &base), -ENODEV);
	/* A large config read (QEMU reads all of it at realize). */
	{
		uint8_t cfg[4096];

		assert_int_equal(vfk_device_config_read(d, 0, cfg, sizeof(cfg)), 0);
		assert_int_equal(cfg[0], 0x34);
		assert_int_equal(cfg[1], 0x12);
	}
	close_dev(d);
}

static void test_memory_enable(void **state)
{
	struct vfk_device *d = open_dev();
	uint16_t cmd = 0;
	uint32_t v;

	(void)state;
	/* Decoding off: vfio-pci's answer is EIO (the default policy). */
	assert_int_equal(vfk_device_config_write(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &v), -EIO);
	assert_int_equal(vfk_region_read(d, 5, 0, &v, 4), -EIO);
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &v), 0);
	close_dev(d);
}

static void test_irq_info(void **state)
{
	struct vfk_device *d = open_dev();
	struct vfk_irq_info ii;

	(void)state;
	assert_int_equal(vfk_device_irq_info(d, VFK_PCI_INTX, &ii), 0);
	assert_int_equal(ii.count, 1);
	assert_int_equal(ii.flags, VFK_IRQ_INFO_EVENTFD | VFK_IRQ_INFO_MASKABLE |
					   VFK_IRQ_INFO_AUTOMASKED);
	assert_int_equal(vfk_device_irq_info(d, VFK_PCI_MSI, &ii), 0);
	assert_int_equal(ii.count, 1);
	assert_true(ii.flags & VFK_IRQ_INFO_NORESIZE);
	assert_int_equal(vfk_device_irq_info(d, VFK_PCI_MSIX, &ii), 0);
	assert_int_equal(ii.count, DMA_TEST_MSIX_VECTORS);
	assert_false(ii.flags & VFK_IRQ_INFO_NORESIZE);
	assert_int_equal(vfk_device_irq_info(d, VFK_PCI_ERR, &ii), 0);
	assert_int_equal(ii.count, 1);
	assert_int_equal(vfk_device_irq_info(d, VFK_PCI_REQ, &ii), 0);
	assert_int_equal(vfk_device_irq_info(d, 5, &ii), -EINVAL);
	close_dev(d);
}

static void test_set_irqs_msix(void **state)
{
	struct vfk_device *d = open_dev();
	int e[4], fds[4];
	uint32_t pba = 0, one = 1, zero = 0;

	(void)state;
	for (int i = 0; i < 4; i++)
		e[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* Bind 0, 1 and 3; 2 stays unbound (a -1 run, sent without fds). */
	fds[0] = e[0];
	fds[1] = e[1];
	fds[2] = -1;
	fds[3] = e[3];
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 4, fds), 0);
	/* Loopback trigger from the client. */
	assert_int_equal(vfk_device_irq_trigger(d, VFK_PCI_MSIX, 1, 1), 0);
	assert_true(fired(e[1], 1000));
	assert_false(fired(e[0], 0));
	/* The device raises vector 3 after a copy of 0 bytes. */
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(3)), 0);
	assert_true(fired(e[3], 2000));
	/* Mask vector 3 in the MSI-X table: the interrupt becomes pending
	 * in the PBA, and unmasking delivers it. */
	assert_int_equal(vfk_region_write(d, 2, DMA_TEST_MSIX_TABLE + 3 * 16 + 12, &one, 4), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(3)), 0);
	assert_false(fired(e[3], 300));
	assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_PBA, &pba, 4), 0);
	assert_int_equal(pba, 1u << 3);
	assert_int_equal(vfk_region_write(d, 2, DMA_TEST_MSIX_TABLE + 3 * 16 + 12, &zero, 4), 0);
	assert_true(fired(e[3], 1000));
	assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_PBA, &pba, 4), 0);
	assert_int_equal(pba, 0);
	/* SET_IRQS MASK does the same. */
	assert_int_equal(vfk_device_irq_mask(d, VFK_PCI_MSIX, 0, 1, true), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(0)), 0);
	assert_false(fired(e[0], 300));
	assert_int_equal(vfk_device_irq_mask(d, VFK_PCI_MSIX, 0, 1, false), 0);
	assert_true(fired(e[0], 1000));
	/* Another type cannot be enabled while MSI-X is (vfio-pci). */
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_INTX, 0, 1, &e[0]), -EINVAL);
	assert_int_equal(vfk_device_irq_disable(d, VFK_PCI_MSIX), 0);
	assert_int_equal(vfk_device_irq_trigger(d, VFK_PCI_MSIX, 0, 1), 0);
	assert_false(fired(e[0], 100));
	for (int i = 0; i < 4; i++)
		close(e[i]);
	close_dev(d);
}

static void test_intx(void **state)
{
	struct vfk_device *d = open_dev();
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int u = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint64_t one = 1;
	uint16_t st;

	(void)state;
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_INTX, 0, 1, &e), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ), 0);
	assert_true(fired(e, 2000));
	assert_int_equal(vfk_device_config_read(d, PCI_STATUS, &st, 2), 0);
	assert_true(st & PCI_STATUS_INTERRUPT);
	/* Automasked: unmasking while still asserted fires again. */
	assert_int_equal(vfk_device_irq_mask(d, VFK_PCI_INTX, 0, 1, false), 0);
	assert_true(fired(e, 1000));
	/* The unmask eventfd (resampler) does the same from the client. */
	assert_int_equal(vfk_device_irq_unmask_eventfd(d, u), 0);
	assert_int_equal(write(u, &one, 8), 8);
	assert_true(fired(e, 1000));
	/* Acknowledged in the device: the line drops, unmask fires nothing. */
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE), 0);
	assert_int_equal(vfk_device_irq_mask(d, VFK_PCI_INTX, 0, 1, false), 0);
	assert_false(fired(e, 200));
	assert_int_equal(vfk_device_config_read(d, PCI_STATUS, &st, 2), 0);
	assert_false(st & PCI_STATUS_INTERRUPT);
	assert_int_equal(vfk_device_irq_disable(d, VFK_PCI_INTX), 0);
	/* The client still holds the unmask eventfd and signals it: the
	 * server, which dropped it with INTx, must stay idle (it used to
	 * spin on a stale epoll registration). */
	assert_int_equal(write(u, &one, 8), 8);
	{
		long before = tsrv_cpu_ms(&srv), after;

		usleep(500000);
		after = tsrv_cpu_ms(&srv);
		assert_true(before >= 0 && after >= 0);
		assert_true(after - before < 100);
	}
	close(e);
	close(u);
	close_dev(d);
}

#define IOVA_A 0x100000ull
#define IOVA_B 0x80000000ull

static void test_dma(void **state)
{
	struct vfk_device *d = open_dev();
	int memfd = memfd_create("t", MFD_CLOEXEC), e = eventfd(0, EFD_CLOEXEC);
	uint8_t *mem, *anon = aligned_alloc(4096, 1 << 20);
	struct vfk_client_stats cs;
	uint32_t st;

	(void)state;
	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(mem != MAP_FAILED);
	for (int i = 0; i < 1 << 20; i++)
		mem[i] = (uint8_t)(i * 7);
	memset(anon, 0, 1 << 20);
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		IOVA_A, 1 << 20, mem, memfd, 0, VFK_DMA_READ | VFK_DMA_WRITE }), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		IOVA_B, 1 << 20, anon, -1, 0, VFK_DMA_READ | VFK_DMA_WRITE }), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		IOVA_A + 4096, 4096, mem, memfd, 0, VFK_DMA_READ }), -EEXIST);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, &e), 0);

	/* fd-backed -> fd-less: the server writes with DMA_WRITE messages,
	 * chunked to max_data_xfer, which the client answers. */
	assert_int_equal(dma_test_start(d, IOVA_A, IOVA_B, 1 << 20,
					DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(0)), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_STATUS, &st), 0);
	assert_int_equal(st, DMA_TEST_STATUS_DONE);
	assert_memory_equal(mem, anon, 1 << 20);
	vfk_device_get_stats(d, &cs);
	assert_true(cs.dma_served >= 16); /* 64 KiB bounce chunks */

	/* fd-less -> fd-backed: DMA_READ messages. */
	memset(mem, 0, 4096);
	assert_int_equal(dma_test_start(d, IOVA_B + 100, IOVA_A, 4000, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_memory_equal(mem, anon + 100, 4000);

	/* Outside any window: the device reports EFAULT, nothing written. */
	assert_int_equal(dma_test_start(d, IOVA_A, 0x40000000, 16, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_STATUS, &st), 0);
	assert_int_equal(st, DMA_TEST_STATUS_ERROR);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ERRNO, &st), 0);
	assert_int_equal(st, EFAULT);

	/* Unmap: cut is refused, whole windows go; then everything. */
	assert_int_equal(vfk_device_dma_unmap(d, IOVA_A, 4096), -EINVAL);
	assert_int_equal(vfk_device_dma_unmap(d, IOVA_A, 1 << 20), 0);
	assert_int_equal(vfk_device_dma_unmap(d, IOVA_A, 1 << 20), 0); /* nothing: type1's 0 */
	assert_int_equal(dma_test_start(d, IOVA_A, IOVA_B, 16, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ERRNO, &st), 0);
	assert_int_equal(st, EFAULT);
	assert_int_equal(vfk_device_dma_unmap_all(d), 0);
	/* No bus mastering, no DMA. */
	{
		uint16_t cmd = PCI_COMMAND_MEMORY;

		assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
			IOVA_A, 1 << 20, mem, memfd, 0, VFK_DMA_READ | VFK_DMA_WRITE }), 0);
		assert_int_equal(vfk_device_config_write(d, PCI_COMMAND, &cmd, 2), 0);
		assert_int_equal(dma_test_start(d, IOVA_A, IOVA_A + 8192, 16, DMA_TEST_CTRL_IRQ), 0);
		assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
		assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ERRNO, &st), 0);
		assert_int_equal(st, EACCES);
	}
	munmap(mem, 1 << 20);
	close(memfd);
	close(e);
	free(anon);
	close_dev(d);
}

/* A register read while the device does message DMA: the server's
 * DMA_READ requests arrive between the read and its reply, and serving
 * them must not touch the reply the read is waiting for (it did: -EPROTO
 * on every run with a 1 MiB copy from memory without fd). */
static void test_register_reads_during_message_dma(void **state)
{
	struct vfk_device *d = open_dev();
	uint8_t *src = aligned_alloc(4096, 1 << 20), *dst = aligned_alloc(4096, 1 << 20);
	unsigned reads = 0;
	uint32_t st = DMA_TEST_STATUS_BUSY;

	(void)state;
	for (int i = 0; i < 1 << 20; i++)
		src[i] = (uint8_t)(i * 13 + 1);
	memset(dst, 0, 1 << 20);
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		IOVA_A, 1 << 20, src, -1, 0, VFK_DMA_READ }), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		IOVA_B, 1 << 20, dst, -1, 0, VFK_DMA_WRITE }), 0);
	assert_int_equal(dma_test_start(d, IOVA_A, IOVA_B, 1 << 20, 0), 0);
	while (st & DMA_TEST_STATUS_BUSY) {
		int rc = dma_test_read32(d, DMA_TEST_REG_STATUS, &st);

		if (rc)
			fail_msg("STATUS read %u during the copy: %s", reads, vfk_strerror(rc));
		reads++;
	}
	assert_int_equal(st, DMA_TEST_STATUS_DONE);
	assert_memory_equal(src, dst, 1 << 20);
	assert_int_equal(vfk_device_dma_unmap_all(d), 0);
	free(src);
	free(dst);
	close_dev(d);
}

static void test_reset(void **state)
{
	struct vfk_device *d = open_dev();
	uint32_t v;
	uint16_t cmd;

	(void)state;
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 77), 0);
	assert_int_equal(vfk_device_reset(d), 0);
	/* Config back at power-on: decoding off. */
	assert_int_equal(vfk_device_config_read(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(cmd, 0);
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &v), 0);
	assert_int_equal(v, 0);
	close_dev(d);
}

/* A client's departure resets the device, as vfio-pci resets a device
 * when its last user closes it: the next client finds decoding off and
 * the registers at their power-on values (test_semantics.c has the
 * --keep-state case). */
static void test_reconnect_resets_state(void **state)
{
	struct vfk_device *d = open_dev();
	uint32_t v;
	uint16_t cmd;

	(void)state;
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 0xabcd), 0);
	close_dev(d);
	d = open_dev();
	assert_int_equal(vfk_device_config_read(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(cmd, 0);
	assert_int_equal(dma_test_enable(d), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &v), 0);
	assert_int_equal(v, 0);
	close_dev(d);
}

/* Messages the client library has no call for, over a raw socket. */
static void test_raw_messages(void **state)
{
	int fd = tsrv_connect(&srv);
	uint8_t buf[256];
	struct vfk_hdr h;
	int n;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(raw_negotiate(fd), 0);
	/* GET_REGION_IO_FDS: an empty list, no fds. */
	{
		struct vfk_io_fds_wire w = { 16, 0, 2, 0 };
		unsigned nf;
		int f[8];

		assert_int_equal(raw_send(fd, 10, VFK_CMD_DEVICE_GET_REGION_IO_FDS, 0, &w, 16, NULL, 0), 0);
		n = raw_recv(fd, &h, buf, sizeof(buf), f, &nf, 5000);
		assert_int_equal(n, 16);
		assert_int_equal(nf, 0);
		memcpy(&w, buf, 16);
		assert_int_equal(w.count, 0);
		assert_int_equal(w.index, 2);
	}
	/* REGION_WRITE_MULTI: two writes to the scratch register. */
	{
		uint8_t m[8 + 48];
		uint64_t cnt = 2;
		struct vfk_write_one_wire a = { DMA_TEST_REG_SCRATCH, 0, 4, { 1, 0, 0, 0 } };
		struct vfk_write_one_wire b = { DMA_TEST_REG_SCRATCH + 1, 0, 1, { 2 } };
		struct vfk_region_rw_wire rd = { DMA_TEST_REG_SCRATCH, 0, 4 };
		uint16_t cmd = PCI_COMMAND_MEMORY;
		struct vfk_region_rw_wire cw = { PCI_COMMAND, VFK_PCI_CONFIG, 2 };
		uint8_t cm[18];

		memcpy(cm, &cw, 16);
		memcpy(cm + 16, &cmd, 2);
		assert_int_equal(raw_send(fd, 11, VFK_CMD_REGION_WRITE, 0, cm, 18, NULL, 0), 0);
		assert_int_equal(raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000), 16);
		memcpy(m, &cnt, 8);
		memcpy(m + 8, &a, 24);
		memcpy(m + 32, &b, 24);
		assert_int_equal(raw_send(fd, 12, VFK_CMD_REGION_WRITE_MULTI, 0, m, sizeof(m), NULL, 0), 0);
		n = raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000);
		assert_int_equal(n, 8);
		memcpy(&cnt, buf, 8);
		assert_int_equal(cnt, 2);
		assert_int_equal(raw_send(fd, 13, VFK_CMD_REGION_READ, 0, &rd, 16, NULL, 0), 0);
		n = raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000);
		assert_int_equal(n, 20);
		assert_int_equal(buf[16], 1);
		assert_int_equal(buf[17], 2);
	}
	/* DEVICE_FEATURE: nothing implemented, ENOTTY as vfio-pci says it. */
	{
		struct vfk_feature_wire f = { 8, 1 | VFK_FEATURE_GET };

		assert_int_equal(raw_send(fd, 14, VFK_CMD_DEVICE_FEATURE, 0, &f, 8, NULL, 0), 0);
		assert_int_equal(raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000), 0);
		assert_true(h.flags & VFK_F_ERROR);
		assert_int_equal(h.error, ENOTTY);
	}
	/* MIG_DATA_READ: no migration. */
	{
		uint32_t md[2] = { 8, 64 };

		assert_int_equal(raw_send(fd, 15, VFK_CMD_MIG_DATA_READ, 0, md, 8, NULL, 0), 0);
		assert_int_equal(raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000), 0);
		assert_int_equal(h.error, ENOTSUP);
	}
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_version_and_info, teardown_dev),
		cmocka_unit_test_teardown(test_region_info, teardown_dev),
		cmocka_unit_test_teardown(test_region_io, teardown_dev),
		cmocka_unit_test_teardown(test_memory_enable, teardown_dev),
		cmocka_unit_test_teardown(test_irq_info, teardown_dev),
		cmocka_unit_test_teardown(test_set_irqs_msix, teardown_dev),
		cmocka_unit_test_teardown(test_intx, teardown_dev),
		cmocka_unit_test_teardown(test_dma, teardown_dev),
		cmocka_unit_test_teardown(test_reset, teardown_dev),
		cmocka_unit_test_teardown(test_register_reads_during_message_dma, teardown_dev),
		cmocka_unit_test_teardown(test_reconnect_resets_state, teardown_dev),
		cmocka_unit_test_teardown(test_raw_messages, teardown_dev),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
