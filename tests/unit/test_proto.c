/* SPDX-License-Identifier: MIT */
/* Unit tests of the wire codec (proto/): every decoder's accept and reject
 * paths, VERSION JSON, and capability chains. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "vfiokit/proto.h"

static void hdr(uint8_t *b, uint16_t id, uint16_t cmd, uint32_t size,
		uint32_t flags, uint32_t err)
{
	struct vfk_hdr h = { id, cmd, size, flags, err };

	vfk_hdr_encode(b, &h);
}

static void test_hdr(void **state)
{
	uint8_t b[16];
	struct vfk_hdr h;

	(void)state;
	hdr(b, 7, VFK_CMD_REGION_READ, 32, 0, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), 0);
	assert_int_equal(h.id, 7);
	assert_int_equal(h.cmd, VFK_CMD_REGION_READ);
	assert_int_equal(h.size, 32);
	assert_false(vfk_hdr_is_reply(&h));

	assert_int_equal(vfk_hdr_decode(b, 15, 4096, &h), -EINVAL); /* short */
	hdr(b, 1, 1, 15, 0, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL); /* size < 16 */
	hdr(b, 1, 1, 4097, 0, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -E2BIG);
	hdr(b, 1, 1, 16, 0x40, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL); /* unknown flag */
	hdr(b, 1, 1, 16, 2, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL); /* type 2 */
	hdr(b, 1, 1, 16, VFK_F_TYPE_REPLY | VFK_F_NO_REPLY, 0);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL);
	hdr(b, 1, 1, 16, VFK_F_ERROR, 5);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL); /* error on command */
	hdr(b, 1, 1, 16, 0, 5);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), -EINVAL); /* reserved field */
	hdr(b, 1, 1, 16, VFK_F_TYPE_REPLY | VFK_F_ERROR, 22);
	assert_int_equal(vfk_hdr_decode(b, 16, 4096, &h), 0);
	assert_true(vfk_hdr_is_reply(&h));
	assert_int_equal(h.error, 22);
	assert_string_equal(vfk_cmd_name(VFK_CMD_DMA_UNMAP), "DMA_UNMAP");
	assert_string_equal(vfk_cmd_name(14), "UNKNOWN");
	assert_string_equal(vfk_cmd_name(60000), "UNKNOWN");
}

static int version_payload(uint8_t *buf, const char *json)
{
	uint16_t maj = 0, min = 0;
	size_t n = strlen(json) + 1;

	memcpy(buf, &maj, 2);
	memcpy(buf + 2, &min, 2);
	memcpy(buf + 4, json, n);
	return (int)(4 + n);
}

