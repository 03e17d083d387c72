/* SPDX-License-Identifier: MIT */
/*
 * vfiokit/proto.h: the vfio-user wire format.
 *
 * Pure encode, decode and validate functions: no I/O, no allocation except
 * in the JSON handling of VERSION, no global state.  Both the server and the
 * client use this module, and the fuzzers drive it directly.
 *
 * The protocol is host-endian (the spec leaves cross-endian to a future
 * version), every field is naturally aligned, and the payload structures
 * below are laid out exactly as on the wire (checked by static assertions).
 * Decoders copy the fixed part of a payload into one of these structures
 * with memcpy, so a buffer of any alignment can be decoded.
 *
 * Every decoder validates lengths, counts, offsets and flags before its
 * output is used and returns 0 or a negative errno (see common.h):
 *   -EINVAL  malformed: wrong size, unknown flag, reserved field set;
 *   -E2BIG   a count is over a negotiated or absolute limit;
 *   -EOVERFLOW an offset plus a size wraps around 2^64.
 */
#ifndef VFIOKIT_PROTO_H
#define VFIOKIT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Message header ------------------------------------------------- */

#define VFK_HDR_SIZE 16u

/* Command numbers (the header's `cmd` field). */
enum vfk_cmd {
	VFK_CMD_VERSION = 1,
	VFK_CMD_DMA_MAP = 2,
	VFK_CMD_DMA_UNMAP = 3,
	VFK_CMD_DEVICE_GET_INFO = 4,
	VFK_CMD_DEVICE_GET_REGION_INFO = 5,
	VFK_CMD_DEVICE_GET_REGION_IO_FDS = 6,
	VFK_CMD_DEVICE_GET_IRQ_INFO = 7,
	VFK_CMD_DEVICE_SET_IRQS = 8,
	VFK_CMD_REGION_READ = 9,
	VFK_CMD_REGION_WRITE = 10,
	VFK_CMD_DMA_READ = 11,
	VFK_CMD_DMA_WRITE = 12,
	VFK_CMD_DEVICE_RESET = 13,
	/* 14 was DIRTY_PAGES in drafts of the spec; it is not a command now */
	VFK_CMD_REGION_WRITE_MULTI = 15,
	VFK_CMD_DEVICE_FEATURE = 16,
	VFK_CMD_MIG_DATA_READ = 17,
	VFK_CMD_MIG_DATA_WRITE = 18,
	VFK_CMD_MAX = 19, /* one past the highest command number */
};

/* Header flag bits. */
#define VFK_F_TYPE_MASK 0x0fu
#define VFK_F_TYPE_COMMAND 0x00u
#define VFK_F_TYPE_REPLY 0x01u
#define VFK_F_NO_REPLY 0x10u /* command only: the sender wants no reply */
#define VFK_F_ERROR 0x20u    /* reply only: `error` holds an errno */
#define VFK_F_KNOWN (VFK_F_TYPE_MASK | VFK_F_NO_REPLY | VFK_F_ERROR)

/* The 16-byte header that starts every message. */
struct vfk_hdr {
	uint16_t id;    /* chosen by the sender of a command, echoed in its reply */
	uint16_t cmd;   /* enum vfk_cmd */
	uint32_t size;  /* whole message, header included */
	uint32_t flags; /* VFK_F_* */
	uint32_t error; /* errno of a failed command, in replies with VFK_F_ERROR */
};

/*
 * Decode and validate a header from the first 16 bytes of `buf`.
 * Rejects: len < 16, size < 16, size > max_size, a type other than command
 * or reply, unknown flag bits, NO_REPLY on a reply, ERROR on a command, a
 * non-zero error field in a command.  Does not judge `cmd`, because a peer
 * must answer an unknown command with an error reply, not drop it.
 */
int vfk_hdr_decode(const void *buf, size_t len, uint32_t max_size,
		   struct vfk_hdr *out);

/* Write `h` into the first 16 bytes of `buf`. */
void vfk_hdr_encode(void *buf, const struct vfk_hdr *h);

