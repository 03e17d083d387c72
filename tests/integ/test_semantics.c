/* SPDX-License-Identifier: MIT */
/*
 * The hard PCI semantics, each proven through the client library against
 * real `vfiokit serve` processes: sub-page BARs at 4K/16K/64K host pages,
 * MSI-X and MSI masking, the memory-enable policies, emulated BARs over
 * device memory, memory attributes, and DMA under a 32-bit mask.
 * docs/semantics.md describes each point and how it compares with Linux
 * vfio-pci.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/pci_regs.h>

#include "devmem.h"
#include "dma_test.h"
#include "driver.h"
#include "subpage.h"
#include "testlib.h"

/* One server and one client per test, torn down even on failure. */
static struct tsrv srv;
static struct vfk_device *dev;

static struct vfk_device *serve(const char *const *args)
{
	int err;

	assert_int_equal(tsrv_start_exec(&srv, args), 0);
	dev = tsrv_open(&srv, &err);
	if (!dev)
		fail_msg("connect: %s", vfk_strerror(err));
	return dev;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	if (dev)
		vfk_device_close(dev);
	dev = NULL;
	if (srv.pid == 0) { /* a test reaped it, after checking its status */
		unlink(srv.path);
		rmdir(srv.dir);
		return 0;
	}
	st = tsrv_stop(&srv);
	return st == 0 ? 0 : -1; /* the server exits cleanly (leak-free under ASan) */
}

static bool fired(int efd, int timeout_ms)
{
	struct pollfd p = { efd, POLLIN, 0 };
	uint64_t v;

	return poll(&p, 1, timeout_ms) == 1 && read(efd, &v, 8) == 8;
}

/* Offset of standard capability `id` in config space (a failed test if
 * it is missing), found by walking the list as a driver does. */
static uint8_t find_cap(struct vfk_device *d, uint8_t id)
{
	uint8_t pos = 0, cap;

	assert_int_equal(vfk_device_config_read(d, PCI_CAPABILITY_LIST, &pos, 1), 0);
	for (unsigned guard = 0; pos && guard < 48; guard++) {
		assert_int_equal(vfk_device_config_read(d, pos, &cap, 1), 0);
		if (cap == id)
			return pos;
		assert_int_equal(vfk_device_config_read(d, pos + 1, &pos, 1), 0);
	}
	fail_msg("no capability %#x", id);
	return 0;
}

static void enable(struct vfk_device *d)
{
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER;

	assert_int_equal(vfk_device_config_write(d, PCI_COMMAND, &cmd, 2), 0);
}

/* Expected mmap coverage of one BAR: up to two areas, or none. */
struct cover {
	unsigned nr;
	struct vfk_area a[2];
	uint32_t in_page;
	bool msix_mappable;
};

#define NONE(ip) { .nr = 0, .in_page = (ip) }
#define ONE(o, sz) { .nr = 1, .a = { { (o), (sz) } } }

static void check_cover(struct vfk_device *d, unsigned bar, const struct cover *c)
{
	struct vfk_region_info ri;

	assert_int_equal(vfk_region_get_info(d, bar, &ri), 0);
	if (ri.nr_areas != c->nr)
		fail_msg("BAR%u: %u areas, expected %u", bar, ri.nr_areas, c->nr);
	assert_int_equal(ri.mappable, c->nr > 0);
	for (unsigned i = 0; i < c->nr; i++) {
		assert_int_equal(ri.areas[i].offset, c->a[i].offset);
		assert_int_equal(ri.areas[i].size, c->a[i].size);
	}
	assert_int_equal(ri.msix_mappable, c->msix_mappable);
	/* Only BARs in shared memory have a layout; an expected offset
	 * within the page needs one, or it would go unchecked. */
	if (c->in_page)
		assert_true(ri.has_layout);
	if (ri.has_layout)
		assert_int_equal(ri.in_page_offset, c->in_page);
}

/* ---- 1. sub-page BARs and large host pages ---- */

/* `msix`: the --msix layout, NULL for the default (mappable). */
static void subpage_table(const char *page, const struct cover cov[6], const char *msix)
{
	const char *args[] = { "subpage", "-q", "--page-size", page,
			       msix ? "--msix" : NULL, msix, NULL };
	struct vfk_device *d = serve(args);

	for (unsigned b = 0; b < 6; b++)
		check_cover(d, b, &cov[b]);
}

