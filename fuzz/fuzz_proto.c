/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the wire codec (include/vfiokit/proto.h).
 *
 * The first byte picks a decoder, the last 16 bytes are its parameters
 * (fuzz_format.h).  The payload is copied into a heap buffer of exactly its
 * size, so AddressSanitizer sees any read past it.  A decoder that fails
 * must return one of the documented errnos and leave its outputs untouched
 * (common.h); one that succeeds must have checked everything its caller
 * relies on, which is re-checked here from the raw bytes.  Encoders are
 * checked by round trips.  A violated invariant aborts, which libFuzzer
 * reports as a crash.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfiokit/proto.h"

#include "fuzz_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(int line, const char *what)
{
	fprintf(stderr, "fuzz_proto.c:%d: invariant violated: %s\n", line, what);
	abort();
}

#define CHECK(c) do { if (!(c)) fail(__LINE__, #c); } while (0)

#define POISON_BYTE 0xa5
#define POISON(x) memset(&(x), POISON_BYTE, sizeof(x))
#define UNTOUCHED(x) CHECK(untouched(&(x), sizeof(x)))

static bool untouched(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != POISON_BYTE)
			return false;
	return true;
}

/* [ptr, ptr+n) lies inside [base, base+len). */
static bool inside(const void *ptr, size_t n, const uint8_t *base, size_t len)
{
	uintptr_t p = (uintptr_t)ptr, b = (uintptr_t)base;

	return p >= b && p - b <= len && n <= len - (p - b);
}

