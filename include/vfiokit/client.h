/* SPDX-License-Identifier: MIT */
/*
 * vfiokit/client.h: one device API for VMMs and userspace drivers.
 *
 * A `struct vfk_device` is a PCI function reached through a transport: a
 * vfio-user socket, or the kernel's VFIO (type1 or iommufd), behind the
 * same calls.  The handle validates everything the other side says before
 * using it, and never waits longer than its timeout.
 *
 * Conventions (see common.h): 0 or a negative errno; opaque handle; silent
 * unless a log callback is set.  A handle is used by one thread at a time.
 *
 * Server requests.  A vfio-user server may read or write client memory that
 * has no fd (DMA_READ/DMA_WRITE).  The handle answers such requests while
 * it waits for any reply; between calls, poll vfk_device_fd() and call
 * vfk_device_dispatch() so they are answered promptly.
 */
#ifndef VFIOKIT_CLIENT_H
#define VFIOKIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vfk_device;
struct vfk_syscalls;

#define VFK_CLIENT_OPTS_VERSION 2

/* Client options; zero-initialise and set what you need. */
struct vfk_client_opts {
	unsigned version;           /* VFK_CLIENT_OPTS_VERSION */
	vfk_log_fn log;             /* NULL: silent */
	void *log_user;             /* passed to `log` */
	enum vfk_log_level log_level; /* most verbose level passed; 0 = INFO */
	int timeout_ms;             /* per request; 0 = 5000 */
	uint32_t max_data_xfer;     /* data per message we accept; 0 = 1 MiB */
	unsigned max_msg_fds;       /* fds per message we accept; 0 = 16 */
	/* Version 2. */
	const struct vfk_syscalls *sys; /* system calls of the kernel
					 * transports and of region mappings;
					 * NULL = the real ones */
};

/* Connect to a vfio-user server at `path` and negotiate.  `opts` may be
 * NULL.  On failure nothing is left open. */
int vfk_device_open_socket(const char *path, const struct vfk_client_opts *opts,
			   struct vfk_device **out);
/* Same over an already connected AF_UNIX stream socket; takes ownership of
 * `fd` on success only. */
int vfk_device_open_fd(int fd, const struct vfk_client_opts *opts,
		       struct vfk_device **out);
/*
 * Open PCI function `bdf` ("0000:00:03.0" or "00:03.0") through the kernel's
 * VFIO: the iommufd path (/dev/iommu and /dev/vfio/devices/vfioN) when the
 * kernel has it, else the type1 container and group (/dev/vfio/vfio,
 * /dev/vfio/N, VFIO_TYPE1v2_IOMMU).  `flags` may force one
 * (VFK_PCI_OPEN_TYPE1, VFK_PCI_OPEN_IOMMUFD) and may ask for the function
 * to be bound to vfio-pci first through sysfs driver_override
 * (VFK_PCI_OPEN_BIND), unbinding the driver it has.  A group that is not
 * viable (another device in it is bound to a host driver) gives -EBUSY.
 * On failure nothing is left open.
 */
#define VFK_PCI_OPEN_TYPE1 0x1u
#define VFK_PCI_OPEN_IOMMUFD 0x2u
#define VFK_PCI_OPEN_BIND 0x4u
int vfk_device_open_pci(const char *bdf, unsigned flags,
			const struct vfk_client_opts *opts,
			struct vfk_device **out);

/* Unmap every region mapping, close every fd, free the handle.  DMA
 * mappings the server holds are released by the disconnect. */
void vfk_device_close(struct vfk_device *dev);

/* The transport's name: "vfio-user", "vfio-type1" or "vfio-iommufd". */
const char *vfk_device_transport(const struct vfk_device *dev);

/* What VERSION agreed on (vfio-user only; zeros otherwise). */
struct vfk_session_info {
	uint16_t major, minor;       /* protocol version in use */
	uint32_t server_max_data_xfer; /* data per message the server accepts */
	uint32_t server_max_msg_fds; /* fds per message the server accepts */
	uint32_t server_max_dma_maps; /* DMA windows the server allows */
	uint64_t server_pgsizes;     /* DMA page sizes the server supports */
	bool write_multiple;         /* REGION_WRITE_MULTI accepted */
};
int vfk_device_session(struct vfk_device *dev, struct vfk_session_info *out);

/* ---- device, regions ---------------------------------------------------- */

