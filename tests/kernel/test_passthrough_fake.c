/* SPDX-License-Identifier: MIT */
/*
 * The passthrough model over the scripted kernel: a forked server
 * re-exports the fake VFIO device, and a real vfio-user client checks that
 * its config, BAR accesses (by message and through mappings), DMA windows
 * and resets reach the "kernel"; the device memfd is shared with this
 * process, so what the server did to the device is visible here.  Also the
 * refusals: a shared IOMMU group, a bridge; and a failure at every kernel
 * call of the create.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_kernel.h"
#include "passthrough/passthrough.h"
#include "testlib.h"

static struct fake_kernel fk;
static struct tsrv srv;

/* A failed assertion leaves the test early: the server must not outlive it. */
static int stop_server(void **state)
{
	(void)state;
	if (srv.pid > 0)
		tsrv_stop(&srv);
	srv.pid = 0;
	return 0;
}

static uint64_t reg(unsigned index, uint64_t off)
{
	return ((uint64_t)index << FK_REGION_SHIFT) + off;
}

static int setup(void *arg, struct vfk_dev **dev, struct vfk_server_opts *so)
{
	struct passthrough_opts o = { .device = FK_BDF, .sys = &fk.sys };

	(void)arg;
	(void)so;
	return passthrough_create(&o, dev);
}

static void teardown(void *arg, struct vfk_dev *dev)
{
	(void)arg;
	passthrough_destroy(dev);
	/* Whatever the model opened in the kernel, it closed. */
	if (fk_open_fds(&fk))
		exit(94);
	fk_fini(&fk);
}

static void test_reexport(void **state)
{
	struct vfk_device *d;
	struct vfk_region_info ri;
	struct tsrv *tp = &srv;
	uint32_t v = 0, io = 0x1; /* BAR4 register: I/O space */
	uint16_t ids[2], cmd;
	void *base;
	int err = 0, memfd;
	uint8_t *mem;

	(void)state;
	fk_init(&fk);
	assert_true(fk.device_real >= 0);
	assert_int_equal(pwrite(fk.device_real, &io, 4, (off_t)reg(7, 0x20)), 4);
	v = 0xc0ffee01;
	assert_int_equal(pwrite(fk.device_real, &v, 4, (off_t)reg(0, 0x1000)), 4);
	assert_int_equal(tsrv_start_fork(tp, setup, teardown, NULL), 0);
	d = tsrv_open(tp, &err);
	assert_non_null(d);

	assert_int_equal(vfk_device_config_read(d, 0, ids, 4), 0);
	assert_int_equal(ids[0], 0x1234);
	assert_int_equal(ids[1], 0x11e8);
	/* Enabling decoding reaches the real command register. */
	cmd = 0x3;
	assert_int_equal(vfk_device_config_write(d, 4, &cmd, 2), 0);
	cmd = 0;
	assert_int_equal(pread(fk.device_real, &cmd, 2, (off_t)reg(7, 4)), 2);
	assert_int_equal(cmd & 0x3, 0x3);

	/* BAR0: the kernel's sparse areas are what the client may map. */
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	assert_true(ri.mappable);
	assert_int_equal(ri.nr_areas, 2);
	assert_int_equal(ri.areas[0].offset, 0);
	assert_int_equal(ri.areas[1].offset, 0x3000);
	/* A trapped read is a pread of the device. */
	v = 0;
	assert_int_equal(vfk_region_read(d, 0, 0x1000, &v, 4), 0);
	assert_int_equal(v, 0xc0ffee01);
	v = 0x600d;
	assert_int_equal(vfk_region_write(d, 0, 0x2004, &v, 2), 0);
	v = 0;
	assert_int_equal(pread(fk.device_real, &v, 2, (off_t)reg(0, 0x2004)), 2);
	assert_int_equal(v, 0x600d);
	/* Through the mapping, straight into the device. */
	assert_int_equal(vfk_region_map(d, 0, &base), 0);
	*(volatile uint32_t *)((uint8_t *)base + 0x3010) = 0xabad1dea;
	v = 0;
	assert_int_equal(pread(fk.device_real, &v, 4, (off_t)reg(0, 0x3010)), 4);
	assert_int_equal(v, 0xabad1dea);
	/* BAR4 is I/O, by message only. */
	assert_int_equal(vfk_region_get_info(d, 4, &ri), 0);
	assert_false(ri.mappable);
	v = 0x77;
	assert_int_equal(vfk_region_write(d, 4, 8, &v, 1), 0);
	v = 0;
	assert_int_equal(pread(fk.device_real, &v, 1, (off_t)reg(4, 8)), 1);
	assert_int_equal(v, 0x77);

	/* DMA: a window with an fd goes to the IOMMU, one without is refused. */
	memfd = memfd_create("pt-dma", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, 0x4000), 0);
	mem = mmap(NULL, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(mem != MAP_FAILED);
	{
		struct vfk_dma_mapping with = { .iova = 0x100000, .size = 0x4000, .vaddr = mem,
						.fd = memfd, .prot = VFK_DMA_READ | VFK_DMA_WRITE };
		struct vfk_dma_mapping without = { .iova = 0x200000, .size = 0x1000, .vaddr = mem,
						   .fd = -1, .prot = VFK_DMA_READ };

		assert_int_equal(vfk_device_dma_map(d, &with), 0);
		assert_int_equal(vfk_device_dma_map(d, &without), -EPERM);
		/* Outside the kernel's IOVA ranges: the kernel refuses, and
		 * so does the server. */
		with.iova = 0xfee00000;
		with.size = 0x1000;
		assert_int_equal(vfk_device_dma_map(d, &with), -EINVAL);
		assert_int_equal(vfk_device_dma_unmap(d, 0x100000, 0x4000), 0);
	}
	assert_int_equal(vfk_device_reset(d), 0);
	vfk_device_close(d);
	munmap(mem, 0x4000);
	close(memfd);
	assert_int_equal(tsrv_stop(tp), 0);
	tp->pid = 0;
	fk_fini(&fk);
}