/* The only errnos proto.h lets a decoder return. */
static bool decode_errno(int rc)
{
	return rc == -EINVAL || rc == -E2BIG || rc == -EOVERFLOW;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* a + b wraps past 2^64. */
static bool wraps(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b;
}

struct params {
	uint32_t a, b;
	uint64_t c;
};

/* ---- header ---- */

static void fuzz_hdr(const uint8_t *p, size_t len, const struct params *pa)
{
	uint32_t max = pa->a ? pa->a : UINT32_MAX;
	struct vfk_hdr h;
	uint8_t enc[VFK_HDR_SIZE];
	int rc;

	POISON(h);
	rc = vfk_hdr_decode(p, len, max, &h);
	if (rc) {
		CHECK(rc == -EINVAL || rc == -E2BIG);
		UNTOUCHED(h);
	} else {
		uint32_t type = h.flags & VFK_F_TYPE_MASK;

		CHECK(len >= VFK_HDR_SIZE);
		CHECK(h.size >= VFK_HDR_SIZE && h.size <= max);
		CHECK(!(h.flags & ~VFK_F_KNOWN));
		CHECK(type == VFK_F_TYPE_COMMAND || type == VFK_F_TYPE_REPLY);
		if (type == VFK_F_TYPE_COMMAND)
			CHECK(!(h.flags & VFK_F_ERROR) && h.error == 0);
		else
			CHECK(!(h.flags & VFK_F_NO_REPLY));
		CHECK(vfk_hdr_is_reply(&h) == (type == VFK_F_TYPE_REPLY));
		vfk_hdr_encode(enc, &h);
		CHECK(memcmp(enc, p, VFK_HDR_SIZE) == 0);
	}
	if (len >= 4) {
		const char *name = vfk_cmd_name(rd16(p + 2));

		CHECK(name && name[0]);
	}
}

/* ---- VERSION ---- */

static bool caps_equal(const struct vfk_version_caps *x,
		       const struct vfk_version_caps *y)
{
	return x->present == y->present && x->max_msg_fds == y->max_msg_fds &&
	       x->max_data_xfer_size == y->max_data_xfer_size &&
	       x->pgsizes == y->pgsizes && x->max_dma_maps == y->max_dma_maps &&
	       x->write_multiple == y->write_multiple &&
	       x->twin_socket == y->twin_socket &&
	       x->twin_socket_fd_index == y->twin_socket_fd_index &&
	       x->mig_pgsize == y->mig_pgsize &&
	       x->mig_max_bitmap_size == y->mig_max_bitmap_size;
}

#define VFK_CAP_ALL 0x7fu

/* What vfk_version_decode() promises about a decoded VERSION. */
static void check_version(const struct vfk_version *v)
{
	const struct vfk_version_caps *c = &v->caps;
	struct vfk_version_caps d;

	vfk_version_caps_default(&d);
	CHECK(!(c->present & ~VFK_CAP_ALL));
	CHECK(c->max_msg_fds <= VFK_LIMIT_MSG_FDS);
	CHECK(c->max_data_xfer_size >= 1 &&
	      c->max_data_xfer_size <= VFK_LIMIT_DATA_XFER);
	CHECK(c->pgsizes != 0);
	CHECK(c->twin_socket_fd_index >= -1 &&
	      c->twin_socket_fd_index <= (int32_t)VFK_LIMIT_MSG_FDS);
	if (!(c->present & VFK_CAP_MAX_MSG_FDS))
		CHECK(c->max_msg_fds == d.max_msg_fds);
	if (!(c->present & VFK_CAP_MAX_DATA_XFER))
		CHECK(c->max_data_xfer_size == d.max_data_xfer_size);
	if (!(c->present & VFK_CAP_PGSIZES))
		CHECK(c->pgsizes == d.pgsizes);
	if (!(c->present & VFK_CAP_MAX_DMA_MAPS))
		CHECK(c->max_dma_maps == d.max_dma_maps);
	if (!(c->present & VFK_CAP_WRITE_MULTIPLE))
		CHECK(!c->write_multiple);
	if (!(c->present & VFK_CAP_TWIN_SOCKET))
		CHECK(!c->twin_socket && c->twin_socket_fd_index == -1);
	if (!(c->present & VFK_CAP_MIGRATION))
		CHECK(c->mig_pgsize == 0 && c->mig_max_bitmap_size == 0);
}

/* Encode `v` into an exactly sized heap buffer and check the result's
 * shape; returns the length or -ENOSPC.  `out` (if any) gets a copy. */
static int encode_checked(const struct vfk_version *v, size_t cap, uint8_t **out)
{
	uint8_t *buf = malloc(cap ? cap : 1);
	int n;

	CHECK(buf);
	n = vfk_version_encode(buf, cap, v);
	if (n < 0) {
		CHECK(n == -ENOSPC);
		free(buf);
		return n;
	}
	CHECK((size_t)n <= cap && n >= 5);
	CHECK(rd16(buf) == v->major && rd16(buf + 2) == v->minor);
	CHECK(buf[n - 1] == '\0');
	CHECK(strlen((const char *)buf + 4) == (size_t)n - 5);
	if (out)
		*out = buf;
	else
		free(buf);
	return n;
}

/* Encoding, then decoding, gives back `v`; the encoder's -ENOSPC is
 * exact (one byte less than the length fails, the length succeeds). */
static void version_round_trip(const struct vfk_version *v, bool expect_ok,
			       const struct vfk_version *expect)
{
	struct vfk_version back;
	uint8_t *buf = NULL;
	int n, rc;

	n = encode_checked(v, 4096, &buf);
	CHECK(n > 0); /* a few hundred bytes at most */
	CHECK(encode_checked(v, (size_t)n, NULL) == n);
	CHECK(encode_checked(v, (size_t)n - 1, NULL) == -ENOSPC);
	POISON(back);
	rc = vfk_version_decode(buf, (size_t)n, &back);
	if (expect_ok) {
		CHECK(rc == 0);
		check_version(&back);
		CHECK(back.major == expect->major && back.minor == expect->minor);
		CHECK(caps_equal(&back.caps, &expect->caps));
	} else {
		CHECK(rc == -EINVAL);
		UNTOUCHED(back);
	}
	free(buf);
}

static void fuzz_version_decode(const uint8_t *p, size_t len)
{
	struct vfk_version v;
	int rc;

	POISON(v);
	rc = vfk_version_decode(p, len, &v);
	if (rc) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		UNTOUCHED(v);
		return;
	}
	CHECK(len >= 4);
	CHECK(v.major == rd16(p) && v.minor == rd16(p + 2));
	if (len <= 5)
		CHECK(v.caps.present == 0);
	check_version(&v);
	version_round_trip(&v, true, &v);
}

/* Build a VERSION from raw bytes, encode it, decode it back: the result is
 * what the decoder's clamping rules make of the original. */
