/* SPDX-License-Identifier: MIT */
/* The device models vfiokit ships, by name, for the CLI and the tests. */
#ifndef VFK_DEVICES_REGISTRY_H
#define VFK_DEVICES_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfiokit/server.h"

/* Options every model understands (each ignores what does not apply). */
struct vfk_model_opts {
	size_t page_size;     /* host page size to assume; 0: the real one */
	enum vfk_disabled_access disabled_access; /* decoding-off policy */
	const char *backing;  /* backing file or block device, or NULL */
	bool msix_mappable;   /* offer MSI-X BARs whole (MSIX_MAPPABLE) */
	bool swap_on_disable; /* stop honouring mappings while decoding is off */
	unsigned dma_mask_bits; /* the device's DMA address width; 0: 64 */
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
	int (*create)(const struct vfk_model_opts *o, struct vfk_dev **out);
	void (*destroy)(struct vfk_dev *dev);
};

/* The model called `name`, or NULL. */
const struct vfk_model *vfk_model_find(const char *name);
/* The i-th model, or NULL past the end. */
const struct vfk_model *vfk_model_at(size_t i);

#endif
