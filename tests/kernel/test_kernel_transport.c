/* SPDX-License-Identifier: MIT */
/*
 * The kernel VFIO transports against a scripted kernel (fake_kernel.c):
 * the type1 and iommufd open sequences, region info with its capability
 * chain and argsz retry, the IOVA allocator and its cache, IRQs, reset,
 * binding through driver_override, and an injected EINVAL, ENOMEM, EBUSY
 * and EFAULT at every step of every open path, after which nothing the
 * fake kernel handed out may still be open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_body.h"
#include "fake_kernel.h"
#include "kernel_uapi.h"

static const int inject[] = { EINVAL, ENOMEM, EBUSY, EFAULT };

static struct vfk_client_opts opts_for(struct fake_kernel *k)
{
	struct vfk_client_opts o = { .version = VFK_CLIENT_OPTS_VERSION, .sys = &k->sys };

	return o;
}

static int open_fk(struct fake_kernel *k, unsigned flags, struct vfk_device **d)
{
	struct vfk_client_opts o = opts_for(k);

	return vfk_device_open_pci(FK_BDF, flags, &o, d);
}

struct body_log {
	int failed;
};

static void report(void *arg, bool ok, const char *what)
{
	struct body_log *l = arg;

	if (!ok) {
		l->failed++;
		print_error("body check failed: %s\n", what);
	}
}

static void ioctl_name(char *buf, size_t n, const char *kind, unsigned long req)
{
	snprintf(buf, n, "ioctl %s %#lx", kind, req);
}

/* ---- the open paths, then the shared body ---- */

static void test_type1_body(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	struct vfk_kernel_info ki;
	struct body_log log = { 0 };
	struct body_expect e = { 0x1234, 0x11e8, true };

	(void)state;
	fk_init(&k);
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_string_equal(vfk_device_transport(d), "vfio-type1");
	assert_int_equal(vfk_device_kernel_info(d, &ki), 0);
	assert_false(ki.iommufd);
	assert_int_equal(ki.group, FK_GROUP);
	assert_int_equal(ki.group_devices, 1);
	assert_true(ki.device_fd >= 0);
	assert_int_equal(ki.iova_pgsizes, 0x40201000);
	assert_int_equal(client_body_run(d, &e, report, &log), 0);
	assert_int_equal(log.failed, 0);
	/* The MSI-X set-up reached the kernel with our eventfds. */
	assert_true(k.set_irqs >= 2);
	assert_int_equal(k.resets, 1);
	assert_int_equal(k.nmaps, 0);
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_iommufd_body(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	struct vfk_kernel_info ki;
	struct vfk_iova_range r[16];
	struct body_log log = { 0 };
	struct body_expect e = { 0x1234, 0x11e8, true };

	(void)state;
	fk_init(&k);
	k.iommufd = true;
	/* More ranges than the first IOAS_IOVA_RANGES call has room for. */
	k.nr_ranges = 10;
	for (unsigned i = 0; i < 10; i++) {
		k.ranges[i].start = (uint64_t)(i + 1) << 32;
		k.ranges[i].last = ((uint64_t)(i + 1) << 32) + (1u << 30) - 1;
	}
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_string_equal(vfk_device_transport(d), "vfio-iommufd");
	assert_int_equal(vfk_device_kernel_info(d, &ki), 0);
	assert_true(ki.iommufd);
	assert_int_equal(vfk_device_iova_ranges(d, r, 16), 10);
	assert_int_equal(r[9].start, 10ull << 32);
	assert_int_equal(client_body_run(d, &e, report, &log), 0);
	assert_int_equal(log.failed, 0);
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);

	/* The same kernel, type1 forced. */
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_TYPE1, &d), 0);
	assert_string_equal(vfk_device_transport(d), "vfio-type1");
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_iommufd_forced_without_it(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d = NULL;

	(void)state;
	fk_init(&k);
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_IOMMUFD, &d), -ENODEV);
	assert_null(d);
	assert_int_equal(fk_open_fds(&k), 0);
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_IOMMUFD | VFK_PCI_OPEN_TYPE1, &d), -EINVAL);
	fk_fini(&k);
}