/* True if `h` is a reply. */
static inline bool vfk_hdr_is_reply(const struct vfk_hdr *h)
{
	return (h->flags & VFK_F_TYPE_MASK) == VFK_F_TYPE_REPLY;
}

/* Name of a command ("REGION_READ"), or "UNKNOWN" for an unknown number. */
const char *vfk_cmd_name(unsigned cmd);

/* ---- VERSION ---------------------------------------------------------- */

#define VFK_PROTO_MAJOR 0
/* Highest minor version vfiokit implements.  A reply never exceeds the
 * minor the client proposed (QEMU 11.1 rejects a higher one). */
#define VFK_PROTO_MINOR 0

/* Defaults the spec gives for capabilities a peer leaves out. */
#define VFK_DEFAULT_MAX_MSG_FDS 1u
#define VFK_DEFAULT_MAX_DATA_XFER (1u << 20)
#define VFK_DEFAULT_MAX_DMA_MAPS 65535u
#define VFK_DEFAULT_PGSIZES 4096ull
/* Absolute limits vfiokit applies to what a peer advertises. */
#define VFK_LIMIT_MSG_FDS 253u /* SCM_MAX_FD on Linux */
#define VFK_LIMIT_DATA_XFER (64u << 20)

/* Which capabilities a VERSION message carried (vfk_version_caps.present). */
#define VFK_CAP_MAX_MSG_FDS (1u << 0)
#define VFK_CAP_MAX_DATA_XFER (1u << 1)
#define VFK_CAP_PGSIZES (1u << 2)
#define VFK_CAP_MAX_DMA_MAPS (1u << 3)
#define VFK_CAP_MIGRATION (1u << 4)
#define VFK_CAP_TWIN_SOCKET (1u << 5)
#define VFK_CAP_WRITE_MULTIPLE (1u << 6)

/* The capabilities object of a VERSION message.  Fields whose bit is not in
 * `present` hold the spec's default. */
struct vfk_version_caps {
	uint32_t present;            /* VFK_CAP_* bits seen in the JSON */
	uint32_t max_msg_fds;        /* fds the sender can receive per message */
	uint32_t max_data_xfer_size; /* largest count in READ/WRITE messages */
	uint64_t pgsizes;            /* DMA page sizes, OR-ed together */
	uint32_t max_dma_maps;       /* DMA windows valid at once */
	bool write_multiple;         /* REGION_WRITE_MULTI accepted */
	bool twin_socket;            /* twin_socket.supported */
	int32_t twin_socket_fd_index; /* twin_socket.fd_index, -1 if absent */
	uint64_t mig_pgsize;         /* migration.pgsize, 0 if absent */
	uint64_t mig_max_bitmap_size; /* migration.max_bitmap_size, 0 if absent */
};

/* A decoded VERSION message (command or reply). */
struct vfk_version {
	uint16_t major;
	uint16_t minor;
	struct vfk_version_caps caps;
};

/* Fill `caps` with the spec's defaults and `present` = 0. */
void vfk_version_caps_default(struct vfk_version_caps *caps);

/*
 * Decode a VERSION payload.  The JSON part is optional; when present it must
 * be NUL-terminated inside the payload, hold exactly one JSON object, and
 * give every known capability its specified type.  Unknown members are
 * ignored (forward compatibility).  Numbers are clamped to the VFK_LIMIT_*
 * values; zero max_msg_fds is kept (the peer takes no fds), zero
 * max_data_xfer_size or pgsizes is -EINVAL.
 */
int vfk_version_decode(const void *payload, size_t len, struct vfk_version *out);

/*
 * Encode a VERSION payload into `buf`: the numbers of `v` plus the JSON
 * members whose bit is set in v->caps.present.  Returns the payload length
 * (NUL included) or -ENOSPC.
 */
int vfk_version_encode(void *buf, size_t cap, const struct vfk_version *v);

/* ---- Fixed payload structures ----------------------------------------- */