static void test_subpage_4k(void **state)
{
	/* Each 256-byte BAR is alone in its 4K page: mapped whole. BAR3 is
	 * not page-aligned; BAR4 keeps its register page, not the table's
	 * (the trapped MSI-X layout, vfio-pci before Linux 4.16). */
	static const struct cover cov[6] = {
		ONE(0, 256), ONE(0, 256), ONE(0, 256), NONE(0x100), ONE(0, 0x1000), NONE(0),
	};
	struct vfk_region_info ri;
	uint8_t *b0, *b1, v;
	void *p;

	(void)state;
	subpage_table("4096", cov, "trapped");
	/* The mapping covers the BAR's whole page; the BAR is at its start. */
	assert_int_equal(vfk_region_get_info(dev, 0, &ri), 0);
	assert_int_equal(ri.in_page_offset, 0);
	assert_true(ri.layout_flags & VFK_LAYOUT_SUBPAGE);
	assert_true(ri.layout_flags & VFK_LAYOUT_EXCLUSIVE);
	enable(dev);
	assert_int_equal(vfk_region_map(dev, 0, &p), 0);
	b0 = p;
	assert_int_equal(vfk_region_map(dev, 1, &p), 0);
	b1 = p;
	b0[0] = 0xa0;
	b0[255] = 0xa1;
	b1[0] = 0xb0;
	b0[4095] = 0xee; /* the rest of BAR0's page: nobody else's bytes */
	vfk_region_unmap(dev, 0);
	vfk_region_unmap(dev, 1);
	assert_int_equal(vfk_region_read(dev, 0, 255, &v, 1), 0);
	assert_int_equal(v, 0xa1);
	assert_int_equal(vfk_region_read(dev, 1, 0, &v, 1), 0);
	assert_int_equal(v, 0xb0);
	/* BAR3 stays trapped; messages reach it. */
	v = 0x33;
	assert_int_equal(vfk_region_write(dev, 3, 0, &v, 1), 0);
	assert_int_equal(vfk_region_map(dev, 3, &p), -ENODEV);
}

static void test_subpage_4k_default(void **state)
{
	/* The default MSI-X layout: BAR4 whole with MSIX_MAPPABLE; the rest
	 * as in the trapped layout. */
	static const struct cover cov[6] = {
		ONE(0, 256), ONE(0, 256), ONE(0, 256), NONE(0x100),
		{ .nr = 1, .a = { { 0, 0x2000 } }, .msix_mappable = true }, NONE(0),
	};

	(void)state;
	subpage_table("4096", cov, NULL);
}

static void test_subpage_16k(void **state)
{
	/* A 16K page spans BAR0-BAR3 (one aperture): none may be mapped;
	 * BAR4 is smaller than a page and its page holds the MSI-X table. */
	static const struct cover cov[6] = {
		NONE(0), NONE(0x1000), NONE(0x2000), NONE(0x3100), NONE(0), NONE(0),
	};

	(void)state;
	subpage_table("16384", cov, "trapped");
}

static void test_subpage_64k(void **state)
{
	static const struct cover cov[6] = {
		NONE(0), NONE(0x1000), NONE(0x2000), NONE(0x3100), NONE(0), NONE(0),
	};
	struct vfk_region_info ri;

	(void)state;
	subpage_table("65536", cov, "trapped");
	assert_int_equal(vfk_region_get_info(dev, 1, &ri), 0);
	assert_false(ri.layout_flags & VFK_LAYOUT_EXCLUSIVE);
	assert_int_equal(ri.page_size, 65536);
}

static void test_subpage_64k_msix_mappable(void **state)
{
	/* The default layout, MSIX_MAPPABLE as vfio-pci since Linux 4.16:
	 * BAR4 is offered whole, table page included. */
	static const struct cover cov[6] = {
		NONE(0), NONE(0x1000), NONE(0x2000), NONE(0x3100),
		{ .nr = 1, .a = { { 0, 0x2000 } }, .msix_mappable = true }, NONE(0),
	};
	uint32_t ent[4] = { 0xfee00000, 0, 0x4041, 0 }, back[4];
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint8_t *bar4;
	void *p;

	(void)state;
	subpage_table("65536", cov, NULL);
	enable(dev);
	assert_int_equal(vfk_region_map(dev, 4, &p), 0);
	bar4 = p;
	/* Through the mapping, the table's bytes are plain memory: no
	 * effect on delivery (interrupts are still set up by SET_IRQS) ... */
	memset(bar4 + 0x1000, 0xff, 16);
	assert_int_equal(vfk_device_irq_set_eventfds(dev, VFK_PCI_MSIX, 0, 1, &e), 0);
	assert_int_equal(vfk_device_irq_trigger(dev, VFK_PCI_MSIX, 0, 1), 0);
	assert_true(fired(e, 1000));
	/* ... while by message the table is emulated and reads back. */
	assert_int_equal(vfk_region_write(dev, 4, 0x1000, ent, 16), 0);
	assert_int_equal(vfk_region_read(dev, 4, 0x1000, back, 16), 0);
	assert_memory_equal(ent, back, 16);
	vfk_region_unmap(dev, 4);
	close(e);
}