static void test_version(void **state)
{
	uint8_t b[512], out[512];
	struct vfk_version v, w;
	int n;

	(void)state;
	/* What QEMU 11.1 proposes, spacing and all. */
	n = version_payload(b, "{\"capabilities\": {\"migration\": {\"pgsize\": 4096, "
			       "\"max_bitmap_size\": 268435456}, \"max_msg_fds\": 16, "
			       "\"max_data_xfer_size\": 1048576, \"pgsizes\": 4096, "
			       "\"max_dma_maps\": 65535, \"write_multiple\": true}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), 0);
	assert_int_equal(v.caps.max_msg_fds, 16);
	assert_int_equal(v.caps.max_data_xfer_size, 1048576);
	assert_int_equal(v.caps.pgsizes, 4096);
	assert_int_equal(v.caps.max_dma_maps, 65535);
	assert_true(v.caps.write_multiple);
	assert_int_equal(v.caps.mig_max_bitmap_size, 268435456);
	assert_true(v.caps.present & VFK_CAP_MIGRATION);

	/* Defaults without JSON, and with an empty object. */
	assert_int_equal(vfk_version_decode(b, 4, &v), 0);
	assert_int_equal(v.caps.max_msg_fds, VFK_DEFAULT_MAX_MSG_FDS);
	assert_int_equal(v.caps.present, 0);
	n = version_payload(b, "{}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), 0);

	/* Unknown members are ignored (forward compatibility). */
	n = version_payload(b, "{\"capabilities\":{\"new_thing\":[1,2]},\"x\":1}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), 0);

	/* Rejected: no NUL, NUL inside, trailing garbage, wrong types. */
	n = version_payload(b, "{}");
	assert_int_equal(vfk_version_decode(b, (size_t)n - 1, &v), -EINVAL);
	memcpy(b + 4, "{}\0{}", 6);
	assert_int_equal(vfk_version_decode(b, 10, &v), -EINVAL);
	n = version_payload(b, "{} x");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "[1]");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"max_msg_fds\":\"16\"}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"max_msg_fds\":-1}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"max_msg_fds\":1.5}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"pgsizes\":0}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"write_multiple\":1}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	n = version_payload(b, "{\"capabilities\":{\"twin_socket\":{\"supported\":true,"
			       "\"fd_index\":1000}}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), -EINVAL);
	assert_int_equal(vfk_version_decode(b, 3, &v), -EINVAL);

	/* Huge numbers are clamped, not wrapped. */
	n = version_payload(b, "{\"capabilities\":{\"max_msg_fds\":99999999999,"
			       "\"max_data_xfer_size\":18446744073709551615}}");
	assert_int_equal(vfk_version_decode(b, (size_t)n, &v), 0);
	assert_int_equal(v.caps.max_msg_fds, VFK_LIMIT_MSG_FDS);
	assert_int_equal(v.caps.max_data_xfer_size, VFK_LIMIT_DATA_XFER);

	/* Encode then decode gives the same capabilities. */
	memset(&v, 0, sizeof(v));
	v.minor = 0;
	vfk_version_caps_default(&v.caps);
	v.caps.present = VFK_CAP_MAX_MSG_FDS | VFK_CAP_PGSIZES | VFK_CAP_WRITE_MULTIPLE |
			 VFK_CAP_TWIN_SOCKET;
	v.caps.max_msg_fds = 8;
	v.caps.pgsizes = 0x201000;
	v.caps.write_multiple = true;
	v.caps.twin_socket = true;
	v.caps.twin_socket_fd_index = 0;
	n = vfk_version_encode(out, sizeof(out), &v);
	assert_true(n > 4);
	assert_int_equal(vfk_version_decode(out, (size_t)n, &w), 0);
	assert_int_equal(w.caps.present, v.caps.present);
	assert_int_equal(w.caps.max_msg_fds, 8);
	assert_int_equal(w.caps.pgsizes, 0x201000);
	assert_true(w.caps.write_multiple);
	assert_true(w.caps.twin_socket);
	assert_int_equal(w.caps.twin_socket_fd_index, 0);
	assert_int_equal(vfk_version_encode(out, 20, &v), -ENOSPC);
}

static void test_dma_map_unmap(void **state)
{
	struct vfk_dma_map_wire m = { 32, VFK_DMA_READ | VFK_DMA_WRITE, 0x1000, 0x10000, 0x2000 };
	struct vfk_dma_unmap_wire u = { 24, 0, 0x10000, 0x2000 };
	struct vfk_dma_map_wire om;
	struct vfk_dma_unmap_wire ou;

	(void)state;
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), 0);
	assert_int_equal(om.offset, 0x1000);
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), false, &om), 0);
	assert_int_equal(om.offset, 0); /* meaningless without an fd */
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m) - 1, true, &om), -EINVAL);
	m.argsz = 40;
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), -EINVAL);
	m.argsz = 32;
	m.flags = 4;
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), -EINVAL);
	m.flags = 1;
	m.size = 0;
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), -EINVAL);
	m.size = 2;
	m.addr = UINT64_MAX; /* last byte UINT64_MAX + 1: wraps */
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), -EOVERFLOW);
	m.addr = UINT64_MAX;
	m.size = 1; /* the very last byte of the space is fine */
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), false, &om), 0);
	m.addr = 0;
	m.offset = UINT64_MAX;
	assert_int_equal(vfk_decode_dma_map(&m, sizeof(m), true, &om), -EOVERFLOW);

	assert_int_equal(vfk_decode_dma_unmap(&u, sizeof(u), &ou), 0);
	assert_int_equal(vfk_decode_dma_unmap(&u, 1, &ou), -EINVAL);
	u.flags = VFK_DMA_UNMAP_ALL;
	assert_int_equal(vfk_decode_dma_unmap(&u, sizeof(u), &ou), -EINVAL);
	u.addr = u.size = 0;
	assert_int_equal(vfk_decode_dma_unmap(&u, sizeof(u), &ou), 0);
	u.flags = VFK_DMA_UNMAP_DIRTY_BITMAP;
	assert_int_equal(vfk_decode_dma_unmap(&u, sizeof(u), &ou), -ENOTSUP);
	u.flags = 8;
	assert_int_equal(vfk_decode_dma_unmap(&u, sizeof(u), &ou), -EINVAL);
}