/* DMA_MAP request.  No reply payload. */
struct vfk_dma_map_wire {
	uint32_t argsz;  /* 32 */
	uint32_t flags;  /* VFK_DMA_READ | VFK_DMA_WRITE */
	uint64_t offset; /* file offset in the passed fd; 0 without an fd */
	uint64_t addr;   /* IOVA */
	uint64_t size;
};
#define VFK_DMA_READ (1u << 0)
#define VFK_DMA_WRITE (1u << 1)

/* DMA_UNMAP request and reply. */
struct vfk_dma_unmap_wire {
	uint32_t argsz;
	uint32_t flags; /* VFK_DMA_UNMAP_ALL, or 0 */
	uint64_t addr;
	uint64_t size;
};
#define VFK_DMA_UNMAP_DIRTY_BITMAP (1u << 0) /* not supported: -ENOTSUP */
#define VFK_DMA_UNMAP_ALL (1u << 1)

/* DEVICE_GET_INFO request and reply. */
struct vfk_device_info_wire {
	uint32_t argsz;
	uint32_t flags; /* VFK_DEVICE_FLAGS_* */
	uint32_t num_regions;
	uint32_t num_irqs;
};
#define VFK_DEVICE_FLAGS_RESET (1u << 0)
#define VFK_DEVICE_FLAGS_PCI (1u << 1)
#define VFK_DEVICE_FLAGS_CAPS (1u << 7)

/* DEVICE_GET_REGION_INFO request and reply (capabilities follow). */
struct vfk_region_info_wire {
	uint32_t argsz;
	uint32_t flags; /* VFK_REGION_FLAG_* */
	uint32_t index;
	uint32_t cap_offset; /* from the start of this structure; 0 = none */
	uint64_t size;
	uint64_t offset; /* mmap offset in the region's fd */
};
#define VFK_REGION_FLAG_READ (1u << 0)
#define VFK_REGION_FLAG_WRITE (1u << 1)
#define VFK_REGION_FLAG_MMAP (1u << 2)
#define VFK_REGION_FLAG_CAPS (1u << 3)
#define VFK_REGION_FLAGS_KNOWN 0xfu

/* Region capability ids (Linux values). */
#define VFK_REGION_CAP_SPARSE_MMAP 1
#define VFK_REGION_CAP_TYPE 2
#define VFK_REGION_CAP_MSIX_MAPPABLE 3

/*
 * vfiokit's own region capabilities.  Linux allocates region capability ids
 * from 1 upwards; these sit at the top of the 16-bit space so they cannot
 * collide, and clients that do not know them skip them (QEMU does).
 */
#define VFK_REGION_CAP_VFK_LAYOUT 0xf001 /* struct vfk_region_layout_wire */
#define VFK_REGION_CAP_VFK_ATTRS 0xf002  /* struct vfk_region_attrs_wire */

/* Where a BAR lives in the fd a client maps, in host pages. */
struct vfk_region_layout_wire {
	uint64_t fd_offset;      /* the BAR's first byte in the region's fd */
	uint32_t page_size;      /* host page size the server assumed */
	uint32_t in_page_offset; /* fd_offset % page_size */
	uint32_t flags;          /* VFK_LAYOUT_* */
	uint32_t reserved;       /* 0 */
};
#define VFK_LAYOUT_SUBPAGE 0x1u    /* the BAR is smaller than a page */
#define VFK_LAYOUT_EXCLUSIVE 0x2u  /* its pages hold no other BAR's bytes */

/* Memory semantics of a BAR region. */
struct vfk_region_attrs_wire {
	uint32_t flags;       /* VFK_ATTR_* */
	uint32_t reserved;    /* 0 */
	uint64_t backed_size; /* bytes backed by memory; past them, reads return
			       * all-ones and writes are dropped */
};
#define VFK_ATTR_PREFETCHABLE 0x01u /* the BAR's PCI prefetchable bit */
#define VFK_ATTR_MAP_WC 0x02u       /* write-combining mappings are safe */
#define VFK_ATTR_MAP_CACHED 0x04u   /* cacheable (write-back) mappings are safe */
#define VFK_ATTR_DISABLED_ONES 0x08u /* decoding off: all-ones, not EIO */
#define VFK_ATTR_MAP_REVOKE 0x10u   /* decoding off: what arrives through a
				     * mapping is not honoured */