static void test_refusals(void **state)
{
	struct passthrough_opts o = { .device = FK_BDF };
	struct vfk_dev *dev = NULL;
	uint8_t bridge = 1;

	(void)state;
	fk_init(&fk);
	o.sys = &fk.sys;
	fk.group_devices = 2;
	assert_int_equal(passthrough_create(&o, &dev), -EBUSY);
	assert_null(dev);
	assert_int_equal(fk_open_fds(&fk), 0);
	fk.group_devices = 1;
	assert_int_equal(pwrite(fk.device_real, &bridge, 1, (off_t)reg(7, 0x0e)), 1);
	assert_int_equal(passthrough_create(&o, &dev), -ENOTSUP);
	assert_null(dev);
	assert_int_equal(fk_open_fds(&fk), 0);
	bridge = 0;
	assert_int_equal(pwrite(fk.device_real, &bridge, 1, (off_t)reg(7, 0x0e)), 1);
	assert_int_equal(passthrough_create(&o, &dev), 0);
	passthrough_destroy(dev);
	assert_int_equal(fk_open_fds(&fk), 0);
	o.device = NULL;
	assert_int_equal(passthrough_create(&o, &dev), -EINVAL);
	fk_fini(&fk);
}

/* Every kernel call of a create failing in turn: whatever the create does
 * about it, nothing it opened stays open. */
static void test_errors_each_step(void **state)
{
	struct passthrough_opts o = { .device = FK_BDF };
	struct vfk_dev *dev = NULL;
	unsigned total;
	int failures = 0;

	(void)state;
	fk_init(&fk);
	o.sys = &fk.sys;
	assert_int_equal(passthrough_create(&o, &dev), 0);
	passthrough_destroy(dev);
	total = fk.ncalls;
	fk_fini(&fk);
	for (unsigned step = 0; step < total; step++) {
		int rc;

		fk_init(&fk);
		fk.fail_at = (int)step;
		fk.fail_err = EIO;
		dev = NULL;
		rc = passthrough_create(&o, &dev);
		if (rc == 0)
			passthrough_destroy(dev);
		else
			failures++;
		if (fk_open_fds(&fk))
			print_error("step %u (%s): %u fd(s) leaked\n", step, fk.calls[step].name,
				    fk_open_fds(&fk));
		assert_int_equal(fk_open_fds(&fk), 0);
		assert_int_equal(fk.maps_live, 0);
		fk_fini(&fk);
	}
	assert_true(failures > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_reexport, stop_server),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_errors_each_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
