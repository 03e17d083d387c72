/* SPDX-License-Identifier: MIT */
/*
 * A hostile host against `vfiokit serve nvme`: bad PRPs and SGLs, memory
 * the device may not touch, out-of-range LBAs, bad queue ids, doorbell
 * values past the queue, queue memory that disappears, bad enable
 * parameters, a full completion queue, a client that vanishes with I/O in
 * flight, and a storm of random commands.  Each must give the right NVMe
 * status or controller fatal status, never a crash, a hang, or a write
 * outside the namespace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nvmet.h"

static struct nvt t;

static int teardown(void **state)
{
	int st;

	(void)state;
	st = nvt_stop(&t);
	memset(&t, 0, sizeof(t));
	return st == 0 ? 0 : -1;
}

static void start(const char *const *args, const struct nvd_opts *o)
{
	int rc = nvt_start(&t, args);

	if (rc)
		fail_msg("server: %s", vfk_strerror(rc));
	if (o && (rc = nvt_open(&t, o)))
		fail_msg("driver: %s", vfk_strerror(rc));
}

static const char *const RAM[] = { "--size", "16M", NULL };

static uint16_t io(struct nvme_sqe *cmd)
{
	struct nvme_cqe cqe;
	int rc = nvd_cmd(t.d, 1, cmd, &cqe);

	if (rc)
		fail_msg("no completion: %s", vfk_strerror(rc));
	return NVT_CODE(nvd_status(&cqe));
}

static struct nvme_sqe rd(bool write, uint64_t slba, uint32_t nlb)
{
	struct nvme_sqe c = { .opc = write ? NVME_CMD_WRITE : NVME_CMD_READ, .nsid = 1 };

	c.cdw10 = (uint32_t)slba;
	c.cdw11 = (uint32_t)(slba >> 32);
	c.cdw12 = nlb - 1;
	return c;
}

/* A separate window of client memory, mapped with `prot`. */
struct win {
	int fd;
	uint8_t *p;
	uint64_t iova, size;
};

static void win_map(struct win *w, uint64_t iova, uint64_t size, uint32_t prot)
{
	struct vfk_dma_mapping m;

	w->fd = memfd_create("win", MFD_CLOEXEC);
	assert_true(w->fd >= 0);
	assert_int_equal(ftruncate(w->fd, (off_t)size), 0);
	w->p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	assert_true(w->p != MAP_FAILED);
	w->iova = iova;
	w->size = size;
	m = (struct vfk_dma_mapping){ .iova = iova, .size = size, .vaddr = w->p, .fd = w->fd,
				      .prot = prot };
	assert_int_equal(vfk_device_dma_map(t.dev, &m), 0);
}

static void win_free(struct win *w)
{
	munmap(w->p, w->size);
	close(w->fd);
}

/* ---- data pointers ---- */