/* dma-test at 64K pages: BAR2 (64 KiB) is one page holding the MSI-X
 * table; BAR4 has a page of its own, always mapped. */
static struct vfk_device *dma_test_64k(const char *msix)
{
	const char *args[] = { "dma-test", "-q", "--page-size", "65536",
			       msix ? "--msix" : NULL, msix, NULL };
	static const struct cover bar4 = ONE(0, 256);
	struct vfk_device *d = serve(args);

	check_cover(d, 4, &bar4);
	return d;
}

static void test_dma_test_coverage_64k(void **state)
{
	/* Trapped (before 4.16): the table's page is the whole BAR. */
	static const struct cover trapped = NONE(0);

	(void)state;
	check_cover(dma_test_64k("trapped"), 2, &trapped);
}

static void test_dma_test_64k_msix_mappable(void **state)
{
	/* The default: BAR2 whole, with MSIX_MAPPABLE, as vfio-pci offers it. */
	static const struct cover whole = { .nr = 1, .a = { { 0, 0x10000 } }, .msix_mappable = true };

	(void)state;
	check_cover(dma_test_64k(NULL), 2, &whole);
}

/* Relocated (QEMU's x-msix-relocation): the table and PBA move to the
 * first free BAR, BAR1; BAR2 is the model's alone and mapped whole, and
 * MSI-X works through the new BAR. */
static void test_dma_test_64k_msix_relocated(void **state)
{
	static const struct cover whole = ONE(0, 0x10000), none = NONE(0);
	uint32_t ent[4] = { 0xfee00000, 0, 0x4042, 0 }, back[4], tbl, pba, bar1;
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct vfk_region_info ri;
	struct vfk_device *d;
	uint8_t pos;

	(void)state;
	d = dma_test_64k("relocated");
	check_cover(d, 2, &whole);
	check_cover(d, 1, &none);
	assert_int_equal(vfk_region_get_info(d, 1, &ri), 0);
	assert_int_equal(ri.size, 0x10000); /* a 64K page */
	assert_int_equal(vfk_device_config_read(d, PCI_BASE_ADDRESS_1, &bar1, 4), 0);
	assert_int_equal(bar1 & 0xf, 0);      /* 32-bit memory BAR */
	pos = find_cap(d, PCI_CAP_ID_MSIX);
	assert_int_equal(vfk_device_config_read(d, pos + PCI_MSIX_TABLE, &tbl, 4), 0);
	assert_int_equal(vfk_device_config_read(d, pos + PCI_MSIX_PBA, &pba, 4), 0);
	assert_int_equal(tbl, 1);              /* BIR 1, offset 0 */
	assert_int_equal(pba, 0x1000 | 1);     /* after the table, page-aligned */
	enable(d);
	assert_int_equal(vfk_region_write(d, 1, 0x10, ent, 16), 0);
	assert_int_equal(vfk_region_read(d, 1, 0x10, back, 16), 0);
	assert_memory_equal(ent, back, 16);
	/* BAR2's old table offset is plain BAR memory now. */
	assert_int_equal(vfk_region_write(d, 2, DMA_TEST_MSIX_TABLE, ent, 16), 0);
	assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_TABLE, back, 16), 0);
	assert_memory_equal(ent, back, 16);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 2, (int[]){ e, e }), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(1)), 0);
	assert_true(fired(e, 1000));
	close(e);
}

/* ---- Device state across clients, REQ and ERR ---- */

/* --keep-state: the next client finds the device as the last one left it
 * (the default resets it: test_messages.c). */
static void test_keep_state(void **state)
{
	static const char *const args[] = { "dma-test", "-q", "--keep-state", NULL };
	struct vfk_device *d = serve(args);
	uint16_t cmd;
	uint32_t v;
	int err;

	(void)state;
	enable(d);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 0xabcd), 0);
	vfk_device_close(d);
	dev = d = tsrv_open(&srv, &err);
	assert_non_null(d);
	assert_int_equal(vfk_device_config_read(d, PCI_COMMAND, &cmd, 2), 0);
	assert_true(cmd & PCI_COMMAND_MEMORY);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &v), 0);
	assert_int_equal(v, 0xabcd);
}