static void fuzz_version_encode(const uint8_t *p, size_t len,
				const struct params *pa)
{
	uint8_t raw[48] = { 0 };
	struct vfk_version v, want;
	struct vfk_version_caps *c = &v.caps, *w = &want.caps;
	bool ok = true;
	int n;

	memcpy(raw, p, len < sizeof(raw) ? len : sizeof(raw));
	memset(&v, 0, sizeof(v));
	v.major = rd16(raw);
	v.minor = rd16(raw + 2);
	c->present = raw[4] & VFK_CAP_ALL;
	c->write_multiple = raw[5] & 1;
	c->twin_socket = raw[5] & 2;
	c->max_msg_fds = rd32(raw + 8);
	c->max_data_xfer_size = rd32(raw + 12);
	c->pgsizes = rd64(raw + 16);
	c->max_dma_maps = rd32(raw + 24);
	c->twin_socket_fd_index = (int32_t)rd32(raw + 28);
	c->mig_pgsize = rd64(raw + 32);
	c->mig_max_bitmap_size = rd64(raw + 40);

	/* The encoder must fail cleanly in any buffer. */
	n = encode_checked(&v, pa->a % 1024, NULL);
	if (n < 0)
		CHECK(encode_checked(&v, 4096, NULL) > (int)(pa->a % 1024));

	want.major = v.major;
	want.minor = v.minor;
	vfk_version_caps_default(w);
	w->present = c->present;
	if (c->present & VFK_CAP_MAX_MSG_FDS)
		w->max_msg_fds = c->max_msg_fds > VFK_LIMIT_MSG_FDS ?
					 VFK_LIMIT_MSG_FDS : c->max_msg_fds;
	if (c->present & VFK_CAP_MAX_DATA_XFER) {
		ok &= c->max_data_xfer_size != 0;
		w->max_data_xfer_size = c->max_data_xfer_size > VFK_LIMIT_DATA_XFER ?
						VFK_LIMIT_DATA_XFER : c->max_data_xfer_size;
	}
	if (c->present & VFK_CAP_PGSIZES) {
		ok &= c->pgsizes != 0;
		w->pgsizes = c->pgsizes;
	}
	if (c->present & VFK_CAP_MAX_DMA_MAPS)
		w->max_dma_maps = c->max_dma_maps;
	if (c->present & VFK_CAP_WRITE_MULTIPLE)
		w->write_multiple = c->write_multiple;
	if (c->present & VFK_CAP_MIGRATION) {
		w->mig_pgsize = c->mig_pgsize;
		w->mig_max_bitmap_size = c->mig_max_bitmap_size;
	}
	if (c->present & VFK_CAP_TWIN_SOCKET) {
		w->twin_socket = c->twin_socket;
		if (c->twin_socket_fd_index >= 0) {
			ok &= c->twin_socket_fd_index <= (int32_t)VFK_LIMIT_MSG_FDS;
			w->twin_socket_fd_index = c->twin_socket_fd_index;
		}
	}
	version_round_trip(&v, ok, &want);
}

/* ---- fixed payloads ---- */

static void fuzz_dma_map(const uint8_t *p, size_t len, const struct params *pa)
{
	bool has_fd = pa->a & 1;
	struct vfk_dma_map_wire w;
	int rc;

	POISON(w);
	rc = vfk_decode_dma_map(p, len, has_fd, &w);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(w);
		return;
	}
	CHECK(len == sizeof(w));
	CHECK(w.argsz == sizeof(w) && w.argsz == rd32(p));
	CHECK(w.flags == rd32(p + 4));
	CHECK(!(w.flags & ~(VFK_DMA_READ | VFK_DMA_WRITE)));
	CHECK(w.addr == rd64(p + 16) && w.size == rd64(p + 24));
	CHECK(w.size > 0 && !wraps(w.addr, w.size - 1));
	if (has_fd)
		CHECK(w.offset == rd64(p + 8) && !wraps(w.offset, w.size));
	else
		CHECK(w.offset == 0);
}