static void test_bad_prps(void **state)
{
	struct nvd_opts o = { 0 };
	struct nvme_sqe c;
	uint64_t *list;
	uint64_t liova;

	(void)state;
	start(RAM, &o);
	list = nvd_alloc(t.d, 4096, &liova);
	assert_non_null(list);
	/* PRP1 not dword aligned. */
	c = rd(false, 0, 1);
	c.prp1 = t.d->buf_iova + 2;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_PRP_OFFSET_INVALID));
	/* Two pages, PRP2 with an offset. */
	c = rd(false, 0, 16);
	c.prp1 = t.d->buf_iova;
	c.prp2 = t.d->buf_iova + 4096 + 8;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_PRP_OFFSET_INVALID));
	/* List with a misaligned entry. */
	c = rd(false, 0, 24);
	c.prp1 = t.d->buf_iova;
	c.prp2 = liova;
	list[0] = t.d->buf_iova + 4096;
	list[1] = t.d->buf_iova + 8192 + 512;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_PRP_OFFSET_INVALID));
	/* List pointer not qword aligned, or not mapped. */
	c.prp2 = liova + 4;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_PRP_OFFSET_INVALID));
	c.prp2 = 0x7700000000ull;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	/* Data pages not mapped. */
	c = rd(false, 0, 1);
	c.prp1 = 0x7700000000ull;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	c = rd(true, 0, 16);
	c.prp1 = t.d->buf_iova;
	c.prp2 = 0x7700001000ull;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	/* A list at the end of its page chaining to itself, with every
	 * entry pointing at the list page: bounded, and well defined. */
	c = rd(false, 0, 1024);
	c.prp1 = liova;
	c.prp2 = liova + 4096 - 16;
	for (unsigned i = 0; i < 512; i++)
		list[i] = liova;
	assert_int_equal(io(&c), 0);
	/* The transfer length wraps the address space. */
	c = rd(false, 0, 16);
	c.prp1 = ~0ull - 4095;
	c.prp2 = 0;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	/* Still fine. */
	c = rd(true, 1, 8);
	c.prp1 = t.d->buf_iova;
	assert_int_equal(io(&c), 0);
}

