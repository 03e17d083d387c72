/* SPDX-License-Identifier: MIT */
/*
 * vfio-user message header and fixed payloads: strict decoding.
 *
 * Each decoder is written so that a length is compared before any byte it
 * covers is read, and every sum of an offset and a size is checked for
 * wrap-around before it is compared with a bound.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "vfiokit/proto.h"

static_assert(sizeof(struct vfk_dma_map_wire) == 32, "wire layout");
static_assert(sizeof(struct vfk_dma_unmap_wire) == 24, "wire layout");
static_assert(sizeof(struct vfk_device_info_wire) == 16, "wire layout");
static_assert(sizeof(struct vfk_region_info_wire) == 32, "wire layout");
static_assert(sizeof(struct vfk_io_fds_wire) == 16, "wire layout");
static_assert(sizeof(struct vfk_io_fd_wire) == 40, "wire layout");
static_assert(sizeof(struct vfk_irq_info_wire) == 16, "wire layout");
static_assert(sizeof(struct vfk_irq_set_wire) == 20, "wire layout");
static_assert(sizeof(struct vfk_region_rw_wire) == 16, "wire layout");
static_assert(sizeof(struct vfk_dma_rw_wire) == 16, "wire layout");
static_assert(sizeof(struct vfk_write_one_wire) == 24, "wire layout");
static_assert(sizeof(struct vfk_feature_wire) == 8, "wire layout");
static_assert(sizeof(struct vfk_cap_hdr_wire) == 8, "wire layout");
static_assert(sizeof(struct vfk_sparse_area_wire) == 16, "wire layout");

int vfk_hdr_decode(const void *buf, size_t len, uint32_t max_size,
		   struct vfk_hdr *out)
{
	struct vfk_hdr h;
	uint32_t type;

	if (len < VFK_HDR_SIZE)
		return -EINVAL;
	memcpy(&h.id, (const uint8_t *)buf + 0, 2);
	memcpy(&h.cmd, (const uint8_t *)buf + 2, 2);
	memcpy(&h.size, (const uint8_t *)buf + 4, 4);
	memcpy(&h.flags, (const uint8_t *)buf + 8, 4);
	memcpy(&h.error, (const uint8_t *)buf + 12, 4);

	if (h.size < VFK_HDR_SIZE)
		return -EINVAL;
	if (h.size > max_size)
		return -E2BIG;
	if (h.flags & ~VFK_F_KNOWN)
		return -EINVAL;
	type = h.flags & VFK_F_TYPE_MASK;
	if (type == VFK_F_TYPE_COMMAND) {
		if ((h.flags & VFK_F_ERROR) || h.error != 0)
			return -EINVAL;
	} else if (type == VFK_F_TYPE_REPLY) {
		if (h.flags & VFK_F_NO_REPLY)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	*out = h;
	return 0;
}

void vfk_hdr_encode(void *buf, const struct vfk_hdr *h)
{
	uint8_t *b = buf;

	memcpy(b + 0, &h->id, 2);
	memcpy(b + 2, &h->cmd, 2);
	memcpy(b + 4, &h->size, 4);
	memcpy(b + 8, &h->flags, 4);
	memcpy(b + 12, &h->error, 4);
}

const char *vfk_cmd_name(unsigned cmd)
{
	static const char *const names[VFK_CMD_MAX] = {
		[VFK_CMD_VERSION] = "VERSION",
		[VFK_CMD_DMA_MAP] = "DMA_MAP",
		[VFK_CMD_DMA_UNMAP] = "DMA_UNMAP",
		[VFK_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
		[VFK_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
		[VFK_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
		[VFK_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
		[VFK_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
		[VFK_CMD_REGION_READ] = "REGION_READ",
		[VFK_CMD_REGION_WRITE] = "REGION_WRITE",
		[VFK_CMD_DMA_READ] = "DMA_READ",
		[VFK_CMD_DMA_WRITE] = "DMA_WRITE",
		[VFK_CMD_DEVICE_RESET] = "DEVICE_RESET",
		[VFK_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
		[VFK_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
		[VFK_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
		[VFK_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
	};

	if (cmd < VFK_CMD_MAX && names[cmd])
		return names[cmd];
	return "UNKNOWN";
}

/* a + b > limit, without wrapping. */
static inline bool range_exceeds(uint64_t a, uint64_t b, uint64_t limit)
{
	return a > limit || b > limit - a;
}

