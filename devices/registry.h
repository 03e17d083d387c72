/* SPDX-License-Identifier: MIT */
/* The device models vfiokit ships, by name, for the CLI and the tests. */
#ifndef VFK_DEVICES_REGISTRY_H
#define VFK_DEVICES_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfiokit/server.h"

/*
 * The options of `vfiokit serve`, one bit each, for saying which a model
 * takes: the CLI refuses the others with a clear error instead of letting
 * a model ignore them.  The device-wide ones (page size, decoding-off
 * policy, MSI-X layout, revoke-on-disable, DMA mask) are library features
 * that every emulated model gets through its vfk_dev_policy.
 */
enum vfk_model_opt {
	VFK_OPT_PAGE_SIZE = 1u << 0,
	VFK_OPT_DISABLED_ACCESS = 1u << 1,
	VFK_OPT_MSIX = 1u << 2,         /* only models with MSI-X */
	VFK_OPT_REVOKE = 1u << 3,
	VFK_OPT_DMA_MASK = 1u << 4,
	VFK_OPT_BACKING = 1u << 5,
	VFK_OPT_SIZE = 1u << 6,
	VFK_OPT_POLL_US = 1u << 7,
	VFK_OPT_TRAP_DOORBELLS = 1u << 8,
	VFK_OPT_DEVICE = 1u << 9,       /* --device, --iommu, --bind */
};
#define VFK_OPT_DEVICE_WIDE \
	(VFK_OPT_PAGE_SIZE | VFK_OPT_DISABLED_ACCESS | VFK_OPT_REVOKE | VFK_OPT_DMA_MASK)

/* The option values; a model reads only those it takes. */
struct vfk_model_opts {
	size_t page_size;     /* host page size to assume; 0: the real one */
	struct vfk_dev_policy policy; /* the device-wide choices */
	const char *backing;  /* backing file or block device, or NULL */
	uint64_t size;        /* bytes of a memory-backed store; 0: default */
	unsigned poll_us;     /* busy-poll window of I/O threads ... */
	bool poll_us_set;     /* ... when set; else the model's default */
	bool trap_doorbells;  /* doorbells by message, not a mapped page */
	/* Appended for passthrough. */
	const char *device;   /* PCI address of a kernel VFIO device, or NULL */
	unsigned open_flags;  /* VFK_PCI_OPEN_*: IOMMU path, binding */
	vfk_log_fn log;       /* for diagnostics before a server exists */
	void *log_user;       /* passed to `log` */
};

struct vfk_model {
	const char *name;     /* as given to `vfiokit serve` */
	const char *summary;  /* one line for --help */
	unsigned takes;       /* enum vfk_model_opt bits */
	int (*create)(const struct vfk_model_opts *o, struct vfk_dev **out);
	void (*destroy)(struct vfk_dev *dev);
};

/* The model called `name`, or NULL. */
const struct vfk_model *vfk_model_find(const char *name);
/* The i-th model, or NULL past the end. */
const struct vfk_model *vfk_model_at(size_t i);

#endif