static void test_protection(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2 };
	struct win ro, wo;
	struct nvme_sqe c;

	(void)state;
	start(RAM, &o);
	win_map(&ro, 1ull << 36, 1u << 20, VFK_DMA_READ);
	win_map(&wo, 1ull << 37, 1u << 20, VFK_DMA_WRITE);
	memset(ro.p, 0x11, 1u << 20);
	/* The device may read the read-only window, not write it. */
	c = rd(false, 0, 8);
	c.prp1 = ro.iova;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	c = rd(true, 0, 8);
	c.prp1 = ro.iova;
	assert_int_equal(io(&c), 0);
	for (unsigned i = 0; i < (1u << 20); i++)
		if (ro.p[i] != 0x11)
			fail_msg("read-only window changed at %u", i);
	/* And the write-only one the other way round. */
	c = rd(true, 0, 8);
	c.prp1 = wo.iova;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	c = rd(false, 0, 8);
	c.prp1 = wo.iova;
	assert_int_equal(io(&c), 0);
	assert_int_equal(wo.p[0], 0x11);
	/* A queue in the read-only window cannot be a completion queue. */
	{
		struct nvme_sqe q = { .opc = NVME_ADM_DELETE_SQ, .cdw10 = 2 };

		assert_int_equal(nvt_admin(&t, &q, NULL), 0);
		q.opc = NVME_ADM_DELETE_CQ;
		assert_int_equal(nvt_admin(&t, &q, NULL), 0);
		q = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = ro.iova,
				       .cdw10 = 2 | (15u << 16), .cdw11 = 1 };
		assert_int_equal(NVT_CODE(nvt_admin(&t, &q, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
		q.prp1 = wo.iova;
		assert_int_equal(nvt_admin(&t, &q, NULL), 0);
		/* ... nor a write-only one a submission queue. */
		q = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .prp1 = wo.iova + 4096,
				       .cdw10 = 2 | (15u << 16), .cdw11 = 1 | (2u << 16) };
		assert_int_equal(NVT_CODE(nvt_admin(&t, &q, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	}
	/* Bus mastering off: nothing is fetched until it is back. */
	{
		uint16_t cmd = 0x2;
		struct nvme_cqe e;

		assert_int_equal(vfk_device_config_write(t.dev, 4, &cmd, 2), 0);
		c = rd(false, 0, 8);
		c.prp1 = t.d->buf_iova;
		c.cid = 999;
		nvd_sq_push(t.d, &t.d->ioq[1], &c);
		nvd_sq_ring(t.d, &t.d->ioq[1]);
		usleep(50000);
		assert_false(nvd_cq_pop(t.d, &t.d->ioq[1], &e));
		cmd = 0x6;
		assert_int_equal(vfk_device_config_write(t.dev, 4, &cmd, 2), 0);
		assert_int_equal(nvd_wait_cqe(t.d, &t.d->ioq[1], &e, 2000), 0);
		assert_int_equal(e.cid, 999);
		nvd_cq_ring(t.d, &t.d->ioq[1]);
	}
	win_free(&ro);
	win_free(&wo);
}

static void sgl_data(struct nvme_sqe *c, uint64_t addr, uint32_t len, uint8_t type)
{
	struct nvme_sgl_desc d = { .addr = addr, .len = len, .type = type };

	c->flags = 1u << 6; /* PSDT 01 */
	memcpy(&c->prp1, &d, 16);
}

static void test_sgls(void **state)
{
	struct nvd_opts o = { 0 };
	struct nvme_sgl_desc *seg;
	uint64_t siova;
	struct nvme_sqe c;

	(void)state;
	start(RAM, &o);
	seg = nvd_alloc(t.d, 8192, &siova);
	/* One data block in the command. */
	nvt_pattern(t.d->buf, 4096, 40, 1);
	c = rd(true, 40, 8);
	sgl_data(&c, t.d->buf_iova, 4096, NVME_SGL_DATA_BLOCK << 4);
	assert_int_equal(io(&c), 0);
	/* Three blocks through a last segment, odd sizes and addresses. */
	memset(t.d->buf, 0, 8192);
	seg[0] = (struct nvme_sgl_desc){ t.d->buf_iova + 100, 1000, { 0 }, 0 };
	seg[1] = (struct nvme_sgl_desc){ t.d->buf_iova + 5000, 3000, { 0 }, 0 };
	seg[2] = (struct nvme_sgl_desc){ t.d->buf_iova + 20000, 96, { 0 }, 0 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 48, NVME_SGL_LAST_SEGMENT << 4);
	assert_int_equal(io(&c), 0);
	{
		uint8_t want[4096], got[4096];

		nvt_pattern(want, 4096, 40, 1);
		memcpy(got, t.d->buf + 100, 1000);
		memcpy(got + 1000, t.d->buf + 5000, 3000);
		memcpy(got + 4000, t.d->buf + 20000, 96);
		assert_memory_equal(got, want, 4096);
	}
	/* Segment -> last segment chain. */
	seg[0] = (struct nvme_sgl_desc){ t.d->buf_iova, 2048, { 0 }, 0 };
	seg[1] = (struct nvme_sgl_desc){ siova + 4096, 16, { 0 }, NVME_SGL_LAST_SEGMENT << 4 };
	seg[256] = (struct nvme_sgl_desc){ t.d->buf_iova + 8192, 2048, { 0 }, 0 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 32, NVME_SGL_SEGMENT << 4);
	assert_int_equal(io(&c), 0);
	/* Too short, too long. */
	c = rd(false, 40, 8);
	sgl_data(&c, t.d->buf_iova, 4095, 0);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_DATA));
	seg[0] = (struct nvme_sgl_desc){ t.d->buf_iova, 4096, { 0 }, 0 };
	seg[1] = (struct nvme_sgl_desc){ t.d->buf_iova, 512, { 0 }, 0 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 32, NVME_SGL_LAST_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_DATA));
	/* Unknown type, keyed/offset subtypes. */
	c = rd(false, 40, 8);
	sgl_data(&c, t.d->buf_iova, 4096, 0xf0);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_TYPE));
	c = rd(false, 40, 8);
	sgl_data(&c, t.d->buf_iova, 4096, 0x01);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_TYPE));
	/* A segment descriptor in the middle, or inside a last segment. */
	seg[0] = (struct nvme_sgl_desc){ siova, 16, { 0 }, NVME_SGL_SEGMENT << 4 };
	seg[1] = (struct nvme_sgl_desc){ t.d->buf_iova, 4096, { 0 }, 0 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 32, NVME_SGL_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_LAST));
	seg[0] = (struct nvme_sgl_desc){ siova, 16, { 0 }, NVME_SGL_SEGMENT << 4 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 16, NVME_SGL_LAST_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_LAST));
	/* A segment that points at itself: bounded. */
	seg[0] = (struct nvme_sgl_desc){ t.d->buf_iova, 0, { 0 }, 0 };
	seg[1] = (struct nvme_sgl_desc){ siova, 32, { 0 }, NVME_SGL_SEGMENT << 4 };
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 32, NVME_SGL_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_COUNT));
	/* Segment not mapped; segment length not a multiple of 16. */
	c = rd(false, 40, 8);
	sgl_data(&c, 0x7700000000ull, 32, NVME_SGL_LAST_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	c = rd(false, 40, 8);
	sgl_data(&c, siova, 24, NVME_SGL_LAST_SEGMENT << 4);
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_SGL_INVALID_LAST));
	/* PSDT 11 is reserved; admin commands take PRPs only. */
	c = rd(false, 40, 8);
	c.flags = 3u << 6;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_FIELD));
	{
		struct nvme_sqe a = { .opc = NVME_ADM_IDENTIFY, .cdw10 = 1, .flags = 1u << 6 };

		assert_int_equal(NVT_CODE(nvt_admin(&t, &a, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	}
}

static void test_bad_lbas_and_fields(void **state)
{
	struct nvd_opts o = { 0 };
	struct nvme_sqe c;
	struct nvme_dsm_range *r;
	uint64_t riova;

	(void)state;
	assert_int_equal(nvt_file(&t, 4u << 20), 0);
	start(NULL, &o);
	r = nvd_alloc(t.d, 4096, &riova);
	c = rd(true, (4u << 20) / 512, 1);
	c.prp1 = t.d->buf_iova;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_LBA_RANGE));
	c = rd(true, ~0ull - 3, 8);
	c.prp1 = t.d->buf_iova;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_LBA_RANGE));
	c = (struct nvme_sqe){ .opc = NVME_CMD_WRITE_ZEROES, .nsid = 1, .cdw10 = ~0u, .cdw11 = ~0u,
			       .cdw12 = 0xffff };
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_LBA_RANGE));
	c = (struct nvme_sqe){ .opc = NVME_CMD_WRITE_ZEROES, .nsid = 1,
			       .cdw10 = (4u << 20) / 512 - 100, .cdw12 = 200 };
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_LBA_RANGE));
	/* DSM: 256 ranges, one of them wrapping; its list not mapped. */
	for (unsigned i = 0; i < 256; i++)
		r[i] = (struct nvme_dsm_range){ 0, 1, i };
	r[200] = (struct nvme_dsm_range){ 0, 0xffffffffu, ~0ull - 10 };
	c = (struct nvme_sqe){ .opc = NVME_CMD_DSM, .nsid = 1, .cdw10 = 255, .cdw11 = NVME_DSM_AD,
			       .prp1 = riova };
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_LBA_RANGE));
	c.prp1 = 0x7700000000ull;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
	/* Protection information, fused operations, namespace ids. */
	c = rd(false, 0, 1);
	c.prp1 = t.d->buf_iova;
	c.cdw12 |= 1u << 26;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_FIELD));
	c = rd(false, 0, 1);
	c.prp1 = t.d->buf_iova;
	c.flags = 1;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_FIELD));
	for (uint32_t ns = 0; ns < 3; ns += 2) {
		c = rd(false, 0, 1);
		c.nsid = ns;
		c.prp1 = t.d->buf_iova;
		assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_NS));
	}
	c = rd(false, 0, 1);
	c.nsid = 0xffffffffu;
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_NS));
	c = (struct nvme_sqe){ .opc = NVME_CMD_FLUSH, .nsid = 7 };
	assert_int_equal(io(&c), NVT_SC(0, NVME_SC_INVALID_NS));
	/* Get Log Page: too long, offset not dword aligned. */
	{
		struct nvme_sqe a = { .opc = NVME_ADM_GET_LOG, .cdw10 = 2 | (0xffffu << 16),
				      .cdw11 = 0xffff, .prp1 = t.d->buf_iova };

		assert_int_equal(NVT_CODE(nvt_admin(&t, &a, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
		a.cdw10 = 2 | (127u << 16);
		a.cdw11 = 0;
		a.cdw12 = 2;
		assert_int_equal(NVT_CODE(nvt_admin(&t, &a, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	}
	{
		struct stat st;

		assert_int_equal(stat(t.file, &st), 0);
		assert_int_equal(st.st_size, 4u << 20);
	}
}

/* ---- queues, doorbells, controller ---- */

static void test_doorbell_values(void **state)
{
	struct nvd_opts o = { .qsize = 16 };
	struct nvme_sqe aer = { .opc = NVME_ADM_AER, .cid = 500 };
	struct nvme_cqe e;
	struct nvme_sqe c;
	uint8_t log[512];

	(void)state;
	start(RAM, &o);
	nvd_sq_push(t.d, &t.d->aq, &aer);
	nvd_sq_ring(t.d, &t.d->aq);
	/* Tails and heads far past the queue: ignored, reported once. */
	nvd_db_write(t.d, 2, 0xffffffffu);
	nvd_db_write(t.d, 3, 0x10000);
	assert_int_equal(nvd_wait_cqe(t.d, &t.d->aq, &e, 2000), 0);
	nvd_cq_ring(t.d, &t.d->aq);
	assert_int_equal(e.cid, 500);
	assert_int_equal(e.dw0 & 0xffff, NVME_AER_ERR_INVALID_DB_VALUE << 8);
	/* The queue keeps working once the doorbells are right again. */
	nvd_db_write(t.d, 3, 0);
	c = rd(true, 3, 1);
	c.prp1 = t.d->buf_iova;
	assert_int_equal(io(&c), 0);
	/* The error log shows the doorbell errors, not tied to a command. */
	assert_int_equal(nvt_get_log(&t, NVME_LOG_ERROR, log, 512, false), 0);
	{
		struct nvme_error_log el;

		memcpy(&el, log, sizeof(el));
		assert_true(el.error_count >= 1);
		assert_int_equal(el.sqid, 0xffff);
	}
	/* A storm over the whole doorbell page. */
	for (unsigned i = 4; i < 1024; i++)
		nvd_db_write(t.d, i, (uint32_t)random());
	usleep(50000);
	c = rd(false, 3, 1);
	c.prp1 = t.d->buf_iova;
	assert_int_equal(io(&c), 0);
	/* Admin queue doorbell past its size: admin still works after. */
	nvd_db_write(t.d, 0, 33);
	usleep(20000);
	nvd_db_write(t.d, 0, t.d->aq.sq_tail);
	assert_int_equal(nvt_identify(&t, NVME_CNS_CTRL, 0, NULL), 0);
}

/* Shadow doorbells: a register write that carries an older tail than the
 * shadow (a trapped write arriving late) must not run anything twice. */
static void test_stale_doorbell_register(void **state)
{
	static const char *const args[] = { "--size", "16M", "--trap-doorbells", NULL };
	struct nvd_opts o = { .dbbuf = true, .qsize = 16 };
	struct nvd_queue *q;
	struct nvme_cqe e;

	(void)state;
	start(args, &o);
	q = &t.d->ioq[1];
	for (unsigned round = 0; round < 3; round++) {
		uint32_t old_tail = q->sq_tail;

		for (unsigned i = 0; i < 5; i++) {
			struct nvme_sqe c = rd(false, i, 1);

			c.prp1 = t.d->buf_iova;
			c.cid = (uint16_t)(round * 10 + i);
			nvd_sq_push(t.d, q, &c);
			if (i == 2)
				old_tail = q->sq_tail;
		}
		nvd_sq_ring(t.d, q);
		for (unsigned i = 0; i < 5; i++) {
			assert_int_equal(nvd_wait_cqe(t.d, q, &e, 2000), 0);
			assert_int_equal(e.cid, round * 10 + i);
		}
		nvd_cq_ring(t.d, q);
		/* The register now says an older tail. */
		nvd_db_write(t.d, 2, old_tail);
		nvd_db_write(t.d, 3, 0);
		usleep(50000);
		assert_false(nvd_cq_pop(t.d, q, &e));
	}
}

static void test_queue_memory_vanishes(void **state)
{
	struct nvd_opts o = { .no_io = true };
	struct win w;
	struct nvme_sqe c;
	uint32_t csts;

	(void)state;
	start(RAM, &o);
	win_map(&w, 1ull << 38, 65536, VFK_DMA_READ | VFK_DMA_WRITE);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 0, NULL), 0);
	c = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = w.iova, .cdw10 = 1 | (15u << 16),
			       .cdw11 = 1 };
	assert_int_equal(nvt_admin(&t, &c, NULL), 0);
	c = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .prp1 = w.iova + 4096,
			       .cdw10 = 1 | (15u << 16), .cdw11 = 1 | (1u << 16) };
	assert_int_equal(nvt_admin(&t, &c, NULL), 0);
	assert_int_equal(vfk_device_dma_unmap(t.dev, w.iova, w.size), 0);
	/* Ringing a queue whose memory is gone: controller fatal status. */
	nvd_db_write(t.d, 2, 1);
	assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_CFS, NVME_CSTS_CFS, 2000), 0);
	/* A reset recovers. */
	assert_int_equal(nvd_disable(t.d), 0);
	assert_int_equal(nvd_reg_read32(t.d, NVME_REG_CSTS, &csts), 0);
	assert_int_equal(csts, 0);
	assert_int_equal(nvd_enable(t.d), 0);
	assert_int_equal(nvt_identify(&t, NVME_CNS_CTRL, 0, NULL), 0);
	win_free(&w);
}