static bool exits_within(pid_t pid, int ms, int *status)
{
	for (int i = 0; i < ms / 10; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

/* SIGTERM while a client holds the device with a REQ eventfd: the server
 * asks it to release the device (vfio-pci's device request, which QEMU
 * answers by unplugging it), keeps serving, and stops when it leaves. */
static void test_req_on_stop(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), st = -1;
	pid_t pid = srv.pid;
	uint32_t v;

	(void)state;
	enable(d);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_REQ, 0, 1, &e), 0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_true(fired(e, 3000));
	assert_false(exits_within(pid, 300, &st));
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &v), 0); /* still served */
	assert_int_equal(v, DMA_TEST_MAGIC);
	vfk_device_close(d);
	dev = NULL;
	assert_true(exits_within(pid, 3000, &st));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	srv.pid = 0;
	close(e);
}

/* A client that does not release the device is waited for only the
 * grace period; a second SIGTERM does not wait at all. */
static void test_req_grace_and_second_stop(void **state)
{
	static const char *const args[] = { "dma-test", "-q", "--stop-grace-ms", "400", NULL };
	struct vfk_device *d = serve(args);
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), st = -1;
	pid_t pid = srv.pid;

	(void)state;
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_REQ, 0, 1, &e), 0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_true(fired(e, 3000));
	assert_true(exits_within(pid, 3000, &st)); /* 400 ms, then gone */
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	srv.pid = 0;
	vfk_device_close(d);
	close(e);

	d = serve(args);
	e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pid = srv.pid;
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_REQ, 0, 1, &e), 0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_true(fired(e, 3000));
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_true(exits_within(pid, 300, &st));
	srv.pid = 0;
	vfk_device_close(d);
	dev = NULL;
	close(e);
}

/* An uncorrectable error the device reports reaches the ERR eventfd. */
static void test_err_reported(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	(void)state;
	enable(d);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_INJECT, DMA_TEST_INJECT_ERR), 0);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_ERR, 0, 1, &e), 0);
	assert_false(fired(e, 100)); /* nobody listened then */
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_INJECT, 1), 0); /* not the key */
	assert_false(fired(e, 100));
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_INJECT, DMA_TEST_INJECT_ERR), 0);
	assert_true(fired(e, 2000));
	close(e);
}

/* ---- 2. MSI-X and MSI ---- */

static void test_msix_function_mask(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint16_t ctl, msix = 0;
	uint32_t pba;

	(void)state;
	msix = find_cap(d, PCI_CAP_ID_MSIX);
	enable(d);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, &e), 0);
	assert_int_equal(vfk_device_config_read(d, msix + PCI_MSIX_FLAGS, &ctl, 2), 0);
	assert_true(ctl & PCI_MSIX_FLAGS_ENABLE); /* set by SET_IRQS */
	ctl |= PCI_MSIX_FLAGS_MASKALL;
	assert_int_equal(vfk_device_config_write(d, msix + PCI_MSIX_FLAGS, &ctl, 2), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ), 0);
	assert_false(fired(e, 300));
	assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_PBA, &pba, 4), 0);
	assert_int_equal(pba, 1);
	ctl &= ~PCI_MSIX_FLAGS_MASKALL;
	assert_int_equal(vfk_device_config_write(d, msix + PCI_MSIX_FLAGS, &ctl, 2), 0);
	assert_true(fired(e, 1000));
	/* Reset restores the table and the control register. */
	{
		uint32_t ent[4] = { 0xfee01000, 0, 0x55, 0 }, back[4];

		assert_int_equal(vfk_region_write(d, 2, DMA_TEST_MSIX_TABLE + 16, ent, 16), 0);
		assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_TABLE + 16, back, 16), 0);
		assert_memory_equal(ent, back, 16);
		assert_int_equal(vfk_device_reset(d), 0);
		enable(d);
		assert_int_equal(vfk_region_read(d, 2, DMA_TEST_MSIX_TABLE + 16, back, 16), 0);
		assert_int_equal(back[0], 0);
		assert_int_equal(back[2], 0);
		assert_int_equal(back[3], 1); /* unbound vector: masked */
	}
	close(e);
}

static void test_msi_per_vector_mask(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint8_t msi;
	uint32_t mask, pending;

	(void)state;
	msi = find_cap(d, PCI_CAP_ID_MSI);
	enable(d);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSI, 0, 1, &e), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ), 0);
	assert_true(fired(e, 1000));
	/* 64-bit, maskable: mask bits at +0x10, pending at +0x14. */
	mask = 1;
	assert_int_equal(vfk_device_config_write(d, msi + PCI_MSI_MASK_64, &mask, 4), 0);
	assert_int_equal(dma_test_start(d, 0, 0, 0, DMA_TEST_CTRL_IRQ), 0);
	assert_false(fired(e, 300));
	assert_int_equal(vfk_device_config_read(d, msi + PCI_MSI_PENDING_64, &pending, 4), 0);
	assert_int_equal(pending, 1);
	mask = 0;
	assert_int_equal(vfk_device_config_write(d, msi + PCI_MSI_MASK_64, &mask, 4), 0);
	assert_true(fired(e, 1000));
	assert_int_equal(vfk_device_config_read(d, msi + PCI_MSI_PENDING_64, &pending, 4), 0);
	assert_int_equal(pending, 0);
	close(e);
}