static void test_region_rw(void **state)
{
	uint8_t b[64];
	struct vfk_region_rw_wire w = { 0x10, 2, 4 };
	struct vfk_rw rw, req;

	(void)state;
	memcpy(b, &w, 16);
	assert_int_equal(vfk_decode_region_read_req(b, 16, 4096, &rw), 0);
	assert_int_equal(rw.count, 4);
	assert_int_equal(vfk_decode_region_read_req(b, 17, 4096, &rw), -EINVAL);
	assert_int_equal(vfk_decode_region_read_req(b, 16, 2, &rw), -E2BIG);
	w.count = 0;
	memcpy(b, &w, 16);
	assert_int_equal(vfk_decode_region_read_req(b, 16, 4096, &rw), -EINVAL);
	w.count = 8;
	w.offset = UINT64_MAX - 3;
	memcpy(b, &w, 16);
	assert_int_equal(vfk_decode_region_read_req(b, 16, 4096, &rw), -EOVERFLOW);

	w.offset = 0;
	w.count = 4;
	memcpy(b, &w, 16);
	memcpy(b + 16, "abcd", 4);
	assert_int_equal(vfk_decode_region_write_req(b, 20, 4096, &rw), 0);
	assert_memory_equal(rw.data, "abcd", 4);
	assert_int_equal(vfk_decode_region_write_req(b, 19, 4096, &rw), -EINVAL);
	assert_int_equal(vfk_decode_region_write_req(b, 21, 4096, &rw), -EINVAL);

	/* Replies must echo the request exactly. */
	req = (struct vfk_rw){ .offset = 0, .region = 2, .count = 4 };
	assert_int_equal(vfk_decode_region_read_reply(b, 20, &req, &rw), 0);
	req.region = 3;
	assert_int_equal(vfk_decode_region_read_reply(b, 20, &req, &rw), -EINVAL);
	req.region = 2;
	assert_int_equal(vfk_decode_region_read_reply(b, 19, &req, &rw), -EINVAL);
	assert_int_equal(vfk_decode_region_write_reply(b, 16, &req), 0);
	assert_int_equal(vfk_decode_region_write_reply(b, 20, &req), -EINVAL);
}

static void test_dma_rw(void **state)
{
	uint8_t b[64];
	struct vfk_dma_rw_wire w = { 0x1000, 8 };
	struct vfk_rw rw, req = { .offset = 0x1000, .count = 8 };
	uint32_t c32 = 8;

	(void)state;
	memcpy(b, &w, 16);
	assert_int_equal(vfk_decode_dma_read_req(b, 16, 4096, &rw), 0);
	assert_int_equal(vfk_decode_dma_read_req(b, 24, 4096, &rw), -EINVAL);
	memcpy(b + 16, "01234567", 8);
	assert_int_equal(vfk_decode_dma_write_req(b, 24, 4096, &rw), 0);
	assert_memory_equal(rw.data, "01234567", 8);
	assert_int_equal(vfk_decode_dma_read_reply(b, 24, &req, &rw), 0);
	assert_int_equal(vfk_decode_dma_read_reply(b, 23, &req, &rw), -EINVAL);
	assert_int_equal(vfk_decode_dma_write_reply(b, 16, &req), 0);
	memcpy(b + 8, &c32, 4);
	assert_int_equal(vfk_decode_dma_write_reply(b, 12, &req), 0); /* 4-byte count */
	assert_int_equal(vfk_decode_dma_write_reply(b, 13, &req), -EINVAL);
	w.count = (uint64_t)1 << 33;
	memcpy(b, &w, 16);
	assert_int_equal(vfk_decode_dma_read_req(b, 16, 4096, &rw), -E2BIG);
}