static void test_bad_enable(void **state)
{
	struct nvd_opts o = { .no_io = true };

	(void)state;
	start(RAM, &o);
	assert_int_equal(nvd_disable(t.d), 0);
	/* Admin queues in memory the device cannot reach. */
	assert_int_equal(nvd_reg_write64(t.d, NVME_REG_ASQ, 0x7700000000ull), 0);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_CC, NVME_CC_DEFAULT_IO | NVME_CC_EN), 0);
	assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_CFS, NVME_CSTS_CFS, 2000), 0);
	assert_int_equal(nvd_disable(t.d), 0);
	/* Page size past CAP.MPSMAX, reserved command set. */
	assert_int_equal(nvd_reg_write64(t.d, NVME_REG_ASQ, t.d->aq.sq_iova), 0);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_CC,
					 NVME_CC_DEFAULT_IO | NVME_CC_EN | (9u << 7)), 0);
	assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_CFS, NVME_CSTS_CFS, 2000), 0);
	assert_int_equal(nvd_disable(t.d), 0);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_CC,
					 NVME_CC_DEFAULT_IO | NVME_CC_EN | (7u << 4)), 0);
	assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_CFS, NVME_CSTS_CFS, 2000), 0);
	assert_int_equal(nvd_disable(t.d), 0);
	/* One-entry admin queues (AQA 0). */
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_AQA, 0), 0);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_CC, NVME_CC_DEFAULT_IO | NVME_CC_EN), 0);
	assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_CFS, NVME_CSTS_CFS, 2000), 0);
	assert_int_equal(nvd_disable(t.d), 0);
	/* Read-only registers stay. */
	assert_int_equal(nvd_reg_write64(t.d, NVME_REG_CAP, 0), 0);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_CSTS, 0xff), 0);
	{
		uint64_t cap;

		assert_int_equal(nvd_reg_read64(t.d, NVME_REG_CAP, &cap), 0);
		assert_int_equal(cap, t.d->cap);
	}
	/* And a good enable works; byte-wide register writes too. */
	assert_int_equal(nvd_enable(t.d), 0);
	assert_int_equal(nvt_identify(&t, NVME_CNS_CTRL, 0, NULL), 0);
	{
		uint8_t b = 0;

		assert_int_equal(vfk_region_write(t.dev, 0, NVME_REG_CC, &b, 1), 0);
		assert_int_equal(nvd_wait_csts(t.d, NVME_CSTS_RDY, 0, 2000), 0);
	}
}