/* Header of every capability in an info reply. */
struct vfk_cap_hdr_wire {
	uint16_t id;
	uint16_t version;
	uint32_t next; /* offset of the next capability from the info start; 0 ends */
};

/* One area of a SPARSE_MMAP capability, relative to the region offset. */
struct vfk_sparse_area_wire {
	uint64_t offset;
	uint64_t size;
};

/* Body of a REGION_CAP_TYPE capability. */
struct vfk_region_type_wire {
	uint32_t type;
	uint32_t subtype;
};

/* DEVICE_GET_REGION_IO_FDS request and reply header. */
struct vfk_io_fds_wire {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
};

/* One sub-region of a GET_REGION_IO_FDS reply. */
struct vfk_io_fd_wire {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type; /* VFK_IO_FD_TYPE_* */
	uint32_t flags;
	uint32_t padding;
	uint64_t datamatch; /* or user_data for ioregionfd */
};
#define VFK_IO_FD_TYPE_IOEVENTFD 0
#define VFK_IO_FD_TYPE_IOREGIONFD 1

/* DEVICE_GET_IRQ_INFO request and reply. */
struct vfk_irq_info_wire {
	uint32_t argsz;
	uint32_t flags; /* VFK_IRQ_INFO_* */
	uint32_t index;
	uint32_t count;
};
#define VFK_IRQ_INFO_EVENTFD (1u << 0)
#define VFK_IRQ_INFO_MASKABLE (1u << 1)
#define VFK_IRQ_INFO_AUTOMASKED (1u << 2)
#define VFK_IRQ_INFO_NORESIZE (1u << 3)

/* DEVICE_SET_IRQS request (BOOL data follows; eventfds travel as fds). */
struct vfk_irq_set_wire {
	uint32_t argsz;
	uint32_t flags; /* one VFK_IRQ_SET_DATA_* | one VFK_IRQ_SET_ACTION_* */
	uint32_t index;
	uint32_t start;
	uint32_t count;
};
#define VFK_IRQ_SET_DATA_NONE (1u << 0)
#define VFK_IRQ_SET_DATA_BOOL (1u << 1)
#define VFK_IRQ_SET_DATA_EVENTFD (1u << 2)
#define VFK_IRQ_SET_DATA_MASK 0x7u
#define VFK_IRQ_SET_ACTION_MASK (1u << 3)
#define VFK_IRQ_SET_ACTION_UNMASK (1u << 4)
#define VFK_IRQ_SET_ACTION_TRIGGER (1u << 5)
#define VFK_IRQ_SET_ACTION_MASKBITS 0x38u

/* REGION_READ / REGION_WRITE header (data follows). */
struct vfk_region_rw_wire {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
};

/* DMA_READ / DMA_WRITE header (data follows), spec layout. */
struct vfk_dma_rw_wire {
	uint64_t addr;
	uint64_t count;
};

/* One write of a REGION_WRITE_MULTI request. */
struct vfk_write_one_wire {
	uint64_t offset;
	uint32_t region;
	uint32_t count; /* 1..8 */
	uint8_t data[8];
};
#define VFK_WRITE_MULTI_MAX 200u /* largest batch QEMU sends; we accept more */

/* DEVICE_FEATURE request header (feature data follows). */
struct vfk_feature_wire {
	uint32_t argsz;
	uint32_t flags; /* feature index in bits 0-15, GET/SET/PROBE above */
};
#define VFK_FEATURE_MASK 0xffffu
#define VFK_FEATURE_GET (1u << 16)
#define VFK_FEATURE_SET (1u << 17)
#define VFK_FEATURE_PROBE (1u << 18)

