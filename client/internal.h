/* SPDX-License-Identifier: MIT */
/* Private state of the client library.  Not installed. */
#ifndef VFK_CLIENT_INTERNAL_H
#define VFK_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfiokit/client.h"
#include "vfiokit/proto.h"

#define CLIENT_MAX_AREAS 64u
#define CLIENT_MAX_REGIONS 64u  /* more than any PCI device has */
#define CLIENT_MAX_IRQS 16u

struct vfk_device;

/* What a transport fills in for one region. */
struct region_cache {
	bool valid;
	struct vfk_region_info info;
	struct vfk_area areas[CLIENT_MAX_AREAS];
	int map_fd;          /* fd to mmap (owned by the transport), or -1 */
	uint8_t *map_base;   /* vfk_region_map() result, or NULL */
	size_t map_len;
};

/*
 * A transport: how the generic handle reaches a device.  Versioned like
 * every ops table in vfiokit: members are only appended, and `version`
 * says which exist.  Each returns 0 or a negative errno.
 */
struct vfk_transport_ops {
	unsigned version; /* 1 */
	const char *name;
	int (*get_info)(struct vfk_device *d, struct vfk_device_info *out);
	/* Fill `rc` (info, areas, map_fd) for region `index`. */
	int (*get_region_info)(struct vfk_device *d, uint32_t index,
			       struct region_cache *rc);
	/* Message (or syscall) access to a region, without the mapping. */
	int (*region_rw)(struct vfk_device *d, bool write, bool posted,
			 uint32_t index, uint64_t off, void *buf, size_t count);
	int (*get_irq_info)(struct vfk_device *d, uint32_t index,
			    struct vfk_irq_info *out);
	/* One SET_IRQS: `fds` (count entries, -1 allowed) for DATA_EVENTFD,
	 * `bools` for DATA_BOOL. */
	int (*set_irqs)(struct vfk_device *d, uint32_t flags, uint32_t index,
			uint32_t start, uint32_t count, const int *fds,
			const uint8_t *bools);
	int (*dma_map)(struct vfk_device *d, const struct vfk_dma_mapping *m);
	int (*dma_unmap)(struct vfk_device *d, uint64_t iova, uint64_t size,
			 bool all);
	int (*reset)(struct vfk_device *d);
	int (*poll_fd)(struct vfk_device *d);
	int (*dispatch)(struct vfk_device *d);
	int (*session)(struct vfk_device *d, struct vfk_session_info *out);
	/* Release the transport's state (the generic handle unmaps first). */
	void (*close)(struct vfk_device *d);
	/* Version 2.  NULL: vfio-user's defaults (everything from 4 GiB,
	 * 4 KiB pages; no kernel info). */
	int (*iova_ranges)(struct vfk_device *d, struct vfk_iova_range *out,
			   unsigned max, unsigned *n, uint64_t *pgsizes);
	int (*kernel_info)(struct vfk_device *d, struct vfk_kernel_info *out);
};

/* One DMA mapping made through the handle (sorted by IOVA). */
struct dma_ent {
	uint64_t iova, size;
	uintptr_t vaddr;  /* page-aligned start; 0 for vfk_device_dma_map() */
	uint32_t prot;
	unsigned refs;    /* vfk_device_dma_map_vaddr() references */
	uint64_t seq;     /* creation order: the oldest containing wins */
};

#define CLIENT_MAX_IOVA_RANGES 64u

struct vfk_device {
	const struct vfk_transport_ops *ops;
	void *tp; /* transport private */
	struct vfk_client_opts opts;
	bool info_valid;
	struct vfk_device_info info;
	struct region_cache regions[CLIENT_MAX_REGIONS];
	struct vfk_client_stats stats;
	struct vfk_syscalls sys; /* opts.sys, gaps filled with the real ones */
	/* IOVA space and the mappings made through this handle. */
	bool iova_valid;
	unsigned nr_ranges;
	struct vfk_iova_range ranges[CLIENT_MAX_IOVA_RANGES];
	uint64_t pgsize;         /* smallest IOMMU page */
	uint64_t pgsizes;
	uint64_t dma_last;       /* vfk_device_dma_limit() */
	struct dma_ent *ents;
	size_t nents, capents;
	uint64_t next_seq;
};

/* System calls through the handle's table. */
#define SYS(d, call, ...) ((d)->sys.call((d)->sys.user, __VA_ARGS__))

void vfk_client_log(struct vfk_device *d, enum vfk_log_level level,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Allocate a handle around transport `ops` (tp set by the caller). */
int vfk_device_alloc(const struct vfk_transport_ops *ops,
		     const struct vfk_client_opts *opts, struct vfk_device **out);
void vfk_device_free(struct vfk_device *d);

/*
 * Decode a region-info capability chain (Linux's layout, shared by
 * vfio-user and the kernel) into `rc`: `info` is the whole reply of `len`
 * bytes whose first capability is at `cap_offset`.  Sets *has_sparse when
 * a SPARSE_MMAP capability gave the areas.  -EPROTO on a malformed chain.
 */
int vfk_region_parse_caps(struct vfk_device *d, struct region_cache *rc,
			  const void *info, size_t len, uint32_t cap_offset,
			  bool *has_sparse);

/*
 * A transport's last step for region `rc` (info and capabilities filled):
 * its mmap areas.  With `can_map` (MMAP flag, a size, an fd to map) they
 * are the SPARSE_MMAP areas if `has_sparse`, else the whole region; none
 * if any starts at a file offset mmap cannot take.  Sets info.nr_areas and
 * info.mappable; map_fd is left to the transport, which owns it.
 */
void vfk_region_set_areas(struct vfk_device *d, struct region_cache *rc, bool can_map,
			  bool has_sparse);

/* vfio_user.c */
int vfk_vfio_user_attach(struct vfk_device *d, int fd);

/* vfio_kernel.c */
int vfk_kernel_attach(struct vfk_device *d, const char *bdf, unsigned flags);

#endif