static void fuzz_dma_unmap(const uint8_t *p, size_t len)
{
	struct vfk_dma_unmap_wire w;
	int rc;

	POISON(w);
	rc = vfk_decode_dma_unmap(p, len, &w);
	if (rc) {
		CHECK(decode_errno(rc) || rc == -ENOTSUP);
		if (rc == -ENOTSUP)
			CHECK(len >= sizeof(w) &&
			      (rd32(p + 4) & VFK_DMA_UNMAP_DIRTY_BITMAP));
		UNTOUCHED(w);
		return;
	}
	CHECK(len == sizeof(w));
	CHECK(memcmp(&w, p, sizeof(w)) == 0);
	CHECK(w.argsz >= sizeof(w));
	CHECK(!(w.flags & ~VFK_DMA_UNMAP_ALL));
	if (w.flags & VFK_DMA_UNMAP_ALL)
		CHECK(w.addr == 0 && w.size == 0);
	else
		CHECK(w.size > 0 && !wraps(w.addr, w.size - 1));
}

/* The 16-byte "argsz, flags, a, b" requests and replies. */
static void fuzz_info16(unsigned sel, const uint8_t *p, size_t len)
{
	union {
		struct vfk_device_info_wire dev;
		struct vfk_io_fds_wire io;
		struct vfk_irq_info_wire irq;
	} w;
	uint32_t known;
	bool zero_rest;
	int rc;

	POISON(w);
	switch (sel) {
	case PF_DEVICE_INFO_REQ:
		rc = vfk_decode_device_info_req(p, len, &w.dev);
		known = 0;
		zero_rest = true;
		break;
	case PF_DEVICE_INFO_REPLY:
		rc = vfk_decode_device_info_reply(p, len, &w.dev);
		known = VFK_DEVICE_FLAGS_RESET | VFK_DEVICE_FLAGS_PCI |
			VFK_DEVICE_FLAGS_CAPS;
		zero_rest = false;
		break;
	case PF_IO_FDS_REQ:
		rc = vfk_decode_io_fds_req(p, len, &w.io);
		known = 0;
		zero_rest = false;
		break;
	case PF_IRQ_INFO_REQ:
		rc = vfk_decode_irq_info_req(p, len, &w.irq);
		known = 0;
		zero_rest = false;
		break;
	default: /* PF_IRQ_INFO_REPLY */
		rc = vfk_decode_irq_info_reply(p, len, &w.irq);
		known = VFK_IRQ_INFO_EVENTFD | VFK_IRQ_INFO_MASKABLE |
			VFK_IRQ_INFO_AUTOMASKED | VFK_IRQ_INFO_NORESIZE;
		zero_rest = false;
		break;
	}
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(w);
		return;
	}
	CHECK(len == 16);
	CHECK(memcmp(&w, p, 16) == 0);
	CHECK(rd32(p) >= 16);
	CHECK(!(rd32(p + 4) & ~known));
	if (zero_rest)
		CHECK(rd32(p + 8) == 0 && rd32(p + 12) == 0);
	/* IO_FDS and IRQ_INFO requests: count must be zero. */
	if (sel == PF_IO_FDS_REQ || sel == PF_IRQ_INFO_REQ)
		CHECK(rd32(p + 12) == 0);
}

static void fuzz_region_info_req(const uint8_t *p, size_t len)
{
	struct vfk_region_info_wire w;
	int rc;

	POISON(w);
	rc = vfk_decode_region_info_req(p, len, &w);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(w);
		return;
	}
	CHECK(len == sizeof(w) && memcmp(&w, p, sizeof(w)) == 0);
	CHECK(w.argsz >= sizeof(w));
}

static bool one_bit(uint32_t v)
{
	return v && !(v & (v - 1));
}