/* DEVICE_GET_INFO. */
struct vfk_device_info {
	uint32_t flags;       /* VFK_DEVICE_FLAGS_* (proto.h) */
	uint32_t num_regions; /* >= 9 for a PCI device */
	uint32_t num_irqs;    /* >= 5 for a PCI device */
};
int vfk_device_get_info(struct vfk_device *dev, struct vfk_device_info *out);

/* A range of a region. */
struct vfk_area {
	uint64_t offset;
	uint64_t size;
};

/* DEVICE_GET_REGION_INFO, with its capabilities decoded. */
struct vfk_region_info {
	uint32_t index;
	uint32_t flags;       /* VFK_REGION_FLAG_* (proto.h) */
	uint64_t size;        /* bytes; 0 for an absent region */
	uint64_t offset;      /* mmap offset in the region's fd */
	bool mappable;        /* MMAP flag and an fd to map came with it */
	unsigned nr_areas;    /* mmap areas (whole region if no sparse cap) */
	const struct vfk_area *areas; /* owned by the handle, valid until close */
	bool has_type;        /* a REGION_CAP_TYPE was present */
	uint32_t type, subtype;
	bool msix_mappable;   /* REGION_CAP_MSIX_MAPPABLE was present */
	/* vfiokit servers add two capabilities (proto.h). */
	bool has_layout;      /* VFK_REGION_CAP_VFK_LAYOUT was present */
	uint64_t fd_offset;   /* the BAR's first byte in the region's fd */
	uint32_t page_size;   /* the host page size the server assumed */
	uint32_t in_page_offset; /* fd_offset within its page */
	uint32_t layout_flags; /* VFK_LAYOUT_* */
	bool has_attrs;       /* VFK_REGION_CAP_VFK_ATTRS was present */
	uint32_t attrs;       /* VFK_ATTR_*: prefetchable, safe mapping
			       * attributes, decoding-off behaviour */
	uint64_t backed_size; /* bytes backed by memory (device-memory BARs) */
};
/* Query (once; later calls return the cached answer). */
int vfk_region_get_info(struct vfk_device *dev, uint32_t index,
			struct vfk_region_info *out);

/*
 * Read or write `count` bytes of region `index` at `offset`.  Bytes inside
 * a mapped area (vfk_region_map()) are accessed through the mapping with
 * accesses of the natural width; the rest by messages, split to the
 * server's max_data_xfer.
 */
int vfk_region_read(struct vfk_device *dev, uint32_t index, uint64_t offset,
		    void *buf, size_t count);
int vfk_region_write(struct vfk_device *dev, uint32_t index, uint64_t offset,
		     const void *buf, size_t count);
/* As vfk_region_write(), but asks for no reply (a posted write); errors
 * the server meets are then only in its log. */
int vfk_region_write_posted(struct vfk_device *dev, uint32_t index,
			    uint64_t offset, const void *buf, size_t count);

/*
 * Map the mmap areas of a region.  `*base` receives an address such that
 * base + off is byte `off` of the region for every byte inside an area; the
 * rest of [base, base + size) is reserved and inaccessible.  A sub-page
 * area is mapped as its whole page.  -ENODEV if the region has no area.
 * The mapping lasts until vfk_region_unmap() or close.
 */
int vfk_region_map(struct vfk_device *dev, uint32_t index, void **base);
void vfk_region_unmap(struct vfk_device *dev, uint32_t index);

/*
 * The fd region `index` is mapped from (at info.offset + area offset), or
 * -ENODEV if it has none.  Borrowed: valid until close.  For the kernel
 * transports it is the device fd itself (a passthrough server offers it to
 * its own clients).
 */
int vfk_region_fd(struct vfk_device *dev, uint32_t index);

/* Config space (region 7) shortcuts. */
int vfk_device_config_read(struct vfk_device *dev, uint32_t offset, void *buf,
			   size_t count);
int vfk_device_config_write(struct vfk_device *dev, uint32_t offset,
			    const void *buf, size_t count);

/* ---- interrupts --------------------------------------------------------- */

/* DEVICE_GET_IRQ_INFO. */
struct vfk_irq_info {
	uint32_t flags; /* VFK_IRQ_INFO_* (proto.h) */
	uint32_t count;
};
int vfk_device_irq_info(struct vfk_device *dev, uint32_t index,
		     struct vfk_irq_info *out);

/*
 * Bind eventfds to vectors [start, start+count) of IRQ `index` (enabling
 * the type); an fd of -1 unbinds that vector.  Split into as many messages
 * as the server's max_msg_fds requires.  The fds stay the caller's.
 */