int vfk_decode_dma_map(const void *p, size_t len, bool has_fd,
		       struct vfk_dma_map_wire *out)
{
	struct vfk_dma_map_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz != sizeof(w))
		return -EINVAL;
	if (w.flags & ~(VFK_DMA_READ | VFK_DMA_WRITE))
		return -EINVAL;
	if (w.size == 0)
		return -EINVAL;
	if (range_exceeds(w.addr, w.size - 1, UINT64_MAX))
		return -EOVERFLOW;
	if (has_fd && range_exceeds(w.offset, w.size, UINT64_MAX))
		return -EOVERFLOW;
	if (!has_fd)
		w.offset = 0; /* meaningless without an fd */
	*out = w;
	return 0;
}

int vfk_decode_dma_unmap(const void *p, size_t len, struct vfk_dma_unmap_wire *out)
{
	struct vfk_dma_unmap_wire w;

	/* The dirty-bitmap variant appends a bitmap; anything longer is
	 * accepted only so that we can answer it with -ENOTSUP. */
	if (len < sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w))
		return -EINVAL;
	if (w.flags & ~(VFK_DMA_UNMAP_ALL | VFK_DMA_UNMAP_DIRTY_BITMAP))
		return -EINVAL;
	if (w.flags & VFK_DMA_UNMAP_DIRTY_BITMAP)
		return -ENOTSUP;
	if (len != sizeof(w))
		return -EINVAL;
	if (w.flags & VFK_DMA_UNMAP_ALL) {
		if (w.addr || w.size)
			return -EINVAL;
	} else {
		if (w.size == 0)
			return -EINVAL;
		if (range_exceeds(w.addr, w.size - 1, UINT64_MAX))
			return -EOVERFLOW;
	}
	*out = w;
	return 0;
}

int vfk_decode_device_info_req(const void *p, size_t len,
			       struct vfk_device_info_wire *out)
{
	struct vfk_device_info_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w) || w.flags || w.num_regions || w.num_irqs)
		return -EINVAL;
	*out = w;
	return 0;
}

int vfk_decode_device_info_reply(const void *p, size_t len,
				 struct vfk_device_info_wire *out)
{
	struct vfk_device_info_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w))
		return -EINVAL;
	if (w.flags & ~(VFK_DEVICE_FLAGS_RESET | VFK_DEVICE_FLAGS_PCI |
			VFK_DEVICE_FLAGS_CAPS))
		return -EINVAL;
	*out = w;
	return 0;
}

int vfk_decode_region_info_req(const void *p, size_t len,
			       struct vfk_region_info_wire *out)
{
	struct vfk_region_info_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w))
		return -EINVAL;
	/* The spec asks for zero in the other fields; QEMU leaves garbage in
	 * none of them, but a reused request buffer could, and they carry no
	 * meaning, so they are ignored rather than refused. */
	*out = w;
	return 0;
}

int vfk_decode_io_fds_req(const void *p, size_t len, struct vfk_io_fds_wire *out)
{
	struct vfk_io_fds_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w) || w.flags || w.count)
		return -EINVAL;
	*out = w;
	return 0;
}

int vfk_decode_irq_info_req(const void *p, size_t len,
			    struct vfk_irq_info_wire *out)
{
	struct vfk_irq_info_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w) || w.flags || w.count)
		return -EINVAL;
	*out = w;
	return 0;
}

int vfk_decode_irq_info_reply(const void *p, size_t len,
			      struct vfk_irq_info_wire *out)
{
	struct vfk_irq_info_wire w;

	if (len != sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w))
		return -EINVAL;
	if (w.flags & ~(VFK_IRQ_INFO_EVENTFD | VFK_IRQ_INFO_MASKABLE |
			VFK_IRQ_INFO_AUTOMASKED | VFK_IRQ_INFO_NORESIZE))
		return -EINVAL;
	*out = w;
	return 0;
}

static bool one_bit(uint32_t v)
{
	return v && !(v & (v - 1));
}

int vfk_decode_irq_set(const void *p, size_t len, unsigned nfds,
		       struct vfk_irq_set *out)
{
	struct vfk_irq_set s;