static void fuzz_irq_set(const uint8_t *p, size_t len, const struct params *pa)
{
	unsigned nfds = pa->a % 300;
	struct vfk_irq_set s;
	uint64_t argsz_fds;
	int rc;

	POISON(s);
	rc = vfk_decode_irq_set(p, len, nfds, &s);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(s);
		return;
	}
	CHECK(len >= sizeof(s.w) && memcmp(&s.w, p, sizeof(s.w)) == 0);
	CHECK(!(s.w.flags & ~(VFK_IRQ_SET_DATA_MASK | VFK_IRQ_SET_ACTION_MASKBITS)));
	CHECK(s.data == (s.w.flags & VFK_IRQ_SET_DATA_MASK) && one_bit(s.data));
	CHECK(s.action == (s.w.flags & VFK_IRQ_SET_ACTION_MASKBITS) &&
	      one_bit(s.action));
	CHECK((uint64_t)s.w.start + s.w.count <= UINT32_MAX);
	switch (s.data) {
	case VFK_IRQ_SET_DATA_NONE:
		CHECK(len == sizeof(s.w) && nfds == 0 && s.bools == NULL);
		if (s.w.count == 0)
			CHECK(s.action == VFK_IRQ_SET_ACTION_TRIGGER && s.w.start == 0);
		break;
	case VFK_IRQ_SET_DATA_BOOL:
		CHECK(s.w.count > 0 && nfds == 0);
		CHECK(len == sizeof(s.w) + (size_t)s.w.count);
		CHECK(s.bools == p + sizeof(s.w));
		CHECK(inside(s.bools, s.w.count, p, len));
		break;
	case VFK_IRQ_SET_DATA_EVENTFD:
		CHECK(s.w.count > 0 && len == sizeof(s.w) && s.bools == NULL);
		CHECK(nfds == 0 || nfds == s.w.count);
		break;
	default:
		CHECK(!"unknown data type accepted");
	}
	argsz_fds = (uint64_t)len + (uint64_t)s.w.count * 4;
	CHECK(s.w.argsz == len ||
	      (s.data == VFK_IRQ_SET_DATA_EVENTFD && s.w.argsz == argsz_fds));
}

/* REGION_READ/WRITE and DMA_READ/WRITE requests. */
static void fuzz_rw_req(unsigned sel, const uint8_t *p, size_t len,
			const struct params *pa)
{
	uint32_t max = pa->a;
	bool dma = sel == PF_DMA_READ_REQ || sel == PF_DMA_WRITE_REQ;
	bool write = sel == PF_REGION_WRITE_REQ || sel == PF_DMA_WRITE_REQ;
	struct vfk_rw rw;
	int rc;

	POISON(rw);
	switch (sel) {
	case PF_REGION_READ_REQ:
		rc = vfk_decode_region_read_req(p, len, max, &rw);
		break;
	case PF_REGION_WRITE_REQ:
		rc = vfk_decode_region_write_req(p, len, max, &rw);
		break;
	case PF_DMA_READ_REQ:
		rc = vfk_decode_dma_read_req(p, len, max, &rw);
		break;
	default:
		rc = vfk_decode_dma_write_req(p, len, max, &rw);
		break;
	}
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(rw);
		return;
	}
	CHECK(len >= 16);
	CHECK(rw.offset == rd64(p));
	CHECK(rw.count > 0 && rw.count <= max);
	if (dma) {
		CHECK(rd64(p + 8) == rw.count && rw.region == 0);
		CHECK(!wraps(rw.offset, rw.count - 1));
	} else {
		CHECK(rw.region == rd32(p + 8) && rw.count == rd32(p + 12));
		CHECK(!wraps(rw.offset, rw.count));
	}
	if (write) {
		CHECK(len == 16 + (size_t)rw.count);
		CHECK(rw.data == p + 16 && inside(rw.data, rw.count, p, len));
	} else {
		CHECK(len == 16 && rw.data == NULL);
	}
}