int vfk_device_irq_set_eventfds(struct vfk_device *dev, uint32_t index, uint32_t start,
			 uint32_t count, const int *fds);
/* Disable IRQ type `index` entirely (TRIGGER | DATA_NONE, count 0). */
int vfk_device_irq_disable(struct vfk_device *dev, uint32_t index);
/* Mask or unmask vectors [start, start+count) (ACTION_MASK/UNMASK). */
int vfk_device_irq_mask(struct vfk_device *dev, uint32_t index, uint32_t start,
		 uint32_t count, bool mask);
/* Fire vectors from the client side (TRIGGER | DATA_NONE), for tests. */
int vfk_device_irq_trigger(struct vfk_device *dev, uint32_t index, uint32_t start,
		    uint32_t count);
/* INTx unmask eventfd (vfio-pci's resampler): signalling `fd` unmasks
 * INTx on the server.  -1 removes it. */
int vfk_device_irq_unmask_eventfd(struct vfk_device *dev, int fd);

/* ---- DMA ---------------------------------------------------------------- */

/* Memory the device may reach at [iova, iova+size). */
struct vfk_dma_mapping {
	uint64_t iova;
	uint64_t size;
	void *vaddr;        /* where the memory is in this process; NULL only
			     * with an fd, then the server's DMA messages to
			     * it are refused */
	int fd;             /* fd the server may mmap (memfd, file), or -1:
			     * the server reaches the memory by messages */
	uint64_t fd_offset; /* offset of iova's byte in `fd` */
	uint32_t prot;      /* VFK_DMA_READ | VFK_DMA_WRITE (proto.h) */
};

/* DMA_MAP.  The memory must stay valid until unmapped.  The fd stays the
 * caller's. */
int vfk_device_dma_map(struct vfk_device *dev, const struct vfk_dma_mapping *m);
/*
 * DMA_MAP a batch, coalescing entries that continue one another (adjacent
 * IOVAs, same protection, same fd at consecutive offsets or no fd, and
 * consecutive vaddrs) into one window each: fewer messages, and fewer of
 * the server's max_dma_maps windows, for drivers that map page by page.
 * Returns the number of windows sent, or a negative errno after undoing
 * what this call mapped.  A coalesced window is unmapped as a whole
 * (vfk_device_dma_unmap() over its range); merging into windows that are
 * already live would need an unmap and a remap, which could fail DMA in
 * flight, so only a batch is coalesced.
 */
int vfk_device_dma_map_many(struct vfk_device *dev,
			    const struct vfk_dma_mapping *m, unsigned n);
/* DMA_UNMAP of windows inside [iova, iova+size) (whole windows only). */
int vfk_device_dma_unmap(struct vfk_device *dev, uint64_t iova, uint64_t size);
/* DMA_UNMAP of everything. */
int vfk_device_dma_unmap_all(struct vfk_device *dev);

/*
 * IOVA allocation.  The handle knows which IOVAs the IOMMU accepts: for the
 * kernel transports the ranges the kernel reports (type1's IOVA-range
 * capability, iommufd's IOAS_IOVA_RANGES), for vfio-user everything from
 * 4 GiB up (the protocol has no way to say; the low 4 GiB are left to
 * callers that choose their own IOVAs, as a VMM does with guest addresses).
 */
struct vfk_iova_range {
	uint64_t start; /* first IOVA */
	uint64_t last;  /* inclusive */
};
/* Copy up to `max` ranges; returns how many there are (may be > max). */
int vfk_device_iova_ranges(struct vfk_device *dev, struct vfk_iova_range *out,
			   unsigned max);
/* Smallest IOMMU page size (the alignment of every mapping). */
uint64_t vfk_device_iova_pgsize(struct vfk_device *dev);
/* Allocate only IOVAs <= `last` from now on, for a device whose DMA
 * addresses are narrower than 64 bits.  UINT64_MAX: no limit (default). */
int vfk_device_dma_limit(struct vfk_device *dev, uint64_t last);

/*
 * Map `size` bytes of our memory at `vaddr` for DMA at an IOVA the handle
 * chooses from the ranges above; `*iova` receives the address of `vaddr`'s
 * byte.  The range is widened to whole IOMMU pages, and large ranges get
 * IOVAs congruent to their addresses modulo the largest IOMMU page that
 * fits, so the IOMMU can use large pages.  A range that lies inside one
 * mapped before reuses it without a system call or a message (a reference
 * is taken), so a driver may map each buffer per I/O cheaply; of several
 * such mappings the oldest is used, and if it lacks part of `prot` the call
 * fails with -EACCES (unmap it, or map with both directions).  vfio-user
 * servers reach such memory by DMA_READ/DMA_WRITE messages (there is no
 * fd).  -ENOSPC when no IOVA range has room.  IOVAs chosen with
 * vfk_device_dma_map() are avoided; vfk_device_dma_unmap() and
 * vfk_device_dma_unmap_all() drop these mappings too, references or not.
 */