/* Fixed indexes of a PCI device's regions and IRQs (Linux values). */
enum vfk_pci_region {
	VFK_PCI_BAR0 = 0,
	VFK_PCI_BAR5 = 5,
	VFK_PCI_ROM = 6,
	VFK_PCI_CONFIG = 7,
	VFK_PCI_VGA = 8,
	VFK_PCI_NUM_REGIONS = 9,
};
enum vfk_pci_irq {
	VFK_PCI_INTX = 0,
	VFK_PCI_MSI = 1,
	VFK_PCI_MSIX = 2,
	VFK_PCI_ERR = 3,
	VFK_PCI_REQ = 4,
	VFK_PCI_NUM_IRQS = 5,
};

/* ---- Decoders for each message ---------------------------------------- *
 * `p`/`len` are the payload (after the header).  Each checks the payload
 * length against the structure, every flag against the known set and every
 * reserved field against zero, and the arithmetic of offsets and sizes. */

/* DMA_MAP request.  `has_fd` says whether the message carried one fd. */
int vfk_decode_dma_map(const void *p, size_t len, bool has_fd,
		       struct vfk_dma_map_wire *out);
/* DMA_UNMAP request or reply.  UNMAP_ALL needs addr == size == 0. */
int vfk_decode_dma_unmap(const void *p, size_t len, struct vfk_dma_unmap_wire *out);
/* DEVICE_GET_INFO request: argsz >= 16, other fields zero. */
int vfk_decode_device_info_req(const void *p, size_t len,
			       struct vfk_device_info_wire *out);
/* DEVICE_GET_INFO reply: argsz >= 16, known flags only. */
int vfk_decode_device_info_reply(const void *p, size_t len,
				 struct vfk_device_info_wire *out);
/* DEVICE_GET_REGION_INFO request: argsz >= 32. */
int vfk_decode_region_info_req(const void *p, size_t len,
			       struct vfk_region_info_wire *out);
/* DEVICE_GET_REGION_IO_FDS request: argsz >= 16, flags and count zero. */
int vfk_decode_io_fds_req(const void *p, size_t len, struct vfk_io_fds_wire *out);
/* DEVICE_GET_IRQ_INFO request: argsz >= 16, flags and count zero. */
int vfk_decode_irq_info_req(const void *p, size_t len,
			    struct vfk_irq_info_wire *out);
/* DEVICE_GET_IRQ_INFO reply. */
int vfk_decode_irq_info_reply(const void *p, size_t len,
			      struct vfk_irq_info_wire *out);

/* A decoded SET_IRQS request. */
struct vfk_irq_set {
	struct vfk_irq_set_wire w;
	const uint8_t *bools; /* DATA_BOOL: `count` bytes inside the payload */
	uint32_t action;      /* the single VFK_IRQ_SET_ACTION_* bit */
	uint32_t data;        /* the single VFK_IRQ_SET_DATA_* bit */
};
/*
 * SET_IRQS request.  Exactly one data and one action bit; BOOL carries
 * `count` bytes of payload; EVENTFD carries either `count` fds or none (none
 * unassigns); count == 0 is allowed only as DATA_NONE|TRIGGER with start 0
 * (disable the index).  `nfds` is the number of fds the message carried.
 */
int vfk_decode_irq_set(const void *p, size_t len, unsigned nfds,
		       struct vfk_irq_set *out);

/* A decoded REGION_READ/REGION_WRITE (or DMA_READ/DMA_WRITE) message. */
struct vfk_rw {
	uint64_t offset;     /* region offset, or IOVA for DMA messages */
	uint32_t region;     /* region index (0 for DMA messages) */
	uint32_t count;      /* bytes */
	const uint8_t *data; /* `count` bytes inside the payload, or NULL */
};
/* REGION_READ request: exactly 16 bytes, 0 < count <= max_xfer. */
int vfk_decode_region_read_req(const void *p, size_t len, uint32_t max_xfer,
			       struct vfk_rw *out);
/* REGION_WRITE request: 16 bytes + count, 0 < count <= max_xfer. */
int vfk_decode_region_write_req(const void *p, size_t len, uint32_t max_xfer,
				struct vfk_rw *out);
/* REGION_READ reply: must echo `req` and carry exactly req->count bytes. */
int vfk_decode_region_read_reply(const void *p, size_t len,
				 const struct vfk_rw *req, struct vfk_rw *out);