static void fuzz_rw_reply(unsigned sel, const uint8_t *p, size_t len,
			  const struct params *pa)
{
	bool dma = sel == PF_DMA_READ_REPLY || sel == PF_DMA_WRITE_REPLY;
	struct vfk_rw req = { .offset = pa->c, .region = dma ? 0 : pa->a,
			      .count = pa->b };
	struct vfk_rw out;
	int rc;

	POISON(out);
	switch (sel) {
	case PF_REGION_READ_REPLY:
		rc = vfk_decode_region_read_reply(p, len, &req, &out);
		break;
	case PF_REGION_WRITE_REPLY:
		rc = vfk_decode_region_write_reply(p, len, &req);
		break;
	case PF_DMA_READ_REPLY:
		rc = vfk_decode_dma_read_reply(p, len, &req, &out);
		break;
	default:
		rc = vfk_decode_dma_write_reply(p, len, &req);
		break;
	}
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(out);
		return;
	}
	switch (sel) {
	case PF_REGION_READ_REPLY:
		CHECK(len == 16 + (size_t)req.count);
		CHECK(rd64(p) == req.offset && rd32(p + 8) == req.region &&
		      rd32(p + 12) == req.count);
		CHECK(out.offset == req.offset && out.region == req.region &&
		      out.count == req.count);
		CHECK(out.data == p + 16 && inside(out.data, out.count, p, len));
		break;
	case PF_REGION_WRITE_REPLY:
		CHECK(len == 16);
		CHECK(rd64(p) == req.offset && rd32(p + 8) == req.region &&
		      rd32(p + 12) == req.count);
		UNTOUCHED(out);
		break;
	case PF_DMA_READ_REPLY:
		CHECK(len == 16 + (size_t)req.count);
		CHECK(rd64(p) == req.offset && rd64(p + 8) == req.count);
		CHECK(out.offset == req.offset && out.count == req.count &&
		      out.region == 0);
		CHECK(out.data == p + 16 && inside(out.data, out.count, p, len));
		break;
	default:
		CHECK(len == 16 || len == 12);
		CHECK(rd64(p) == req.offset);
		CHECK(len == 16 ? rd64(p + 8) == req.count : rd32(p + 8) == req.count);
		UNTOUCHED(out);
		break;
	}
}

static void fuzz_write_multi(const uint8_t *p, size_t len)
{
	uint64_t n;
	const uint8_t *e;
	int rc;

	POISON(n);
	POISON(e);
	rc = vfk_decode_write_multi(p, len, &n, &e);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(n);
		UNTOUCHED(e);
		return;
	}
	CHECK(len >= 8 && n == rd64(p) && n > 0);
	CHECK((len - 8) / sizeof(struct vfk_write_one_wire) == n &&
	      (len - 8) % sizeof(struct vfk_write_one_wire) == 0);
	CHECK(e == p + 8);
	for (uint64_t i = 0; i < n; i++) {
		struct vfk_write_one_wire one;

		CHECK(inside(e + i * sizeof(one), sizeof(one), p, len));
		vfk_write_multi_entry(e, i, &one);
		CHECK(one.count >= 1 && one.count <= sizeof(one.data));
		CHECK(!wraps(one.offset, one.count));
	}
}

static void fuzz_feature(const uint8_t *p, size_t len)
{
	struct vfk_feature_wire w;
	const uint8_t *d;
	size_t dl;
	uint32_t ops;
	int rc;

	POISON(w);
	POISON(d);
	POISON(dl);
	rc = vfk_decode_feature(p, len, &w, &d, &dl);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(w);
		UNTOUCHED(d);
		UNTOUCHED(dl);
		return;
	}
	CHECK(len >= sizeof(w) && memcmp(&w, p, sizeof(w)) == 0);
	CHECK(w.argsz >= sizeof(w));
	CHECK(!(w.flags & ~(VFK_FEATURE_MASK | VFK_FEATURE_GET | VFK_FEATURE_SET |
			    VFK_FEATURE_PROBE)));
	ops = w.flags & (VFK_FEATURE_GET | VFK_FEATURE_SET);
	CHECK(ops != (VFK_FEATURE_GET | VFK_FEATURE_SET) ||
	      (w.flags & VFK_FEATURE_PROBE));
	CHECK(ops || (w.flags & VFK_FEATURE_PROBE));
	CHECK(d == p + sizeof(w) && dl == len - sizeof(w));
}

/* ---- capability chains ---- */

#define WALK_MAX 4096
#define WALK_STOP 77

struct walk_rec {
	uint16_t id, version;
	const uint8_t *body;
	size_t body_len;
};

struct walk {
	const uint8_t *info;
	size_t len, base;
	unsigned n, stop_at; /* stop_at: return WALK_STOP at this call, 0: never */
	struct walk_rec rec[WALK_MAX];
};