/* Debian's kernels: vfio-dev/vfioN in sysfs, but no cdev node and no
 * /dev/iommu.  Auto mode falls back to type1; forcing iommufd fails. */
static void test_cdev_sysfs_without_iommufd(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d = NULL;

	(void)state;
	fk_init(&k);
	k.sysfs_cdev = true;
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_string_equal(vfk_device_transport(d), "vfio-type1");
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	d = NULL;
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_IOMMUFD, &d), -ENOENT);
	assert_null(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);

	/* The cdev opens but /dev/iommu is missing: the device fd opened on
	 * the way is closed before type1 opens its own. */
	fk_init(&k);
	k.iommufd = true;
	k.fail_name = "open /dev/iommu";
	k.fail_err = ENOENT;
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_string_equal(vfk_device_transport(d), "vfio-type1");
	assert_true(fk_call_index(&k, "open /dev/vfio/devices/vfio3") >= 0);
	assert_int_equal(fk_open_fds(&k), 3); /* container, group, device */
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_bad_addresses(void **state)
{
	struct fake_kernel k;
	struct vfk_client_opts o;
	struct vfk_device *d = NULL;
	static const char *bad[] = { "", "0000:00:03", "../../etc", "0000:00:03.0/..",
				     "0000:100:03.0", "00:20.0", "0000:00:03.8" };

	(void)state;
	fk_init(&k);
	o = opts_for(&k);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(vfk_device_open_pci(bad[i], 0, &o, &d), -EINVAL);
	/* The short form is the same device. */
	assert_int_equal(vfk_device_open_pci("00:03.0", 0, &o, &d), 0);
	vfk_device_close(d);
	assert_int_equal(k.ncalls > 0, 1);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_region_caps(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	struct vfk_region_info ri;
	unsigned before;
	uint32_t v = 0xfeedc0de, got = 0;
	void *base;

	(void)state;
	fk_init(&k);
	assert_int_equal(open_fk(&k, 0, &d), 0);
	before = k.region_info_calls;
	assert_int_equal(vfk_region_get_info(d, 0, &ri), 0);
	/* Too small an argsz first: the kernel says how much, we ask again. */
	assert_int_equal(k.region_info_calls - before, 1);
	assert_true(ri.mappable);
	assert_int_equal(ri.nr_areas, 2);
	assert_int_equal(ri.areas[1].offset, 0x3000);
	assert_int_equal(ri.offset, 0);
	assert_false(ri.msix_mappable);
	assert_int_equal(vfk_region_get_info(d, 2, &ri), 0);
	assert_true(ri.msix_mappable);
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].size, 0x4000);
	assert_int_equal(ri.offset, 2ull << FK_REGION_SHIFT);
	assert_int_equal(vfk_region_get_info(d, 9, &ri), 0);
	assert_true(ri.has_type);
	assert_int_equal(ri.type, (1u << 31) | 0x8086);
	assert_int_equal(ri.subtype, 1);
	assert_false(ri.mappable);
	assert_int_equal(vfk_region_get_info(d, 4, &ri), 0);
	assert_false(ri.mappable);
	assert_int_equal(vfk_region_fd(d, 4), -ENODEV);
	/* The VGA region the kernel refuses (EINVAL) is absent, not an error;
	 * so is a BAR it reports with size 0. */
	assert_int_equal(vfk_region_get_info(d, 8, &ri), 0);
	assert_int_equal(ri.index, 8);
	assert_int_equal(ri.size, 0);
	assert_int_equal(ri.flags, 0);
	assert_false(ri.mappable);
	assert_int_equal(vfk_region_read(d, 8, 0, &got, 4), -EINVAL);
	assert_int_equal(vfk_region_get_info(d, 1, &ri), 0);
	assert_int_equal(ri.size, 0);
	assert_int_equal(vfk_region_fd(d, 2), k.fds[2].real);

	/* A write through the mapping is in the device, by pread. */
	assert_int_equal(vfk_region_map(d, 2, &base), 0);
	*(volatile uint32_t *)((uint8_t *)base + 0x10) = v;
	assert_int_equal(pread(k.device_real, &got, 4, (off_t)((2ull << FK_REGION_SHIFT) + 0x10)), 4);
	assert_int_equal(got, v);
	/* A write by message lands where the mapping shows it. */
	v = 0x12345678;
	vfk_region_unmap(d, 2);
	assert_int_equal(vfk_region_write(d, 2, 0x20, &v, 4), 0);
	assert_int_equal(vfk_region_map(d, 2, &base), 0);
	assert_int_equal(*(volatile uint32_t *)((uint8_t *)base + 0x20), v);
	/* The I/O BAR by pread/pwrite. */
	v = 0xabcd;
	assert_int_equal(vfk_region_write(d, 4, 4, &v, 2), 0);
	got = 0;
	assert_int_equal(vfk_region_read(d, 4, 4, &got, 2), 0);
	assert_int_equal(got, 0xabcd);
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_iova_allocator(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	uint8_t *buf = NULL;
	uint64_t a, b, c;
	unsigned maps;

	(void)state;
	fk_init(&k);
	k.nr_ranges = 2;
	k.ranges[0].start = 0;
	k.ranges[0].last = 0x4fff;
	k.ranges[1].start = 0x10000;
	k.ranges[1].last = 0x1ffff;
	k.pgsizes = 0x1000;
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_int_equal(vfk_device_iova_pgsize(d), 0x1000);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 64 * 4096), 0);

	/* IOVA 0 is never handed out: the first range gives 4 pages at 0x1000. */
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf, 4 * 4096, VFK_DMA_READ, &a), 0);
	assert_int_equal(a, 0x1000);
	assert_int_equal(k.last_map_vaddr, (uintptr_t)buf);
	assert_int_equal(k.last_map_flags, VFIO_DMA_MAP_FLAG_READ);
	/* An unaligned buffer is widened to pages and keeps its offset. */
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 8 * 4096 + 100, 5000,
						  VFK_DMA_READ | VFK_DMA_WRITE, &b), 0);
	assert_int_equal(b, 0x10000 + 100);
	assert_int_equal(k.last_map_size, 2 * 4096);
	/* Reuse without a system call. */
	maps = k.map_dma;
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 4096, 64, VFK_DMA_READ, &c), 0);
	assert_int_equal(c, 0x2000);
	assert_int_equal(k.map_dma, maps);
	/* The oldest containing mapping lacks WRITE: refused. */
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf, 64, VFK_DMA_WRITE, &c), -EACCES);
	/* No room anywhere for 16 pages. */
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 20 * 4096, 16 * 4096,
						  VFK_DMA_READ, &c), -ENOSPC);
	assert_int_equal(k.map_dma, maps);
	/* A chosen IOVA is avoided by later allocations. */
	{
		struct vfk_dma_mapping m = { .iova = 0x12000, .size = 0x2000,
					     .vaddr = buf + 40 * 4096, .fd = -1,
					     .prot = VFK_DMA_READ };

		assert_int_equal(vfk_device_dma_map(d, &m), 0);
	}
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 30 * 4096, 4096, VFK_DMA_READ, &c), 0);
	assert_int_equal(c, 0x14000);
	/* The limit keeps allocations below it. */
	assert_int_equal(vfk_device_dma_limit(d, 0x15fff), 0);
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 31 * 4096, 4096, VFK_DMA_READ, &c), 0);
	assert_int_equal(c, 0x15000);
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 32 * 4096, 4096, VFK_DMA_READ, &c),
			 -ENOSPC);
	assert_int_equal(vfk_device_dma_limit(d, UINT64_MAX), 0);
	/* References: two for buf+4096's mapping, so two unmaps. */
	maps = k.unmap_dma;
	assert_int_equal(vfk_device_dma_unmap_vaddr(d, buf + 4096, 64), 0);
	assert_int_equal(k.unmap_dma, maps);
	assert_int_equal(vfk_device_dma_unmap_vaddr(d, buf, 4 * 4096), 0);
	assert_int_equal(k.unmap_dma, maps + 1);
	assert_int_equal(vfk_device_dma_unmap_vaddr(d, buf, 4 * 4096), -ENOENT);
	/* The freed range is handed out again. */
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 50 * 4096, 4096, VFK_DMA_READ, &c), 0);
	assert_int_equal(c, 0x1000);
	/* A failing MAP_DMA leaves nothing behind. */
	{
		char name[112];

		ioctl_name(name, sizeof(name), "container", VFIO_IOMMU_MAP_DMA);
		k.fail_name = name;
		k.fail_err = ENOMEM;
		assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 52 * 4096, 4096, VFK_DMA_READ, &c),
				 -ENOMEM);
		k.fail_name = NULL;
		assert_int_equal(vfk_device_dma_unmap_vaddr(d, buf + 52 * 4096, 4096), -ENOENT);
		assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 52 * 4096, 4096, VFK_DMA_READ, &c), 0);
		assert_int_equal(c, 0x2000);
	}
	assert_int_equal(vfk_device_dma_unmap_all(d), 0);
	assert_int_equal(k.nmaps, 0);
	vfk_device_close(d);
	free(buf);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_unmap_all_without_extension(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	uint8_t *buf = NULL;
	uint64_t a;

	(void)state;
	fk_init(&k);
	k.unmap_all_ext = false;
	assert_int_equal(open_fk(&k, 0, &d), 0);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 8 * 4096), 0);
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf, 4096, VFK_DMA_READ, &a), 0);
	assert_int_equal(vfk_device_dma_map_vaddr(d, buf + 4 * 4096, 4096, VFK_DMA_READ, &a), 0);
	assert_int_equal(k.nmaps, 2);
	assert_int_equal(vfk_device_dma_unmap_all(d), 0);
	assert_int_equal(k.nmaps, 0);
	vfk_device_close(d);
	free(buf);
	fk_fini(&k);
}

