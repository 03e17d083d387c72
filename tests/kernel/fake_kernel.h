/* SPDX-License-Identifier: MIT */
/*
 * A scripted Linux kernel behind struct vfk_syscalls: sysfs for one PCI
 * function, /dev/vfio/vfio and its group (type1), or /dev/iommu and the
 * device cdev (iommufd), and the device's VFIO ioctls, answered as
 * vfio-pci answers them.  Any call can be made to fail with a chosen errno,
 * and every fd it hands out is tracked, so a test sees leaks.
 *
 * Device fds are memfds: region r lives at file offset r << 40 (as
 * vfio-pci places them), so pread/pwrite and mmap of BARs work for real.
 */
#ifndef VFK_FAKE_KERNEL_H
#define VFK_FAKE_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "vfiokit/vfiokit.h"

#define FK_BDF "0000:00:03.0"
#define FK_GROUP 7
#define FK_MAX_FDS 32
#define FK_MAX_CALLS 512
#define FK_REGION_SHIFT 40

enum fk_kind { FK_FREE, FK_CONTAINER, FK_GROUP_FD, FK_DEVICE, FK_IOMMUFD, FK_SYSFS };

struct fk_fd {
	enum fk_kind kind;
	int real;          /* the real fd handed out */
	char path[128];
};

struct fk_call {
	char name[112];    /* "open /dev/vfio/vfio", "ioctl GET_DEVICE_FD", ... */
};

struct fake_kernel {
	struct vfk_syscalls sys;
	bool iommufd;          /* offer /dev/iommu and the vfio-dev cdev */
	bool sysfs_cdev;       /* list vfio-dev/vfio3 even without iommufd
				* (vfio-pci always registers it) */
	char driver[32];       /* bound driver ("" = none) */
	char override[32];     /* driver_override */
	bool viable;           /* group status */
	unsigned group_devices;
	bool unmap_all_ext;
	unsigned nr_ranges;    /* IOVA ranges reported */
	struct { uint64_t start, last; } ranges[16];
	uint64_t pgsizes;
	int set_irqs_ret;      /* > 0: "only this many vectors" */

	/* Injection: the call with index `fail_at` fails with `fail_err`. */
	int fail_at;
	int fail_err;
	const char *fail_name; /* or: every call whose name starts with this */

	/* What happened. */
	unsigned ncalls;
	struct fk_call calls[FK_MAX_CALLS];
	struct fk_fd fds[FK_MAX_FDS];
	unsigned map_dma, unmap_dma, set_irqs, resets, region_info_calls;
	uint64_t last_map_iova, last_map_size, last_map_vaddr;
	uint32_t last_map_flags;
	struct vfio_like_irq {
		uint32_t flags, index, start, count;
		int fds[8];
	} last_irq;
	struct { uint64_t iova, size; } maps[64];
	unsigned nmaps;
	int maps_live;         /* mmaps made, less munmaps (MAP_FIXED ones
				* only replace part of another): leaks show */
	char written[256];     /* last sysfs write: "path=text" */
	int device_real;       /* the memfd behind the device fd */
};

/* A fresh kernel in its default state (type1, vfio-pci bound, viable). */
void fk_init(struct fake_kernel *k);
/* Close what is still open (the test's own cleanup). */
void fk_fini(struct fake_kernel *k);
/* Fds handed out and not closed. */
unsigned fk_open_fds(const struct fake_kernel *k);
/* Index of the first call whose name starts with `prefix`, or -1. */
int fk_call_index(const struct fake_kernel *k, const char *prefix);

#endif