	if (len < sizeof(s.w))
		return -EINVAL;
	memcpy(&s.w, p, sizeof(s.w));
	if (s.w.flags & ~(VFK_IRQ_SET_DATA_MASK | VFK_IRQ_SET_ACTION_MASKBITS))
		return -EINVAL;
	s.data = s.w.flags & VFK_IRQ_SET_DATA_MASK;
	s.action = s.w.flags & VFK_IRQ_SET_ACTION_MASKBITS;
	if (!one_bit(s.data) || !one_bit(s.action))
		return -EINVAL;
	if (range_exceeds(s.w.start, s.w.count, UINT32_MAX))
		return -EOVERFLOW;
	s.bools = NULL;
	switch (s.data) {
	case VFK_IRQ_SET_DATA_NONE:
		if (len != sizeof(s.w) || nfds)
			return -EINVAL;
		if (s.w.count == 0 &&
		    (s.action != VFK_IRQ_SET_ACTION_TRIGGER || s.w.start))
			return -EINVAL;
		break;
	case VFK_IRQ_SET_DATA_BOOL:
		if (s.w.count == 0 || nfds)
			return -EINVAL;
		if (len != sizeof(s.w) + (size_t)s.w.count)
			return -EINVAL;
		s.bools = (const uint8_t *)p + sizeof(s.w);
		break;
	case VFK_IRQ_SET_DATA_EVENTFD:
		if (s.w.count == 0 || len != sizeof(s.w))
			return -EINVAL;
		if (nfds != 0 && nfds != s.w.count)
			return -EINVAL;
		break;
	}
	/* argsz describes the request payload; vfio-user carries eventfds out
	 * of band, so senders disagree on whether argsz counts them.  Accept
	 * the payload size or the payload plus one int per fd. */
	if (s.w.argsz != len &&
	    !(s.data == VFK_IRQ_SET_DATA_EVENTFD &&
	      s.w.argsz == len + (size_t)s.w.count * sizeof(int32_t)))
		return -EINVAL;
	*out = s;
	return 0;
}