static void test_irqs_and_reset_errors(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d;
	int fds[3];
	char name[112];

	(void)state;
	fk_init(&k);
	assert_int_equal(open_fk(&k, 0, &d), 0);
	for (int i = 0; i < 3; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	fds[1] = -1;
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 3, (int[]){ fds[0], -1, fds[2] }), 0);
	assert_int_equal(k.last_irq.index, VFK_PCI_MSIX);
	assert_int_equal(k.last_irq.count, 3);
	assert_int_equal(k.last_irq.flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER);
	assert_int_equal(k.last_irq.fds[0], fds[0]);
	assert_int_equal(k.last_irq.fds[1], -1);
	assert_int_equal(k.last_irq.fds[2], fds[2]);
	/* vfio-pci's "only N vectors" answer. */
	k.set_irqs_ret = 2;
	assert_int_equal(vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, fds), -ENOSPC);
	k.set_irqs_ret = 0;
	assert_int_equal(vfk_device_irq_unmask_eventfd(d, fds[0]), 0);
	assert_int_equal(k.last_irq.flags, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK);
	assert_int_equal(vfk_device_irq_mask(d, VFK_PCI_INTX, 0, 1, true), 0);
	assert_int_equal(k.last_irq.flags, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK);
	/* Errors of the kernel come back as they are. */
	ioctl_name(name, sizeof(name), "device", VFIO_DEVICE_SET_IRQS);
	k.fail_name = name;
	k.fail_err = EINVAL;
	assert_int_equal(vfk_device_irq_disable(d, VFK_PCI_MSIX), -EINVAL);
	ioctl_name(name, sizeof(name), "device", VFIO_DEVICE_RESET);
	k.fail_err = EBUSY;
	assert_int_equal(vfk_device_reset(d), -EBUSY);
	k.fail_name = "pread";
	k.fail_err = EFAULT;
	{
		uint32_t v;

		assert_int_equal(vfk_device_config_read(d, 0, &v, 4), -EFAULT);
	}
	k.fail_name = "mmap";
	k.fail_err = ENOMEM;
	{
		void *base;
		int live;

		assert_int_equal(vfk_region_map(d, 2, &base), -ENOMEM);
		k.fail_name = NULL;
		assert_int_equal(vfk_region_map(d, 2, &base), 0);
		/* The second area of BAR0 fails after the reservation and the
		 * first area are mapped: neither is left behind. */
		live = k.maps_live;
		k.fail_name = "mmap 0x3000";
		assert_int_equal(vfk_region_map(d, 0, &base), -ENOMEM);
		assert_int_equal(k.maps_live, live);
	}
	k.fail_name = NULL;
	close(fds[0]);
	close(fds[2]);
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	assert_int_equal(k.maps_live, 0);
	fk_fini(&k);
}