/* A host that never consumes completions: the device never posts more than
 * the queue holds, and goes on when the host does. */
static void test_full_cq(void **state)
{
	struct nvd_opts o = { .no_io = true };
	struct nvd_queue q = { 0 };
	struct nvme_sqe c;
	struct nvme_cqe e;
	unsigned got = 0;

	(void)state;
	start(RAM, &o);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 0, NULL), 0);
	q.qid = 1;
	q.size = 64;
	q.sq = nvd_alloc(t.d, 64 * 64, &q.sq_iova);
	q.cq = nvd_alloc(t.d, 8 * 16, &q.cq_iova);
	q.phase = 1;
	c = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_CQ, .prp1 = q.cq_iova, .cdw10 = 1 | (7u << 16),
			       .cdw11 = 1 };
	assert_int_equal(nvt_admin(&t, &c, NULL), 0);
	c = (struct nvme_sqe){ .opc = NVME_ADM_CREATE_SQ, .prp1 = q.sq_iova,
			       .cdw10 = 1 | (63u << 16), .cdw11 = 1 | (1u << 16) };
	assert_int_equal(nvt_admin(&t, &c, NULL), 0);
	for (unsigned i = 0; i < 40; i++) {
		c = rd(false, i, 1);
		c.prp1 = t.d->buf_iova;
		c.cid = (uint16_t)i;
		nvd_sq_push(t.d, &q, &c);
	}
	nvd_sq_ring(t.d, &q);
	usleep(100000);
	/* Seven entries (a full 8-entry queue), in order, nothing more. */
	q.size = 8;
	while (nvd_cq_pop(t.d, &q, &e)) {
		assert_int_equal(e.cid, got);
		got++;
		if (got == 7)
			break;
	}
	assert_int_equal(got, 7);
	usleep(50000);
	assert_false(nvd_cq_pop(t.d, &q, &e));
	/* Consume as they come. */
	nvd_cq_ring(t.d, &q);
	while (got < 40) {
		assert_int_equal(nvd_wait_cqe(t.d, &q, &e, 2000), 0);
		assert_int_equal(e.cid, got);
		got++;
		nvd_cq_ring(t.d, &q);
	}
}