int vfk_device_dma_map_vaddr(struct vfk_device *dev, void *vaddr, size_t size,
			     uint32_t prot, uint64_t *iova);
/*
 * Drop a reference vfk_device_dma_map_vaddr() took for the same range; the
 * last one unmaps.  The oldest mapping containing the range is the one
 * the map call chose, and stays so while the reference lives.  -ENOENT if
 * no mapping contains it.
 */
int vfk_device_dma_unmap_vaddr(struct vfk_device *dev, void *vaddr, size_t size);

/* ---- misc --------------------------------------------------------------- */

/* DEVICE_RESET. */
int vfk_device_reset(struct vfk_device *dev);

/* Fd to poll (readable) for server requests; see the header comment. */
int vfk_device_fd(struct vfk_device *dev);
/* Answer the server requests already received, without waiting.  0, or a
 * negative errno if the connection failed. */
int vfk_device_dispatch(struct vfk_device *dev);

/* Counters. */
struct vfk_client_stats {
	uint64_t requests;     /* commands sent */
	uint64_t dma_served;   /* DMA_READ/DMA_WRITE requests answered */
	uint64_t dma_refused;  /* ... answered with an error */
};
void vfk_device_get_stats(struct vfk_device *dev, struct vfk_client_stats *out);

/* ---- kernel transports ---------------------------------------------------- */

/* What the kernel transports opened; -ENOTSUP (and zeros, group and
 * device_fd -1) for vfio-user. */
struct vfk_kernel_info {
	bool iommufd;          /* iommufd path (else type1 container/group) */
	int group;             /* IOMMU group number, -1 if unknown */
	unsigned group_devices; /* devices in that group (this one included) */
	int device_fd;         /* the VFIO device fd (borrowed), or -1 */
	uint64_t iova_pgsizes; /* IOMMU page sizes */
	char driver[32];       /* driver bound before a VFK_PCI_OPEN_BIND, or "" */
};
/* Fill `out` for a handle from vfk_device_open_pci(). */
int vfk_device_kernel_info(struct vfk_device *dev, struct vfk_kernel_info *out);

/*
 * The system calls a kernel transport makes, all of them, so that a test
 * can play the kernel.  Each returns what the call returns on success and
 * a negative errno on failure (never -1 with errno).  Versioned: members
 * are only appended.  A NULL member is the real call.  The handle copies the
 * table when it opens; `user` must outlive the handle.
 * vfk_syscalls_default() is the real table.
 */
#define VFK_SYSCALLS_VERSION 1
struct vfk_syscalls {
	unsigned version; /* VFK_SYSCALLS_VERSION; 0: the table is ignored */
	void *user; /* passed to every call */
	int (*open)(void *user, const char *path, int flags);
	int (*close)(void *user, int fd);
	int (*ioctl)(void *user, int fd, unsigned long request, void *arg);
	long (*pread)(void *user, int fd, void *buf, size_t count, uint64_t offset);
	long (*pwrite)(void *user, int fd, const void *buf, size_t count,
		       uint64_t offset);
	/* mmap: 0 and `*out`, or a negative errno. */
	int (*mmap)(void *user, void *addr, size_t len, int prot, int flags,
		    int fd, uint64_t offset, void **out);
	int (*munmap)(void *user, void *addr, size_t len);
	long (*read)(void *user, int fd, void *buf, size_t count);
	long (*write)(void *user, int fd, const void *buf, size_t count);
	/* readlink: the target's length (not NUL-terminated), as readlink(2). */
	long (*readlink)(void *user, const char *path, char *buf, size_t size);
	/* Call `fn` for each entry of directory `path` but "." and "..";
	 * a non-zero return from `fn` stops and is returned. */
	int (*list_dir)(void *user, const char *path,
			int (*fn)(void *arg, const char *name), void *arg);
	/* Sleep `ms` milliseconds (waiting for sysfs to settle). */
	void (*sleep_ms)(void *user, unsigned ms);
};
const struct vfk_syscalls *vfk_syscalls_default(void);

#ifdef __cplusplus
}
#endif
#endif