static void test_not_viable_and_busy(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d = NULL, *d2 = NULL;

	(void)state;
	fk_init(&k);
	k.viable = false;
	k.group_devices = 2;
	assert_int_equal(open_fk(&k, 0, &d), -EBUSY);
	assert_int_equal(fk_open_fds(&k), 0);
	k.viable = true;
	assert_int_equal(open_fk(&k, 0, &d), 0);
	/* A second opener of the group: the kernel says EBUSY. */
	assert_int_equal(open_fk(&k, 0, &d2), -EBUSY);
	assert_null(d2);
	assert_int_equal(fk_open_fds(&k), 3); /* d's container, group, device */
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

static void test_bind(void **state)
{
	struct fake_kernel k;
	struct vfk_device *d = NULL;
	struct vfk_kernel_info ki;

	(void)state;
	fk_init(&k);
	strcpy(k.driver, "nvme");
	/* Bound to a host driver: no group node for us. */
	assert_int_equal(open_fk(&k, 0, &d), -ENOENT);
	assert_int_equal(fk_open_fds(&k), 0);
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_BIND, &d), 0);
	assert_string_equal(k.driver, "vfio-pci");
	assert_string_equal(k.override, "vfio-pci");
	assert_true(fk_call_index(&k, "write /sys/bus/pci/devices/" FK_BDF "/driver/unbind") >= 0);
	assert_true(fk_call_index(&k, "write /sys/bus/pci/drivers_probe") >= 0);
	assert_int_equal(vfk_device_kernel_info(d, &ki), 0);
	assert_string_equal(ki.driver, "nvme");
	vfk_device_close(d);
	/* Already bound: nothing is written. */
	k.ncalls = 0;
	assert_int_equal(open_fk(&k, VFK_PCI_OPEN_BIND, &d), 0);
	assert_int_equal(fk_call_index(&k, "write"), -1);
	vfk_device_close(d);
	assert_int_equal(fk_open_fds(&k), 0);
	fk_fini(&k);
}