/* ---- 3. command register and memory enable ---- */

static void test_disabled_all_ones(void **state)
{
	static const char *const args[] = { "dma-test", "-q", "--disabled-access", "ones", NULL };
	struct vfk_device *d = serve(args);
	struct vfk_region_info ri;
	uint32_t v = 0x1234, back;
	uint16_t cmd = 0;

	(void)state;
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	assert_true(ri.attrs & VFK_ATTR_DISABLED_ONES);
	enable(d);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 7), 0);
	assert_int_equal(vfk_device_config_write(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &back), 0);
	assert_int_equal(back, 0xffffffff);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, v), 0); /* dropped */
	assert_int_equal(vfk_region_read(d, 5, 0, &back, 4), 0); /* I/O BAR too */
	assert_int_equal(back, 0xffffffff);
	enable(d);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &back), 0);
	assert_int_equal(back, 7);
}

/* D3hot stops decoding like a cleared Memory Space Enable (vfio-pci's
 * __vfio_pci_memory_enabled); config space stays reachable, and D0 brings
 * the BARs back with their contents (NoSoftRst+). */
static void test_d3hot_gates_decoding(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	uint8_t pm;
	uint16_t pmcsr;
	uint32_t back;

	(void)state;
	pm = find_cap(d, PCI_CAP_ID_PM);
	enable(d);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_SCRATCH, 0x5151), 0);
	pmcsr = 3; /* D3hot */
	assert_int_equal(vfk_device_config_write(d, pm + PCI_PM_CTRL, &pmcsr, 2), 0);
	assert_int_equal(vfk_device_config_read(d, pm + PCI_PM_CTRL, &pmcsr, 2), 0);
	assert_int_equal(pmcsr & PCI_PM_CTRL_STATE_MASK, 3);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ID, &back), -EIO);
	assert_int_equal(vfk_region_read(d, 5, 0, &back, 4), -EIO); /* I/O BAR too */
	assert_int_equal(vfk_region_read(d, 2, 0, &back, 4), -EIO);
	pmcsr = 0; /* D0 */
	assert_int_equal(vfk_device_config_write(d, pm + PCI_PM_CTRL, &pmcsr, 2), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_SCRATCH, &back), 0);
	assert_int_equal(back, 0x5151);
}