static int decode_rw_hdr(const void *p, size_t len, struct vfk_rw *out)
{
	struct vfk_region_rw_wire w;

	if (len < sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	out->offset = w.offset;
	out->region = w.region;
	out->count = w.count;
	out->data = NULL;
	return 0;
}

int vfk_decode_region_read_req(const void *p, size_t len, uint32_t max_xfer,
			       struct vfk_rw *out)
{
	struct vfk_rw rw;

	if (len != sizeof(struct vfk_region_rw_wire) || decode_rw_hdr(p, len, &rw))
		return -EINVAL;
	if (rw.count == 0)
		return -EINVAL;
	if (rw.count > max_xfer)
		return -E2BIG;
	if (range_exceeds(rw.offset, rw.count, UINT64_MAX))
		return -EOVERFLOW;
	*out = rw;
	return 0;
}

int vfk_decode_region_write_req(const void *p, size_t len, uint32_t max_xfer,
				struct vfk_rw *out)
{
	struct vfk_rw rw;

	if (decode_rw_hdr(p, len, &rw))
		return -EINVAL;
	if (rw.count == 0)
		return -EINVAL;
	if (rw.count > max_xfer)
		return -E2BIG;
	if (len - sizeof(struct vfk_region_rw_wire) != rw.count)
		return -EINVAL;
	if (range_exceeds(rw.offset, rw.count, UINT64_MAX))
		return -EOVERFLOW;
	rw.data = (const uint8_t *)p + sizeof(struct vfk_region_rw_wire);
	*out = rw;
	return 0;
}

int vfk_decode_region_read_reply(const void *p, size_t len,
				 const struct vfk_rw *req, struct vfk_rw *out)
{
	struct vfk_rw rw;

	if (decode_rw_hdr(p, len, &rw))
		return -EINVAL;
	if (rw.offset != req->offset || rw.region != req->region ||
	    rw.count != req->count)
		return -EINVAL;
	if (len - sizeof(struct vfk_region_rw_wire) != rw.count)
		return -EINVAL;
	rw.data = (const uint8_t *)p + sizeof(struct vfk_region_rw_wire);
	*out = rw;
	return 0;
}

int vfk_decode_region_write_reply(const void *p, size_t len,
				  const struct vfk_rw *req)
{
	struct vfk_rw rw;

	if (len != sizeof(struct vfk_region_rw_wire) || decode_rw_hdr(p, len, &rw))
		return -EINVAL;
	if (rw.offset != req->offset || rw.region != req->region ||
	    rw.count != req->count)
		return -EINVAL;
	return 0;
}

static int decode_dma_hdr(const void *p, size_t len, uint32_t max_xfer,
			  struct vfk_rw *out)
{
	struct vfk_dma_rw_wire w;

	if (len < sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.count == 0)
		return -EINVAL;
	if (w.count > max_xfer)
		return -E2BIG;
	if (range_exceeds(w.addr, w.count - 1, UINT64_MAX))
		return -EOVERFLOW;
	out->offset = w.addr;
	out->region = 0;
	out->count = (uint32_t)w.count;
	out->data = NULL;
	return 0;
}

int vfk_decode_dma_read_req(const void *p, size_t len, uint32_t max_xfer,
			    struct vfk_rw *out)
{
	if (len != sizeof(struct vfk_dma_rw_wire))
		return -EINVAL;
	return decode_dma_hdr(p, len, max_xfer, out);
}

int vfk_decode_dma_write_req(const void *p, size_t len, uint32_t max_xfer,
			     struct vfk_rw *out)
{
	struct vfk_rw rw;
	int rc = decode_dma_hdr(p, len, max_xfer, &rw);

	if (rc)
		return rc;
	if (len - sizeof(struct vfk_dma_rw_wire) != rw.count)
		return -EINVAL;
	rw.data = (const uint8_t *)p + sizeof(struct vfk_dma_rw_wire);
	*out = rw;
	return 0;
}

int vfk_decode_dma_read_reply(const void *p, size_t len,
			      const struct vfk_rw *req, struct vfk_rw *out)
{
	struct vfk_dma_rw_wire w;

	if (len < sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.addr != req->offset || w.count != req->count)
		return -EINVAL;
	if (len - sizeof(w) != req->count)
		return -EINVAL;
	out->offset = w.addr;
	out->region = 0;
	out->count = req->count;
	out->data = (const uint8_t *)p + sizeof(w);
	return 0;
}

int vfk_decode_dma_write_reply(const void *p, size_t len,
			       const struct vfk_rw *req)
{
	uint64_t addr, count64;
	uint32_t count32;

	/* The spec's table gives the reply a 4-byte count after the 8-byte
	 * address, while the request has an 8-byte count; accept both. */
	if (len == 16) {
		memcpy(&addr, p, 8);
		memcpy(&count64, (const uint8_t *)p + 8, 8);
		if (addr != req->offset || count64 != req->count)
			return -EINVAL;
		return 0;
	}
	if (len == 12) {
		memcpy(&addr, p, 8);
		memcpy(&count32, (const uint8_t *)p + 8, 4);
		if (addr != req->offset || count32 != req->count)
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

int vfk_decode_write_multi(const void *p, size_t len, uint64_t *wr_cnt,
			   const uint8_t **entries)
{
	uint64_t n;
	const uint8_t *e;

	if (len < 8)
		return -EINVAL;
	memcpy(&n, p, 8);
	if (n == 0)
		return -EINVAL;
	if (n > (len - 8) / sizeof(struct vfk_write_one_wire) ||
	    len - 8 != n * sizeof(struct vfk_write_one_wire))
		return -EINVAL;
	e = (const uint8_t *)p + 8;
	for (uint64_t i = 0; i < n; i++) {
		struct vfk_write_one_wire one;

		vfk_write_multi_entry(e, i, &one);
		if (one.count == 0 || one.count > sizeof(one.data))
			return -EINVAL;
		if (range_exceeds(one.offset, one.count, UINT64_MAX))
			return -EOVERFLOW;
	}
	*wr_cnt = n;
	*entries = e;
	return 0;
}

void vfk_write_multi_entry(const uint8_t *entries, uint64_t i,
			   struct vfk_write_one_wire *out)
{
	memcpy(out, entries + i * sizeof(*out), sizeof(*out));
}

int vfk_decode_feature(const void *p, size_t len, struct vfk_feature_wire *out,
		       const uint8_t **data, size_t *data_len)
{
	struct vfk_feature_wire w;
	uint32_t ops;

	if (len < sizeof(w))
		return -EINVAL;
	memcpy(&w, p, sizeof(w));
	if (w.argsz < sizeof(w))
		return -EINVAL;
	if (w.flags & ~(VFK_FEATURE_MASK | VFK_FEATURE_GET | VFK_FEATURE_SET |
			VFK_FEATURE_PROBE))
		return -EINVAL;
	ops = w.flags & (VFK_FEATURE_GET | VFK_FEATURE_SET);
	if (ops == (VFK_FEATURE_GET | VFK_FEATURE_SET) &&
	    !(w.flags & VFK_FEATURE_PROBE))
		return -EINVAL;
	if (!ops && !(w.flags & VFK_FEATURE_PROBE))
		return -EINVAL;
	*out = w;
	*data = (const uint8_t *)p + sizeof(w);
	*data_len = len - sizeof(w);
	return 0;
}

/* ---- capability chains ---- */

void vfk_caps_init(struct vfk_caps_builder *b, void *buf, size_t cap, size_t base)
{
	b->buf = buf;
	b->cap = cap;
	b->len = base;
	b->last = 0;
	b->err = cap < base ? -ENOSPC : 0;
}

int vfk_caps_add(struct vfk_caps_builder *b, uint16_t id, uint16_t version,
		 const void *body, size_t body_len)
{
	size_t start = (b->len + 7) & ~(size_t)7;
	size_t total = sizeof(struct vfk_cap_hdr_wire) + body_len;
	struct vfk_cap_hdr_wire h = { .id = id, .version = version, .next = 0 };

	if (body_len > UINT32_MAX / 2) {
		b->err = -EINVAL;
		return b->err;
	}
	if (!b->err && start + total <= b->cap) {
		if (start > b->len)
			memset(b->buf + b->len, 0, start - b->len);
		memcpy(b->buf + start, &h, sizeof(h));
		if (body_len)
			memcpy(b->buf + start + sizeof(h), body, body_len);
		if (b->last) {
			uint32_t next = (uint32_t)start;

			memcpy(b->buf + b->last + 4, &next, 4);
		}
	} else {
		b->err = -ENOSPC;
	}
	b->last = start;
	b->len = start + total;
	return b->err;
}

int vfk_caps_walk(const void *info, size_t len, size_t base, uint32_t first,
		  vfk_cap_fn fn, void *arg)
{
	const uint8_t *p = info;
	size_t off = first;
	unsigned guard = 0;

	if (first == 0)
		return 0;
	while (off) {
		struct vfk_cap_hdr_wire h;
		size_t end;
		int rc;

		if (off < base || off % 4 || off > len ||
		    len - off < sizeof(h))
			return -EINVAL;
		memcpy(&h, p + off, sizeof(h));
		if (h.next) {
			if (h.next <= off || h.next > len)
				return -EINVAL;
			if (h.next - off < sizeof(h))
				return -EINVAL;
			end = h.next;
		} else {
			end = len;
		}
		rc = fn(arg, h.id, h.version, p + off + sizeof(h),
			end - off - sizeof(h));
		if (rc)
			return rc;
		off = h.next;
		if (++guard > 4096) /* unreachable: offsets strictly increase */
			return -ELOOP;
	}
	return 0;
}

int vfk_decode_sparse(const uint8_t *body, size_t body_len, uint64_t region_size,
		      uint32_t *nr_areas, const uint8_t **areas)
{
	uint32_t n;
	uint64_t prev_end = 0;

	if (body_len < 8)
		return -EINVAL;
	memcpy(&n, body, 4);
	if (n > (body_len - 8) / sizeof(struct vfk_sparse_area_wire))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		struct vfk_sparse_area_wire a;

		memcpy(&a, body + 8 + i * sizeof(a), sizeof(a));
		if (a.size == 0)
			continue; /* older Linux reported empty areas; they map nothing */
		if (range_exceeds(a.offset, a.size, region_size))
			return -EINVAL;
		/* Linux and vfiokit list areas in ascending order; requiring it
		 * makes the overlap check linear. */
		if (i && a.offset < prev_end)
			return -EINVAL;
		prev_end = a.offset + a.size;
	}
	*nr_areas = n;
	*areas = body + 8;
	return 0;
}