/* ---- errors at every step ---- */

/* Calls whose failure the open survives by design. */
static bool survivable(const char *name, bool iommufd)
{
	char chk[48];

	ioctl_name(chk, sizeof(chk), "container", VFIO_CHECK_EXTENSION);
	if (!strncmp(name, "close", 5) || !strncmp(name, chk, strlen(chk)))
		return true;
	if (!strncmp(name, "list /sys/kernel/iommu_groups/", 30))
		return true;
	/* The group is only informative on the iommufd path. */
	if (iommufd && !strncmp(name, "readlink /sys/bus/pci/devices/" FK_BDF "/iommu_group", 60))
		return true;
	return false;
}

static void each_step(bool iommufd, const char *driver, unsigned flags)
{
	struct fake_kernel k;
	struct vfk_device *d;
	unsigned total;
	int failures = 0;

	fk_init(&k);
	k.iommufd = iommufd;
	strcpy(k.driver, driver);
	assert_int_equal(open_fk(&k, flags, &d), 0);
	total = k.ncalls;
	vfk_device_close(d);
	fk_fini(&k);
	assert_true(total > 5);

	for (unsigned step = 0; step < total; step++) {
		for (unsigned e = 0; e < sizeof(inject) / sizeof(inject[0]); e++) {
			char name[112];
			int rc;

			fk_init(&k);
			k.iommufd = iommufd;
			strcpy(k.driver, driver);
			k.fail_at = (int)step;
			k.fail_err = inject[e];
			d = NULL;
			rc = open_fk(&k, flags, &d);
			snprintf(name, sizeof(name), "%s", k.calls[step].name);
			if (rc == 0) {
				if (!survivable(name, iommufd))
					print_error("step %u (%s) failing with %d did not fail the open\n",
						    step, name, inject[e]);
				assert_true(survivable(name, iommufd));
				vfk_device_close(d);
			} else {
				char chk[48];

				failures++;
				assert_null(d);
				ioctl_name(chk, sizeof(chk), "container", VFIO_CHECK_EXTENSION);
				/* A refused CHECK_EXTENSION is a missing type1,
				 * whatever the errno. */
				if (rc != -inject[e] && strncmp(name, chk, strlen(chk)))
					print_error("step %u (%s): injected %d, open returned %d\n",
						    step, name, -inject[e], rc);
				assert_true(rc == -inject[e] || !strncmp(name, chk, strlen(chk)));
			}
			if (fk_open_fds(&k))
				print_error("step %u (%s) errno %d: %u fd(s) leaked\n", step, name,
					    inject[e], fk_open_fds(&k));
			assert_int_equal(fk_open_fds(&k), 0);
			fk_fini(&k);
		}
	}
	assert_true(failures > 0);
}