static int walk_cb(void *arg, uint16_t id, uint16_t version,
		   const uint8_t *body, size_t body_len)
{
	struct walk *w = arg;
	const uint8_t *hdr = body - sizeof(struct vfk_cap_hdr_wire);
	size_t off = (size_t)(hdr - w->info);

	/* The header and the body lie inside the structure, past `base`,
	 * aligned, after the previous capability's body. */
	CHECK(w->n < WALK_MAX);
	CHECK(inside(hdr, sizeof(struct vfk_cap_hdr_wire) + body_len, w->info, w->len));
	CHECK(off >= w->base && off % 4 == 0);
	CHECK(rd16(hdr) == id && rd16(hdr + 2) == version);
	if (w->n) {
		const struct walk_rec *prev = &w->rec[w->n - 1];

		CHECK(prev->body + prev->body_len == hdr);
	}
	/* The body runs to the next header or to the end. */
	if (rd32(hdr + 4))
		CHECK(off + sizeof(struct vfk_cap_hdr_wire) + body_len == rd32(hdr + 4));
	else
		CHECK(hdr + sizeof(struct vfk_cap_hdr_wire) + body_len == w->info + w->len);
	w->rec[w->n++] = (struct walk_rec){ id, version, body, body_len };
	if (w->stop_at && w->n == w->stop_at)
		return WALK_STOP;
	return 0;
}

static struct walk walk_state;

static void fuzz_caps_walk(const uint8_t *p, size_t len, const struct params *pa)
{
	struct walk *w = &walk_state;
	int rc;

	w->info = p;
	w->len = len;
	w->base = pa->a % 8192;
	w->n = 0;
	w->stop_at = (unsigned)(pa->c % 8);
	rc = vfk_caps_walk(p, len, w->base, pa->b, walk_cb, w);
	CHECK(rc == 0 || rc == -EINVAL || rc == WALK_STOP);
	if (rc == WALK_STOP)
		CHECK(w->stop_at && w->n == w->stop_at);
	if (pa->b == 0)
		CHECK(rc == 0 && w->n == 0);
}

static void fuzz_sparse(const uint8_t *p, size_t len, const struct params *pa)
{
	uint32_t n;
	const uint8_t *areas;
	uint64_t prev_end = 0;
	int rc;

	POISON(n);
	POISON(areas);
	rc = vfk_decode_sparse(p, len, pa->c, &n, &areas);
	if (rc) {
		CHECK(decode_errno(rc));
		UNTOUCHED(n);
		UNTOUCHED(areas);
		return;
	}
	CHECK(len >= 8 && n == rd32(p) && areas == p + 8);
	CHECK(inside(areas, (size_t)n * sizeof(struct vfk_sparse_area_wire), p, len));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = rd64(areas + 16 * i), sz = rd64(areas + 16 * i + 8);

		/* The contract lets zero-size areas through for the caller to
		 * skip; they take no part in the bounds or order checks. */
		if (sz == 0)
			continue;
		CHECK(!wraps(off, sz) && off + sz <= pa->c);
		CHECK(i == 0 || off >= prev_end);
		prev_end = off + sz;
	}
}

struct cap_spec {
	uint16_t id, version;
	const uint8_t *body;
	size_t len;
};

/* Build a chain into `cap` bytes; returns the builder's final state. */
static struct vfk_caps_builder build(uint8_t *buf, size_t cap, size_t base,
				     const struct cap_spec *c, unsigned n)
{
	struct vfk_caps_builder b;

	vfk_caps_init(&b, buf, cap, base);
	for (unsigned i = 0; i < n; i++) {
		int rc = vfk_caps_add(&b, c[i].id, c[i].version, c[i].body, c[i].len);

		CHECK(rc == b.err && (rc == 0 || rc == -ENOSPC));
	}
	return b;
}