static void test_irq_set(void **state)
{
	uint8_t b[64];
	struct vfk_irq_set_wire w = { 20, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
				      2, 0, 4 };
	struct vfk_irq_set s;

	(void)state;
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 4, &s), 0);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), 0); /* unassign */
	assert_int_equal(vfk_decode_irq_set(b, 20, 3, &s), -EINVAL);
	w.argsz = 20 + 16; /* argsz counting the fds as ints: accepted */
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 4, &s), 0);
	w.argsz = 21;
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 4, &s), -EINVAL);

	w = (struct vfk_irq_set_wire){ 22, VFK_IRQ_SET_DATA_BOOL | VFK_IRQ_SET_ACTION_MASK, 1, 0, 2 };
	memcpy(b, &w, 20);
	b[20] = 1;
	b[21] = 0;
	assert_int_equal(vfk_decode_irq_set(b, 22, 0, &s), 0);
	assert_non_null(s.bools);
	assert_int_equal(vfk_decode_irq_set(b, 21, 0, &s), -EINVAL);
	assert_int_equal(vfk_decode_irq_set(b, 22, 1, &s), -EINVAL); /* fds with BOOL */

	w = (struct vfk_irq_set_wire){ 20, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, 0, 0, 0 };
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), 0); /* disable */
	w.start = 1;
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), -EINVAL);
	w = (struct vfk_irq_set_wire){ 20, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_DATA_BOOL |
						   VFK_IRQ_SET_ACTION_TRIGGER, 0, 0, 1 };
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), -EINVAL); /* two data bits */
	w.flags = VFK_IRQ_SET_DATA_NONE;
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), -EINVAL); /* no action */
	w = (struct vfk_irq_set_wire){ 20, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, 0,
				       UINT32_MAX, 2 };
	memcpy(b, &w, 20);
	assert_int_equal(vfk_decode_irq_set(b, 20, 0, &s), -EOVERFLOW);
}

static void test_write_multi_feature(void **state)
{
	uint8_t b[8 + 2 * 24];
	uint64_t n = 2;
	const uint8_t *e;
	struct vfk_write_one_wire one = { 0x40, 0, 4, { 1, 2, 3, 4 } }, got;
	struct vfk_feature_wire f = { 8, 1 | VFK_FEATURE_GET }, of;
	const uint8_t *data;
	size_t dl;

	(void)state;
	memcpy(b, &n, 8);
	memcpy(b + 8, &one, 24);
	memcpy(b + 32, &one, 24);
	assert_int_equal(vfk_decode_write_multi(b, sizeof(b), &n, &e), 0);
	assert_int_equal(n, 2);
	vfk_write_multi_entry(e, 1, &got);
	assert_int_equal(got.offset, 0x40);
	assert_int_equal(vfk_decode_write_multi(b, sizeof(b) - 1, &n, &e), -EINVAL);
	one.count = 9;
	memcpy(b + 32, &one, 24);
	assert_int_equal(vfk_decode_write_multi(b, sizeof(b), &n, &e), -EINVAL);
	n = 0;
	memcpy(b, &n, 8);
	assert_int_equal(vfk_decode_write_multi(b, 8, &n, &e), -EINVAL);
	n = UINT64_MAX / 24 + 2; /* n * 24 wraps */
	memcpy(b, &n, 8);
	assert_int_equal(vfk_decode_write_multi(b, sizeof(b), &n, &e), -EINVAL);

	assert_int_equal(vfk_decode_feature(&f, 8, &of, &data, &dl), 0);
	assert_int_equal(dl, 0);
	f.flags = 1 | VFK_FEATURE_GET | VFK_FEATURE_SET;
	assert_int_equal(vfk_decode_feature(&f, 8, &of, &data, &dl), -EINVAL);
	f.flags |= VFK_FEATURE_PROBE;
	assert_int_equal(vfk_decode_feature(&f, 8, &of, &data, &dl), 0);
	f.flags = 1 << 20;
	assert_int_equal(vfk_decode_feature(&f, 8, &of, &data, &dl), -EINVAL);
}

struct walk_rec {
	int n;
	uint16_t ids[8];
	size_t lens[8];
};

static int rec(void *arg, uint16_t id, uint16_t version, const uint8_t *body, size_t len)
{
	struct walk_rec *r = arg;

	(void)version;
	(void)body;
	r->ids[r->n] = id;
	r->lens[r->n] = len;
	r->n++;
	return 0;
}