static void test_errors_type1(void **state)
{
	(void)state;
	each_step(false, "vfio-pci", 0);
}

static void test_errors_iommufd(void **state)
{
	(void)state;
	each_step(true, "vfio-pci", 0);
}

static void test_errors_bind(void **state)
{
	(void)state;
	each_step(false, "nvme", VFK_PCI_OPEN_BIND);
}

static void test_opts_v1_has_no_sys(void **state)
{
	/* A version-1 caller's struct ends before `sys`: whatever lies there
	 * is not read, and the real system calls are used, which here find
	 * no such device. */
	struct fake_kernel k;
	struct vfk_client_opts o;
	struct vfk_device *d = NULL;
	int rc;

	(void)state;
	fk_init(&k);
	o = opts_for(&k);
	o.version = 1;
	rc = vfk_device_open_pci("0000:ff:1f.7", 0, &o, &d);
	assert_true(rc < 0);
	assert_null(d);
	assert_int_equal(k.ncalls, 0);
	fk_fini(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type1_body),
		cmocka_unit_test(test_iommufd_body),
		cmocka_unit_test(test_iommufd_forced_without_it),
		cmocka_unit_test(test_cdev_sysfs_without_iommufd),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_region_caps),
		cmocka_unit_test(test_iova_allocator),
		cmocka_unit_test(test_unmap_all_without_extension),
		cmocka_unit_test(test_irqs_and_reset_errors),
		cmocka_unit_test(test_not_viable_and_busy),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_errors_type1),
		cmocka_unit_test(test_errors_iommufd),
		cmocka_unit_test(test_errors_bind),
		cmocka_unit_test(test_opts_v1_has_no_sys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