static void fuzz_caps_build(const uint8_t *p, size_t len, const struct params *pa)
{
	static struct cap_spec spec[512];
	struct walk *w = &walk_state;
	/* base 0 would put the first capability at offset 0, which a
	 * cap_offset cannot point at (0 means "no chain"). */
	size_t cap = pa->a % 8192, base = 1 + pa->b % 255, at = 0, first;
	struct vfk_caps_builder b;
	unsigned n = 0;
	uint8_t *buf;
	int rc;

	while (n < 512 && len - at >= 5) {
		size_t bl = p[at + 4];

		spec[n].id = rd16(p + at);
		spec[n].version = rd16(p + at + 2);
		at += 5;
		if (bl > len - at)
			bl = len - at;
		spec[n].body = p + at;
		spec[n].len = bl;
		at += bl;
		n++;
	}
	buf = malloc(cap ? cap : 1);
	CHECK(buf);
	b = build(buf, cap, base, spec, n);
	if (b.err) {
		size_t need = b.len;

		/* The builder counted what it needed: that much is enough. */
		CHECK(b.err == -ENOSPC);
		CHECK(need > cap || cap < base);
		free(buf);
		cap = need;
		buf = malloc(cap ? cap : 1);
		CHECK(buf);
		b = build(buf, cap, base, spec, n);
		CHECK(b.err == 0 && b.len == need);
	}
	if (n == 0) {
		CHECK(b.len == base);
		free(buf);
		return;
	}
	/* Walking the chain gives back what was added, in order. */
	first = (base + 7) & ~(size_t)7;
	w->info = buf;
	w->len = b.len;
	w->base = base;
	w->n = 0;
	w->stop_at = 0;
	rc = vfk_caps_walk(buf, b.len, base, (uint32_t)first, walk_cb, w);
	CHECK(rc == 0 && w->n == n);
	for (unsigned i = 0; i < n; i++) {
		const struct walk_rec *r = &w->rec[i];

		CHECK(r->id == spec[i].id && r->version == spec[i].version);
		CHECK(r->body_len >= spec[i].len && r->body_len - spec[i].len < 8);
		CHECK(spec[i].len == 0 || memcmp(r->body, spec[i].body, spec[i].len) == 0);
		for (size_t k = spec[i].len; k < r->body_len; k++)
			CHECK(r->body[k] == 0); /* padding is zeroed */
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct params pa = { 0 };
	unsigned sel;
	size_t len;
	uint8_t *p;

	if (size < 1)
		return 0;
	sel = data[0] % PF_NSEL;
	len = size - 1;
	if (size > PF_PARAMS) {
		const uint8_t *t = data + size - PF_PARAMS;

		pa.a = rd32(t);
		pa.b = rd32(t + 4);
		pa.c = rd64(t + 8);
		len -= PF_PARAMS;
	}
	/* Exactly sized, so a read past the payload is a heap overflow. */
	p = malloc(len ? len : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, len);

	switch (sel) {
	case PF_HDR:
		fuzz_hdr(p, len, &pa);
		break;
	case PF_VERSION_DECODE:
		fuzz_version_decode(p, len);
		break;
	case PF_VERSION_ENCODE:
		fuzz_version_encode(p, len, &pa);
		break;
	case PF_DMA_MAP:
		fuzz_dma_map(p, len, &pa);
		break;
	case PF_DMA_UNMAP:
		fuzz_dma_unmap(p, len);
		break;
	case PF_DEVICE_INFO_REQ:
	case PF_DEVICE_INFO_REPLY:
	case PF_IO_FDS_REQ:
	case PF_IRQ_INFO_REQ:
	case PF_IRQ_INFO_REPLY:
		fuzz_info16(sel, p, len);
		break;
	case PF_REGION_INFO_REQ:
		fuzz_region_info_req(p, len);
		break;
	case PF_IRQ_SET:
		fuzz_irq_set(p, len, &pa);
		break;
	case PF_REGION_READ_REQ:
	case PF_REGION_WRITE_REQ:
	case PF_DMA_READ_REQ:
	case PF_DMA_WRITE_REQ:
		fuzz_rw_req(sel, p, len, &pa);
		break;
	case PF_REGION_READ_REPLY:
	case PF_REGION_WRITE_REPLY:
	case PF_DMA_READ_REPLY:
	case PF_DMA_WRITE_REPLY:
		fuzz_rw_reply(sel, p, len, &pa);
		break;
	case PF_WRITE_MULTI:
		fuzz_write_multi(p, len);
		break;
	case PF_FEATURE:
		fuzz_feature(p, len);
		break;
	case PF_CAPS_WALK:
		fuzz_caps_walk(p, len, &pa);
		break;
	case PF_SPARSE:
		fuzz_sparse(p, len, &pa);
		break;
	case PF_CAPS_BUILD:
		fuzz_caps_build(p, len, &pa);
		break;
	}
	free(p);
	return 0;
}