static void test_caps(void **state)
{
	uint8_t buf[256], sparse[8 + 2 * 16];
	struct vfk_caps_builder cb;
	struct walk_rec r = { 0 };
	uint32_t n = 2, zero = 0, nr;
	struct vfk_sparse_area_wire a[2] = { { 0, 0x1000 }, { 0x3000, 0xd000 } };
	const uint8_t *areas;
	struct vfk_cap_hdr_wire h;

	(void)state;
	memcpy(sparse, &n, 4);
	memcpy(sparse + 4, &zero, 4);
	memcpy(sparse + 8, a, sizeof(a));
	vfk_caps_init(&cb, buf, sizeof(buf), 32);
	assert_int_equal(vfk_caps_add(&cb, VFK_REGION_CAP_SPARSE_MMAP, 1, sparse, sizeof(sparse)), 0);
	assert_int_equal(vfk_caps_add(&cb, VFK_REGION_CAP_MSIX_MAPPABLE, 1, NULL, 0), 0);
	assert_int_equal(vfk_caps_walk(buf, cb.len, 32, 32, rec, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ids[0], VFK_REGION_CAP_SPARSE_MMAP);
	assert_int_equal(r.lens[0], sizeof(sparse));
	assert_int_equal(r.ids[1], VFK_REGION_CAP_MSIX_MAPPABLE);
	assert_int_equal(vfk_decode_sparse(buf + 40, sizeof(sparse), 0x10000, &nr, &areas), 0);
	assert_int_equal(nr, 2);
	/* Areas past the region or overlapping are rejected. */
	assert_int_equal(vfk_decode_sparse(buf + 40, sizeof(sparse), 0xffff, &nr, &areas), -EINVAL);
	a[1].offset = 0x800;
	memcpy(sparse + 8, a, sizeof(a));
	assert_int_equal(vfk_decode_sparse(sparse, sizeof(sparse), 0x10000, &nr, &areas), -EINVAL);
	/* A zero-size area, even past the region, is passed through for the
	 * caller to skip and does not count in the order check. */
	a[0].offset = 0xfffff000;
	a[0].size = 0;
	a[1].offset = 0;
	a[1].size = 0x1000;
	memcpy(sparse + 8, a, sizeof(a));
	assert_int_equal(vfk_decode_sparse(sparse, sizeof(sparse), 0x10000, &nr, &areas), 0);
	assert_int_equal(nr, 2);
	n = 3; /* more areas than bytes */
	memcpy(sparse, &n, 4);
	assert_int_equal(vfk_decode_sparse(sparse, sizeof(sparse), 0x10000, &nr, &areas), -EINVAL);

	/* A chain that loops back, points outside, or before the base. */
	memcpy(&h, buf + 32, 8);
	h.next = 32;
	memcpy(buf + 32, &h, 8);
	assert_int_equal(vfk_caps_walk(buf, cb.len, 32, 32, rec, &r), -EINVAL);
	h.next = 1000;
	memcpy(buf + 32, &h, 8);
	assert_int_equal(vfk_caps_walk(buf, cb.len, 32, 32, rec, &r), -EINVAL);
	assert_int_equal(vfk_caps_walk(buf, cb.len, 32, 8, rec, &r), -EINVAL);
	assert_int_equal(vfk_caps_walk(buf, cb.len, 32, 34, rec, &r), -EINVAL); /* unaligned */
	assert_int_equal(vfk_caps_walk(buf, 36, 32, 32, rec, &r), -EINVAL); /* header cut */

	/* Too small a buffer: -ENOSPC, but the needed size is still counted. */
	vfk_caps_init(&cb, buf, 48, 32);
	assert_int_equal(vfk_caps_add(&cb, 1, 1, sparse, sizeof(sparse)), -ENOSPC);
	assert_int_equal(cb.len, 32 + 8 + sizeof(sparse));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_dma_map_unmap),
		cmocka_unit_test(test_region_rw),
		cmocka_unit_test(test_dma_rw),
		cmocka_unit_test(test_irq_set),
		cmocka_unit_test(test_write_multi_feature),
		cmocka_unit_test(test_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