/* The client vanishes with I/O in flight; the server stays up, a new
 * client can use the controller. */
static void test_vanish_in_flight(void **state)
{
	struct nvd_opts o = { .qsize = 128 };

	(void)state;
	assert_int_equal(nvt_file(&t, 64u << 20), 0);
	start(NULL, &o);
	for (int round = 0; round < 5; round++) {
		for (unsigned i = 0; i < 100; i++) {
			struct nvme_sqe c = rd(i & 1, i * 128, 128);

			c.prp1 = t.d->buf_iova;
			c.prp2 = t.d->list_iova;
			c.cid = (uint16_t)i;
			nvd_sq_push(t.d, &t.d->ioq[1], &c);
		}
		for (unsigned i = 0; i < 15; i++)
			t.d->list[i] = t.d->buf_iova + 4096 * (i + 1);
		nvd_sq_ring(t.d, &t.d->ioq[1]);
		/* Closing the connection without any unmap first. */
		vfk_device_close(t.dev);
		t.dev = NULL;
		munmap(t.d->mem, t.d->mem_size);
		close(t.d->memfd);
		free(t.d);
		t.d = NULL;
		t.dev = tsrv_open(&t.srv, NULL);
		assert_non_null(t.dev);
		assert_int_equal(nvt_open(&t, &o), 0);
	}
	{
		struct nvme_sqe c = rd(false, 0, 8);

		c.prp1 = t.d->buf_iova;
		assert_int_equal(io(&c), 0);
	}
}