static void test_revoke_on_disable(void **state)
{
	static const char *const args[] = { "subpage", "-q", "--revoke-on-disable", NULL };
	struct vfk_device *d = serve(args);
	struct vfk_region_info ri;
	uint16_t cmd = 0;
	volatile uint8_t *m;
	uint8_t v;
	void *p;

	(void)state;
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	assert_true(ri.attrs & VFK_ATTR_MAP_REVOKE);
	enable(d);
	assert_int_equal(vfk_region_map(d, 0, &p), 0);
	m = p;
	m[10] = 0x11;
	/* Decoding off: the mapping shows all-ones, writes through it are
	 * not honoured, and nothing the device held is lost. */
	assert_int_equal(vfk_device_config_write(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(m[10], 0xff);
	m[10] = 0x22;
	/* Messages get the vfio-pci answer (the client reads through its
	 * mapping while it has one, so drop it first). */
	vfk_region_unmap(d, 0);
	assert_int_equal(vfk_region_read(d, 0, 10, &v, 1), -EIO);
	enable(d);
	assert_int_equal(vfk_region_map(d, 0, &p), 0);
	m = p;
	assert_int_equal(m[10], 0x11);
	vfk_region_unmap(d, 0);
	assert_int_equal(vfk_region_read(d, 0, 10, &v, 1), 0);
	assert_int_equal(v, 0x11);
}

static void test_af_flr(void **state)
{
	static const char *const args[] = { "subpage", "-q", NULL };
	struct vfk_device *d = serve(args);
	uint8_t af, ctl = PCI_AF_CTRL_FLR;
	uint32_t v = 0x77, bar0 = 0xfe000000;
	uint16_t cmd;

	(void)state;
	af = find_cap(d, PCI_CAP_ID_AF);
	enable(d);
	assert_int_equal(vfk_device_config_write(d, PCI_BASE_ADDRESS_0, &bar0, 4), 0);
	assert_int_equal(vfk_region_write(d, 5, 4, &v, 4), 0);
	assert_int_equal(vfk_device_config_write(d, af + PCI_AF_CTRL, &ctl, 1), 0);
	/* The function is back at power-on state: BARs, command, registers. */
	assert_int_equal(vfk_device_config_read(d, af + PCI_AF_CTRL, &ctl, 1), 0);
	assert_int_equal(ctl, 0);
	assert_int_equal(vfk_device_config_read(d, PCI_BASE_ADDRESS_0, &bar0, 4), 0);
	assert_int_equal(bar0, 0);
	assert_int_equal(vfk_device_config_read(d, PCI_COMMAND, &cmd, 2), 0);
	assert_int_equal(cmd, 0);
	enable(d);
	assert_int_equal(vfk_region_read(d, 5, 4, &v, 4), 0);
	assert_int_equal(v, 0);
}

/* ---- 4 and 5. emulated BARs over device memory; attributes ---- */

static void test_devmem_edges(void **state)
{
	static const char *const args[] = { "devmem", "-q", NULL };
	struct vfk_device *d = serve(args);
	const uint64_t end = DEVMEM_RESMEM_LEN; /* first padded byte of BAR2 */
	struct vfk_region_info ri;
	uint8_t b[8], one;
	uint32_t bar;

	(void)state;
	assert_int_equal(vfk_region_get_info(d, 2, &ri), 0);
	assert_int_equal(ri.size, 0x200000); /* rounded up to a power of two */
	assert_int_equal(ri.backed_size, DEVMEM_RESMEM_LEN);
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].offset, 0);
	assert_int_equal(ri.areas[0].size, DEVMEM_RESMEM_LEN & ~0xfffull);
	/* Device memory: all-ones with decoding off (nvgrace-gpu's split). */
	assert_int_equal(ri.attrs, VFK_ATTR_PREFETCHABLE | VFK_ATTR_MAP_WC | VFK_ATTR_DISABLED_ONES);
	assert_int_equal(vfk_region_get_info(d, 4, &ri), 0);
	assert_int_equal(ri.size, 0x800000);
	assert_int_equal(ri.attrs, VFK_ATTR_PREFETCHABLE | VFK_ATTR_MAP_WC | VFK_ATTR_MAP_CACHED |
					   VFK_ATTR_DISABLED_ONES);
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	assert_int_equal(ri.attrs, 0); /* registers: uncached only, EIO when off */
	/* Decoding off: registers EIO (vfio-pci), device memory ~0 with
	 * writes dropped (nvgrace-gpu), in one device. */
	assert_int_equal(vfk_region_read(d, 0, 0, b, 8), -EIO);
	one = 0x11;
	assert_int_equal(vfk_region_write(d, 4, 0, &one, 1), 0);
	assert_int_equal(vfk_region_read(d, 4, 0, &one, 1), 0);
	assert_int_equal(one, 0xff);
	assert_int_equal(vfk_region_read(d, 2, 0, b, 8), 0);
	assert_memory_equal(b, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);

	enable(d);
	assert_int_equal(vfk_region_read(d, 4, 0, &one, 1), 0);
	assert_int_equal(one, 0); /* the write while off was dropped */
	/* The last real byte holds what is written. */
	one = 0x5a;
	assert_int_equal(vfk_region_write(d, 2, end - 1, &one, 1), 0);
	assert_int_equal(vfk_region_read(d, 2, end - 1, &one, 1), 0);
	assert_int_equal(one, 0x5a);
	/* The first padded byte reads all-ones and ignores writes. */
	one = 0;
	assert_int_equal(vfk_region_write(d, 2, end, &one, 1), 0);
	assert_int_equal(vfk_region_read(d, 2, end, &one, 1), 0);
	assert_int_equal(one, 0xff);
	/* An access across the edge is split: memory, then all-ones. */
	memset(b, 0, sizeof(b));
	assert_int_equal(vfk_region_write(d, 2, end - 4, b, 8), 0);
	assert_int_equal(vfk_region_read(d, 2, end - 4, b, 8), 0);
	assert_memory_equal(b, "\0\0\0\0\xff\xff\xff\xff", 8);
	/* The last byte of the BAR: padding; past the BAR: an error. */
	assert_int_equal(vfk_region_read(d, 2, 0x1fffff, &one, 1), 0);
	assert_int_equal(one, 0xff);
	assert_int_equal(vfk_region_read(d, 2, 0x200000, &one, 1), -EINVAL);
	assert_int_equal(vfk_region_read(d, 2, 0x1ffffc, b, 8), -EINVAL);
	/* Emulated BAR registers: sizing, and back to zero on reset. */
	bar = 0xffffffff;
	assert_int_equal(vfk_device_config_write(d, PCI_BASE_ADDRESS_2, &bar, 4), 0);
	assert_int_equal(vfk_device_config_read(d, PCI_BASE_ADDRESS_2, &bar, 4), 0);
	assert_int_equal(bar, 0xffe00000 | PCI_BASE_ADDRESS_MEM_TYPE_64 |
				      PCI_BASE_ADDRESS_MEM_PREFETCH);
	bar = 0xc0000000;
	assert_int_equal(vfk_device_config_write(d, PCI_BASE_ADDRESS_2, &bar, 4), 0);
	assert_int_equal(vfk_device_reset(d), 0);
	assert_int_equal(vfk_device_config_read(d, PCI_BASE_ADDRESS_2, &bar, 4), 0);
	assert_int_equal(bar, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
}

static void test_devmem_backing_file(void **state)
{
	char path[] = "/tmp/vfk-devmem.XXXXXX";
	int fd = mkstemp(path);
	const char *args[] = { "devmem", "-q", "--backing", path, NULL };
	struct vfk_device *d;
	uint8_t b[4] = { 1, 2, 3, 4 }, f[4];
	uint8_t *m;
	void *p;

	(void)state;
	assert_true(fd >= 0);
	d = serve(args);
	enable(d);
	/* Through a mapping of usemem, then read in the backing file. */
	assert_int_equal(vfk_region_map(d, 4, &p), 0);
	m = p;
	memcpy(m + 0x1000, b, 4);
	vfk_region_unmap(d, 4);
	assert_int_equal(pread(fd, f, 4, 0x1000), 4);
	assert_memory_equal(b, f, 4);
	close(fd);
	unlink(path);
}

/* ---- 6. DMA under a 32-bit mask; client coalescing ---- */

#define LOW 0x10000000ull
#define HIGH 0x100000000ull

/* A 32-bit device cannot reach memory above 4 GiB, whatever the client
 * mapped there: the copy fails as a master abort would (EFAULT), nothing
 * is written, nothing bounced; the client library's allocator keeps a
 * driver's IOVAs under the device's limit so that it never gets there. */
static void test_dma_mask_master_abort(void **state)
{
	static const char *const args[] = { "dma-test", "-q", "--dma-mask", "32", NULL };
	struct vfk_device *d = serve(args);
	int memfd = memfd_create("m", MFD_CLOEXEC), e = eventfd(0, EFD_CLOEXEC);
	uint32_t bounced0, bounced1, st;
	uint64_t iova;
	uint8_t *mem, *buf;

	(void)state;
	assert_int_equal(ftruncate(memfd, 2 << 20), 0);
	mem = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	for (int i = 0; i < 1 << 20; i++)
		mem[i] = (uint8_t)(i ^ 0x5a);
	memset(mem + (1 << 20), 0x77, 1 << 20);
	enable(d);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, &e), 0);
	/* Below 4 GiB and above it, the same memfd at two places. */
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		LOW, 1 << 20, mem, memfd, 0, VFK_DMA_READ | VFK_DMA_WRITE }), 0);
	assert_int_equal(vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		HIGH, 1 << 20, mem + (1 << 20), memfd, 1 << 20, VFK_DMA_READ | VFK_DMA_WRITE }), 0);
	/* Within the mask: the engine works on client memory directly. */
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_BOUNCED, &bounced0), 0);
	assert_int_equal(dma_test_start(d, LOW, LOW + 0x80000, 0x40000, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_STATUS, &st), 0);
	assert_int_equal(st, DMA_TEST_STATUS_DONE);
	assert_memory_equal(mem, mem + 0x80000, 0x40000);
	/* Past the mask, as destination and as source: a master abort. */
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE), 0);
	assert_int_equal(dma_test_start(d, LOW, HIGH, 0x1000, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_STATUS, &st), 0);
	assert_int_equal(st, DMA_TEST_STATUS_ERROR);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ERRNO, &st), 0);
	assert_int_equal(st, EFAULT);
	assert_int_equal(mem[(1 << 20)], 0x77);
	assert_int_equal(mem[(1 << 20) + 0xfff], 0x77);
	assert_int_equal(dma_test_write32(d, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_ERROR), 0);
	assert_int_equal(dma_test_start(d, HIGH, LOW, 0x1000, DMA_TEST_CTRL_IRQ), 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_ERRNO, &st), 0);
	assert_int_equal(st, EFAULT);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_BOUNCED, &bounced1), 0);
	assert_int_equal(bounced1, bounced0);
	/* The driver's side: IOVAs the library picks stay under the limit. */
	assert_int_equal(vfk_device_dma_limit(d, 0xffffffffull), 0);
	buf = aligned_alloc(4096, 1 << 16);
	assert_non_null(buf);
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf, 1 << 16, VFK_DMA_READ | VFK_DMA_WRITE,
						  &iova), 0);
	assert_true(iova + (1 << 16) - 1 <= 0xffffffffull);
	assert_int_equal(vfk_device_dma_unmap_vaddr(d, buf, 1 << 16), 0);
	free(buf);
	munmap(mem, 2 << 20);
	close(memfd);
	close(e);
}