/* REGION_WRITE reply: must echo `req`, no data. */
int vfk_decode_region_write_reply(const void *p, size_t len,
				  const struct vfk_rw *req);
/* DMA_READ request (server to client): 16 bytes, 0 < count <= max_xfer. */
int vfk_decode_dma_read_req(const void *p, size_t len, uint32_t max_xfer,
			    struct vfk_rw *out);
/* DMA_WRITE request: 16 bytes + count. */
int vfk_decode_dma_write_req(const void *p, size_t len, uint32_t max_xfer,
			     struct vfk_rw *out);
/* DMA_READ reply: echo of address and count, then count bytes. */
int vfk_decode_dma_read_reply(const void *p, size_t len,
			      const struct vfk_rw *req, struct vfk_rw *out);
/* DMA_WRITE reply: echo of address and count (an 8- or 4-byte count). */
int vfk_decode_dma_write_reply(const void *p, size_t len,
			       const struct vfk_rw *req);

/* REGION_WRITE_MULTI request: wr_cnt entries of 24 bytes, each 1..8 bytes
 * long; `*entries` points at the first (possibly unaligned). */
int vfk_decode_write_multi(const void *p, size_t len, uint64_t *wr_cnt,
			   const uint8_t **entries);
/* Copy out entry `i` of a validated WRITE_MULTI. */
void vfk_write_multi_entry(const uint8_t *entries, uint64_t i,
			   struct vfk_write_one_wire *out);

/* DEVICE_FEATURE request: argsz >= 8, GET and SET not both unless PROBE,
 * unknown flag bits rejected; `*data`/`*data_len` is the feature data. */
int vfk_decode_feature(const void *p, size_t len, struct vfk_feature_wire *out,
		       const uint8_t **data, size_t *data_len);

/* ---- Info capability chains -------------------------------------------- */

/* Builds a capability chain after a fixed info structure of `base` bytes. */
struct vfk_caps_builder {
	uint8_t *buf;    /* the info structure starts at buf[0] */
	size_t cap;      /* bytes available in buf */
	size_t len;      /* bytes used so far (>= base) */
	size_t last;     /* offset of the last capability header, 0 if none */
	int err;         /* first error (-ENOSPC), sticky */
};

/* Start a chain in `buf` right after a `base`-byte fixed structure. */
void vfk_caps_init(struct vfk_caps_builder *b, void *buf, size_t cap, size_t base);
/* Append a capability; bodies are padded so headers stay 8-byte aligned.
 * Returns 0 or -ENOSPC; the builder then keeps counting the needed size in
 * `len` so a caller can report it as argsz. */
int vfk_caps_add(struct vfk_caps_builder *b, uint16_t id, uint16_t version,
		 const void *body, size_t body_len);

/* Called for each capability by vfk_caps_walk(); a non-zero return stops
 * the walk and is returned by it. */
typedef int (*vfk_cap_fn)(void *arg, uint16_t id, uint16_t version,
			  const uint8_t *body, size_t body_len);

/*
 * Walk the chain of an info structure `info`/`len` whose first capability is
 * at `first` (0: no chain).  Every header must lie inside [base, len), be
 * 4-byte aligned, and each `next` must be greater than the offset of the
 * capability it is in (so a chain cannot loop).  A body runs to the next
 * header, or to `len` for the last one.
 */
int vfk_caps_walk(const void *info, size_t len, size_t base, uint32_t first,
		  vfk_cap_fn fn, void *arg);

/* Validate a SPARSE_MMAP body against a region of `region_size` bytes:
 * count fits in the body, areas lie inside the region and do not overlap.
 * Zero-size areas (older Linux reported some) are allowed and must be
 * skipped by the caller.  On success `*areas` points at the first
 * (possibly unaligned) area. */
int vfk_decode_sparse(const uint8_t *body, size_t body_len, uint64_t region_size,
		      uint32_t *nr_areas, const uint8_t **areas);

#ifdef __cplusplus
}
#endif
#endif