/* Random commands on the admin and I/O queues: every one completes, the
 * server survives, nothing lands outside the namespace. */
static void test_random_commands(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2, .qsize = 64 };
	struct win scratch;
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	assert_int_equal(nvt_file(&t, 8u << 20), 0);
	start(NULL, &o);
	win_map(&scratch, 1ull << 39, 4u << 20, VFK_DMA_READ | VFK_DMA_WRITE);
	for (unsigned iter = 0; iter < 3000; iter++) {
		unsigned qi = iter % 3;
		struct nvd_queue *q = qi ? &t.d->ioq[qi] : &t.d->aq;
		struct nvme_sqe c;
		uint32_t *w = (uint32_t *)&c;
		struct nvme_cqe e;

		for (unsigned i = 0; i < 16; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			w[i] = (uint32_t)seed;
		}
		c.opc &= qi ? 0x0f : 0x1f;
		if (!qi && (c.opc == NVME_ADM_DELETE_SQ || c.opc == NVME_ADM_DELETE_CQ ||
			    c.opc == NVME_ADM_CREATE_SQ || c.opc == NVME_ADM_CREATE_CQ))
			c.cdw10 = (c.cdw10 & ~0xffffu) | (3 + (c.cdw10 & 7)); /* not ours */
		if (!qi && c.opc == NVME_ADM_AER)
			c.opc = NVME_ADM_GET_FEAT;
		/* Data pointers into the scratch window, or anywhere. */
		if (seed & 1) {
			c.prp1 = scratch.iova + (c.prp1 & ((4u << 20) - 1));
			c.prp2 = scratch.iova + (c.prp2 & ((4u << 20) - 1));
		}
		if (seed & 2)
			c.nsid = 1;
		if (seed & 4)
			c.cdw12 &= 0xff;
		if (seed & 8)
			c.flags &= 0xc0;
		nvd_sq_push(t.d, q, &c);
		nvd_sq_ring(t.d, q);
		if (nvd_wait_cqe(t.d, q, &e, 5000))
			fail_msg("command %u (opc %#x on q%u) never completed", iter, c.opc, qi);
		nvd_cq_ring(t.d, q);
		if (NVT_CODE(nvd_status(&e)) == NVT_SC(0, NVME_SC_INTERNAL))
			fail_msg("internal error for opc %#x", c.opc);
	}
	{
		struct stat st;
		uint32_t csts;

		assert_int_equal(nvd_reg_read32(t.d, NVME_REG_CSTS, &csts), 0);
		assert_int_equal(csts & NVME_CSTS_CFS, 0);
		assert_int_equal(stat(t.file, &st), 0);
		assert_int_equal(st.st_size, 8u << 20);
	}
	win_free(&scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bad_prps, teardown),
		cmocka_unit_test_teardown(test_protection, teardown),
		cmocka_unit_test_teardown(test_sgls, teardown),
		cmocka_unit_test_teardown(test_bad_lbas_and_fields, teardown),
		cmocka_unit_test_teardown(test_doorbell_values, teardown),
		cmocka_unit_test_teardown(test_stale_doorbell_register, teardown),
		cmocka_unit_test_teardown(test_queue_memory_vanishes, teardown),
		cmocka_unit_test_teardown(test_bad_enable, teardown),
		cmocka_unit_test_teardown(test_full_cq, teardown),
		cmocka_unit_test_teardown(test_vanish_in_flight, teardown),
		cmocka_unit_test_teardown(test_random_commands, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