static void test_client_coalescing(void **state)
{
	static const char *const args[] = { "dma-test", "-q", NULL };
	struct vfk_device *d = serve(args);
	int memfd = memfd_create("m", MFD_CLOEXEC), e = eventfd(0, EFD_CLOEXEC);
	struct vfk_dma_mapping pages[16];
	uint32_t b0, b1;
	uint8_t *mem;

	(void)state;
	assert_int_equal(ftruncate(memfd, 1 << 20), 0);
	mem = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	memset(mem, 0x3c, 0x10000);
	/* 16 pages mapped one by one, listed out of order: one window. */
	for (int i = 0; i < 16; i++) {
		int k = (i * 7) % 16;

		pages[i] = (struct vfk_dma_mapping){ LOW + k * 4096ull, 4096, mem + k * 4096,
						     memfd, k * 4096ull,
						     VFK_DMA_READ | VFK_DMA_WRITE };
	}
	assert_int_equal(vfk_device_dma_map_many(d, pages, 16), 1);
	enable(d);
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, &e), 0);
	/* A 64 KiB copy inside one window needs no bounce buffer; across
	 * 16 windows it would take one per piece. */
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_BOUNCED, &b0), 0);
	assert_int_equal(dma_test_start(d, LOW, LOW + 0x80000 - 0x10000, 0x10000, DMA_TEST_CTRL_IRQ),
			 0);
	assert_int_equal(dma_test_wait_irq(d, e, 5000), 0);
	assert_int_equal(dma_test_read32(d, DMA_TEST_REG_BOUNCED, &b1), 0);
	assert_int_equal(b0, b1);
	/* Windows that do not continue each other stay apart. */
	assert_int_equal(vfk_device_dma_unmap(d, LOW, 0x10000), 0);
	pages[1].fd_offset += 4096; /* breaks the file-offset continuity */
	assert_int_equal(vfk_device_dma_map_many(d, pages, 16), 3);
	/* A failing batch maps nothing. */
	assert_int_equal(vfk_device_dma_unmap(d, LOW, 0x10000), 0);
	pages[15].iova = LOW; /* overlaps */
	assert_true(vfk_device_dma_map_many(d, pages, 16) < 0);
	/* Page 9 (pages[15]) moved away: [0..8], [10..15] and itself. */
	pages[15].iova = LOW + 0x20000;
	pages[15].vaddr = mem + 0x20000;
	pages[15].fd_offset = 0x20000;
	pages[1].fd_offset -= 4096;
	assert_int_equal(vfk_device_dma_map_many(d, pages, 16), 3);
	munmap(mem, 1 << 20);
	close(memfd);
	close(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_subpage_4k, teardown),
		cmocka_unit_test_teardown(test_subpage_4k_default, teardown),
		cmocka_unit_test_teardown(test_subpage_16k, teardown),
		cmocka_unit_test_teardown(test_subpage_64k, teardown),
		cmocka_unit_test_teardown(test_subpage_64k_msix_mappable, teardown),
		cmocka_unit_test_teardown(test_dma_test_coverage_64k, teardown),
		cmocka_unit_test_teardown(test_dma_test_64k_msix_mappable, teardown),
		cmocka_unit_test_teardown(test_dma_test_64k_msix_relocated, teardown),
		cmocka_unit_test_teardown(test_msix_function_mask, teardown),
		cmocka_unit_test_teardown(test_msi_per_vector_mask, teardown),
		cmocka_unit_test_teardown(test_disabled_all_ones, teardown),
		cmocka_unit_test_teardown(test_d3hot_gates_decoding, teardown),
		cmocka_unit_test_teardown(test_keep_state, teardown),
		cmocka_unit_test_teardown(test_req_on_stop, teardown),
		cmocka_unit_test_teardown(test_req_grace_and_second_stop, teardown),
		cmocka_unit_test_teardown(test_err_reported, teardown),
		cmocka_unit_test_teardown(test_revoke_on_disable, teardown),
		cmocka_unit_test_teardown(test_af_flr, teardown),
		cmocka_unit_test_teardown(test_devmem_edges, teardown),
		cmocka_unit_test_teardown(test_devmem_backing_file, teardown),
		cmocka_unit_test_teardown(test_dma_mask_master_abort, teardown),
		cmocka_unit_test_teardown(test_client_coalescing, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
