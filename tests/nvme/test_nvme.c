/* SPDX-License-Identifier: MIT */
/*
 * The nvme model through the client library, against real `vfiokit serve
 * nvme` processes: identity and BAR layout, enable/disable/shutdown,
 * Identify, features, log pages, asynchronous events, reads and writes on
 * several queues with MSI-X, INTx and polling, shadow doorbells, the
 * message count per I/O, resets at any time, and the file backing's data
 * safety (a flush, a FUA write or a disabled write cache leaves no dirty
 * page cache behind; completed writes survive SIGKILL).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nvmet.h"

static struct nvt t;
static char loop_dev[64]; /* a loop device to detach, if a test made one */

static int teardown(void **state)
{
	int st;

	(void)state;
	nvt_close(&t);
	/* The server's exit status: leak-free and clean under ASan. */
	st = t.srv.pid > 0 ? tsrv_stop(&t.srv) : 0;
	if (loop_dev[0]) {
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "losetup -d %s 2>/dev/null", loop_dev);
		if (system(cmd))
			(void)0;
		loop_dev[0] = 0;
	}
	nvt_stop(&t); /* removes the backing file */
	memset(&t, 0, sizeof(t));
	return st == 0 ? 0 : -1; /* clean exit, leak-free under ASan */
}

static void start(const char *const *args, const struct nvd_opts *o)
{
	int rc = nvt_start(&t, args);

	if (rc)
		fail_msg("server: %s", vfk_strerror(rc));
	if (o) {
		rc = nvt_open(&t, o);
		if (rc)
			fail_msg("driver: %s", vfk_strerror(rc));
	}
}

static const char *const RAM_64M[] = { "--size", "64M", NULL };

/* ---- identity ---- */

static void test_identity_and_bar_layout(void **state)
{
	struct vfk_region_info ri;
	uint32_t class, id, vs, magic;
	uint64_t cap;

	(void)state;
	start(RAM_64M, NULL);
	assert_int_equal(vfk_device_config_read(t.dev, 0, &id, 4), 0);
	assert_int_equal(id, NVME_VFK_VENDOR | ((uint32_t)NVME_VFK_DEVICE << 16));
	assert_int_equal(vfk_device_config_read(t.dev, 8, &class, 4), 0);
	assert_int_equal(class >> 8, NVME_VFK_CLASS); /* what Linux's nvme driver binds by */
	assert_int_equal(vfk_region_get_info(t.dev, 0, &ri), 0);
	assert_int_equal(ri.size, NVME_BAR0_SIZE);
	/* Everything but the register page is offered for mapping: the
	 * doorbells, and the MSI-X table and PBA with MSIX_MAPPABLE (the
	 * default layout, as vfio-pci's). */
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].offset, NVME_DB_OFFSET);
	assert_int_equal(ri.areas[0].size, NVME_BAR0_SIZE - NVME_DB_OFFSET);
	assert_true(ri.msix_mappable);
	t.d = calloc(1, sizeof(*t.d));
	t.d->dev = t.dev;
	{
		uint16_t cmd = 0x2; /* memory decoding on */

		assert_int_equal(vfk_device_config_write(t.dev, 4, &cmd, 2), 0);
	}
	assert_int_equal(nvd_reg_read64(t.d, NVME_REG_CAP, &cap), 0);
	assert_int_equal(nvd_reg_read32(t.d, NVME_REG_VS, &vs), 0);
	assert_int_equal(vs, 0x00010400);
	assert_int_equal(NVME_CAP_MQES(cap), 1023);
	assert_true(cap & (1ull << 16));          /* CQR */
	assert_true(cap & (1ull << 37));          /* NVM command set */
	assert_int_equal(NVME_CAP_DSTRD(cap), 0);
	assert_int_equal(NVME_CAP_MPSMIN(cap), 0);
	assert_int_equal(nvd_reg_read32(t.d, NVME_REG_VFK_MAGIC, &magic), 0);
	assert_int_equal(magic, NVME_VFK_MAGIC);
	free(t.d);
	t.d = NULL;
}

static void test_identify(void **state)
{
	struct nvd_opts o = { .no_io = true };
	uint8_t id[4096], ns[4096];
	uint64_t nsze;
	uint32_t lbaf;

	(void)state;
	start(RAM_64M, &o);
	assert_int_equal(nvt_identify(&t, NVME_CNS_CTRL, 0, id), 0);
	assert_int_equal(id[0] | id[1] << 8, NVME_VFK_VENDOR);
	assert_memory_equal(id + 4, "VFK", 3);                 /* serial */
	assert_memory_equal(id + 24, "vfiokit NVMe controller", 23);
	assert_int_equal(id[77], 7);                           /* MDTS */
	assert_int_equal(id[80] | id[81] << 8 | id[82] << 16, 0x010400);
	assert_true(id[257] & 1);                              /* OACS: doorbell buffer */
	assert_int_equal(id[512], 0x66);
	assert_int_equal(id[513], 0x44);
	assert_int_equal(id[516], 1);                          /* one namespace */
	assert_true(id[525] & 1);                              /* volatile write cache */
	assert_memory_equal(id + 768, "nqn.", 4);

	assert_int_equal(nvt_identify(&t, NVME_CNS_NS, 1, ns), 0);
	memcpy(&nsze, ns, 8);
	assert_int_equal(nsze, (64u << 20) / 512);
	memcpy(&lbaf, ns + 128, 4);
	assert_int_equal((lbaf >> 16) & 0xff, 9);
	assert_int_equal(t.d->nsze, nsze);
	assert_int_equal(ns[33] & 7, 1);                       /* deallocated reads zeros */

	assert_int_equal(nvt_identify(&t, NVME_CNS_NS_ACTIVE_LIST, 0, id), 0);
	assert_int_equal(id[0], 1);
	assert_int_equal(id[4], 0);
	assert_int_equal(nvt_identify(&t, NVME_CNS_NS_ACTIVE_LIST, 1, id), 0);
	assert_int_equal(id[0], 0);
	assert_int_equal(nvt_identify(&t, NVME_CNS_NS_DESC_LIST, 1, id), 0);
	assert_int_equal(id[0], 1); /* EUI-64 */
	assert_int_equal(id[12], 2); /* NGUID */
	assert_memory_equal(id + 16, ns + 104, 16);

	/* Namespaces that do not exist, CNS values not supported. */
	assert_int_equal(NVT_CODE(nvt_identify(&t, NVME_CNS_NS, 2, NULL)),
			 NVT_SC(0, NVME_SC_INVALID_NS));
	assert_int_equal(NVT_CODE(nvt_identify(&t, NVME_CNS_NS, 0, NULL)),
			 NVT_SC(0, NVME_SC_INVALID_NS));
	assert_int_equal(NVT_CODE(nvt_identify(&t, 0x10, 0, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	assert_true(nvt_identify(&t, 0x10, 0, NULL) & NVME_DNR);
}

/* ---- I/O ---- */

static void rw_roundtrip(unsigned q, uint64_t slba, uint32_t nlb, uint32_t seed)
{
	size_t len = (size_t)nlb * 512;

	nvt_pattern(t.d->buf, len, slba, seed);
	assert_int_equal(nvd_rw(t.d, q, true, slba, nlb, 0, 0), 0);
	memset(t.d->buf, 0, len);
	assert_int_equal(nvd_rw(t.d, q, false, slba, nlb, 0, 0), 0);
	if (!nvt_check(t.d->buf, len, slba, seed))
		fail_msg("q%u: %u blocks at %llu read back wrong", q, nlb, (unsigned long long)slba);
}

static void test_rw_queues_and_sizes(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 4, .qsize = 64 };
	static const uint32_t sizes[] = { 1, 7, 8, 9, 16, 255, 256, 1024 }; /* 1024: MDTS */

	(void)state;
	start(RAM_64M, &o);
	assert_int_equal(t.d->nr_ioq, 4);
	for (unsigned q = 1; q <= 4; q++)
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			rw_roundtrip(q, 1000 * q + 3 * i, sizes[i], q * 100 + i);
	/* Last block of the namespace. */
	rw_roundtrip(1, t.d->nsze - 1, 1, 77);
	/* Unaligned buffer (dword aligned): PRP1 with an offset. */
	nvt_pattern(t.d->buf + 1028, 4096, 5, 5);
	{
		struct nvme_sqe cmd = { .opc = NVME_CMD_WRITE, .nsid = 1, .cdw10 = 5, .cdw12 = 7 };
		struct nvme_cqe cqe;

		nvd_build_prp(t.d, &cmd, t.d->buf_iova + 1028, 4096, t.d->list, t.d->list_iova);
		assert_int_equal(nvd_cmd(t.d, 2, &cmd, &cqe), 0);
		assert_int_equal(nvd_status(&cqe), 0);
	}
	memset(t.d->buf, 0, 8192);
	assert_int_equal(nvd_rw(t.d, 3, false, 5, 8, 0, 0), 0);
	assert_true(nvt_check(t.d->buf, 4096, 5, 5));
}

static void test_rw_errors(void **state)
{
	struct nvd_opts o = { 0 };
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;

	(void)state;
	start(RAM_64M, &o);
	/* Past MDTS (512 KiB). */
	assert_int_equal(NVT_CODE(nvd_rw(t.d, 1, false, 0, 1025, 0, 0)),
			 NVT_SC(0, NVME_SC_INVALID_FIELD));
	/* Out of range, and across the end. */
	assert_int_equal(NVT_CODE(nvd_rw(t.d, 1, true, t.d->nsze, 1, 0, 0)),
			 NVT_SC(0, NVME_SC_LBA_RANGE));
	assert_int_equal(NVT_CODE(nvd_rw(t.d, 1, true, t.d->nsze - 1, 2, 0, 0)),
			 NVT_SC(0, NVME_SC_LBA_RANGE));
	assert_int_equal(NVT_CODE(nvd_rw(t.d, 1, false, ~0ull, 2, 0, 0)),
			 NVT_SC(0, NVME_SC_LBA_RANGE));
	/* Namespaces and opcodes. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_CMD_READ;
	cmd.nsid = 2;
	nvd_build_prp(t.d, &cmd, t.d->buf_iova, 512, NULL, 0);
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(NVT_CODE(nvd_status(&cqe)), NVT_SC(0, NVME_SC_INVALID_NS));
	assert_true(nvd_status(&cqe) & NVME_DNR);
	cmd.nsid = 1;
	cmd.opc = 0x7f;
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(NVT_CODE(nvd_status(&cqe)), NVT_SC(0, NVME_SC_INVALID_OPCODE));
	/* The queue still works. */
	rw_roundtrip(1, 10, 8, 1);
}

static void test_write_zeroes_dsm_flush(void **state)
{
	struct nvd_opts o = { 0 };
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;
	struct nvme_dsm_range *r;
	uint8_t zero[8192];

	(void)state;
	start(RAM_64M, &o);
	memset(zero, 0, sizeof(zero));
	nvt_pattern(t.d->buf, 65536, 100, 9);
	assert_int_equal(nvd_rw(t.d, 1, true, 100, 128, 0, 0), 0);
	/* Write Zeroes of blocks 104..111. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_CMD_WRITE_ZEROES;
	cmd.nsid = 1;
	cmd.cdw10 = 104;
	cmd.cdw12 = 7;
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(nvd_status(&cqe), 0);
	/* Deallocate blocks 120..135 and 200..263 (two ranges). */
	r = (struct nvme_dsm_range *)(t.d->buf + 131072);
	memset(r, 0, 4096);
	r[0].slba = 120;
	r[0].nlb = 16;
	r[1].slba = 200;
	r[1].nlb = 64;
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_CMD_DSM;
	cmd.nsid = 1;
	cmd.cdw10 = 1;
	cmd.cdw11 = NVME_DSM_AD;
	cmd.prp1 = t.d->buf_iova + 131072;
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(nvd_status(&cqe), 0);
	assert_int_equal(nvd_flush(t.d, 1), 0);
	memset(t.d->buf, 0xaa, 65536);
	assert_int_equal(nvd_rw(t.d, 1, false, 100, 128, 0, 0), 0);
	assert_true(nvt_check(t.d->buf, 4 * 512, 100, 9));
	assert_memory_equal(t.d->buf + 4 * 512, zero, 8 * 512);
	assert_true(nvt_check(t.d->buf + 12 * 512, 8 * 512, 112, 9));
	assert_memory_equal(t.d->buf + 20 * 512, zero, 8192);
	assert_true(nvt_check(t.d->buf + 36 * 512, 64 * 512, 136, 9));
	/* A range out of bounds fails the whole command, nothing done. */
	r[1].slba = t.d->nsze;
	r[1].nlb = 1;
	r[0].slba = 150;
	r[0].nlb = 1;
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(NVT_CODE(nvd_status(&cqe)), NVT_SC(0, NVME_SC_LBA_RANGE));
	assert_int_equal(nvd_rw(t.d, 1, false, 150, 1, 0, 0), 0);
	assert_true(nvt_check(t.d->buf, 512, 150, 9));
	/* Flush to every namespace. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_CMD_FLUSH;
	cmd.nsid = 0xffffffffu;
	assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
	assert_int_equal(nvd_status(&cqe), 0);
}

/* Keep `depth` commands in flight on every queue, `total` in all; each
 * CID completes exactly once. */
static void pump(unsigned nq, unsigned depth, unsigned total, bool write)
{
	static uint8_t seen[NVME_MAX_IOQ + 1][65536];
	unsigned inflight[NVME_MAX_IOQ + 1] = { 0 }, sent = 0, done = 0;
	uint16_t cid[NVME_MAX_IOQ + 1] = { 0 };

	memset(seen, 0, sizeof(seen));
	while (done < total) {
		for (unsigned q = 1; q <= nq; q++) {
			bool rang = false;
			struct nvme_cqe e;

			while (inflight[q] < depth && sent < total) {
				struct nvme_sqe cmd = { .opc = write ? NVME_CMD_WRITE : NVME_CMD_READ,
							.nsid = 1 };
				uint64_t slba = (sent * 8ull) % (t.d->nsze - 8);

				cmd.cid = cid[q]++;
				cmd.cdw10 = (uint32_t)slba;
				cmd.cdw12 = 7;
				cmd.prp1 = t.d->buf_iova + (size_t)(q * 64 + cmd.cid % 64) * 4096;
				seen[q][cmd.cid] = 1;
				nvd_sq_push(t.d, &t.d->ioq[q], &cmd);
				inflight[q]++;
				sent++;
				rang = true;
			}
			if (rang)
				nvd_sq_ring(t.d, &t.d->ioq[q]);
			rang = false;
			while (nvd_cq_pop(t.d, &t.d->ioq[q], &e)) {
				if (seen[q][e.cid] != 1)
					fail_msg("q%u: CID %u completed %s", q, e.cid,
						 seen[q][e.cid] ? "twice" : "unasked");
				seen[q][e.cid] = 2;
				assert_int_equal(nvd_status(&e), 0);
				assert_int_equal(e.sqid, q);
				inflight[q]--;
				done++;
				rang = true;
			}
			if (rang)
				nvd_cq_ring(t.d, &t.d->ioq[q]);
		}
	}
}

static void test_many_in_flight(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 4, .qsize = 32, .buf_size = 16u << 20 };
	uint64_t before;

	(void)state;
	start(RAM_64M, &o);
	before = nvt_requests(&t);
	pump(4, 31, 20000, true);
	pump(4, 31, 20000, false);
	/* The doorbell page is mapped: no message per I/O at all. */
	assert_int_equal(nvt_requests(&t) - before, 0);
}

static void test_msix_vector_per_cq(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 3, .irq = true };

	(void)state;
	start(RAM_64M, &o);
	for (unsigned q = 1; q <= 3; q++) {
		nvt_pattern(t.d->buf, 4096, q, q);
		assert_int_equal(nvd_rw(t.d, q, true, q * 8, 8, 0, 0), 0);
		assert_int_equal(nvd_wait_irq(t.d, q, 2000), 0);
		for (unsigned v = 1; v <= 3; v++)
			if (v != q)
				assert_int_equal(nvd_wait_irq(t.d, v, 0), -ETIMEDOUT);
	}
	/* Admin completions on vector 0. */
	assert_int_equal(nvt_identify(&t, NVME_CNS_CTRL, 0, NULL), 0);
	assert_int_equal(nvd_wait_irq(t.d, 0, 2000), 0);
}

/* Interrupt coalescing: up to THR+1 completions or TIME*100 us, whichever
 * first; the admin queue and vectors with Coalescing Disable are exempt. */
static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_irq_coalescing(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2, .irq = true };
	struct nvd_queue *q;
	struct nvme_cqe e;
	uint64_t t0;

	(void)state;
	start(RAM_64M, &o);
	/* 8 completions or 25.5 ms. */
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_IRQ_COALESCE, 7 | (255u << 8), NULL), 0);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_IRQ_CONFIG, 2 | (1u << 16), NULL), 0);
	while (nvd_wait_irq(t.d, 0, 50) == 0)
		;
	q = &t.d->ioq[1];
	for (unsigned i = 0; i < 3; i++) {
		struct nvme_sqe c = { .opc = NVME_CMD_READ, .nsid = 1, .cid = (uint16_t)i,
				      .prp1 = t.d->buf_iova };

		nvd_sq_push(t.d, q, &c);
	}
	nvd_sq_ring(t.d, q);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(nvd_wait_cqe(t.d, q, &e, 1000), 0);
	/* Three completions: the interrupt waits for the time limit. */
	assert_int_equal(nvd_wait_irq(t.d, 1, 5), -ETIMEDOUT);
	assert_int_equal(nvd_wait_irq(t.d, 1, 1000), 0);
	nvd_cq_ring(t.d, q);
	/* Eight: at once, well before the time limit. */
	for (unsigned i = 0; i < 8; i++) {
		struct nvme_sqe c = { .opc = NVME_CMD_READ, .nsid = 1, .cid = (uint16_t)(10 + i),
				      .prp1 = t.d->buf_iova };

		nvd_sq_push(t.d, q, &c);
	}
	t0 = ms_now();
	nvd_sq_ring(t.d, q);
	assert_int_equal(nvd_wait_irq(t.d, 1, 1000), 0);
	assert_true(ms_now() - t0 < 20);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(nvd_wait_cqe(t.d, q, &e, 1000), 0);
	nvd_cq_ring(t.d, q);
	/* Vector 2 has Coalescing Disable: every completion interrupts. */
	t0 = ms_now();
	assert_int_equal(nvd_rw(t.d, 2, false, 0, 1, 0, 0), 0);
	assert_int_equal(nvd_wait_irq(t.d, 2, 1000), 0);
	assert_true(ms_now() - t0 < 20);
}

static void test_intx_fallback(void **state)
{
	struct nvd_opts o = { .irq = true, .intx = true };
	struct nvme_sqe cmd = { .opc = NVME_CMD_READ, .nsid = 1, .cdw12 = 0 };
	struct nvme_cqe e;
	struct nvd_queue *q;

	(void)state;
	start(RAM_64M, &o);
	/* The setup's admin completions asserted the line: acknowledge as a
	 * driver does (unmask after each interrupt) until it stays quiet. */
	do
		assert_int_equal(vfk_device_irq_mask(t.d->dev, VFK_PCI_INTX, 0, 1, false), 0);
	while (nvd_wait_irq(t.d, 0, 100) == 0);
	q = &t.d->ioq[1];
	cmd.prp1 = t.d->buf_iova;
	cmd.cid = 1;
	nvd_sq_push(t.d, q, &cmd);
	nvd_sq_ring(t.d, q);
	assert_int_equal(nvd_wait_irq(t.d, 0, 2000), 0);
	assert_int_equal(nvd_wait_cqe(t.d, q, &e, 1000), 0);
	/* Level-triggered: not consumed yet, so unmasking fires again. */
	usleep(20000);
	assert_int_equal(vfk_device_irq_mask(t.d->dev, VFK_PCI_INTX, 0, 1, false), 0);
	assert_int_equal(nvd_wait_irq(t.d, 0, 2000), 0);
	/* Consumed: the line drops, unmasking is quiet. */
	nvd_cq_ring(t.d, q);
	usleep(20000);
	assert_int_equal(vfk_device_irq_mask(t.d->dev, VFK_PCI_INTX, 0, 1, false), 0);
	assert_int_equal(nvd_wait_irq(t.d, 0, 200), -ETIMEDOUT);
	/* INTMS masks the line. */
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_INTMS, 1), 0);
	cmd.cid = 2;
	nvd_sq_push(t.d, q, &cmd);
	nvd_sq_ring(t.d, q);
	assert_int_equal(nvd_wait_cqe(t.d, q, &e, 1000), 0);
	assert_int_equal(nvd_wait_irq(t.d, 0, 200), -ETIMEDOUT);
	assert_int_equal(nvd_reg_write32(t.d, NVME_REG_INTMC, 1), 0);
	assert_int_equal(nvd_wait_irq(t.d, 0, 2000), 0);
	/* The line is asserted: config space shows Interrupt Status. */
	{
		uint16_t st;

		assert_int_equal(vfk_device_config_read(t.dev, 6, &st, 2), 0);
		assert_true(st & 0x8);
	}
	nvd_cq_ring(t.d, q);
	/* Config reads while the I/O thread moves the line up and down
	 * (under ThreadSanitizer this shows whether the library guards
	 * the status register it shares with device threads). */
	for (unsigned i = 0; i < 200; i++) {
		uint16_t st;

		cmd.cid = (uint16_t)(10 + i);
		nvd_sq_push(t.d, q, &cmd);
		nvd_sq_ring(t.d, q);
		assert_int_equal(vfk_device_config_read(t.dev, 6, &st, 2), 0);
		assert_int_equal(nvd_wait_cqe(t.d, q, &e, 1000), 0);
		nvd_cq_ring(t.d, q);
	}
}

static void test_shadow_doorbells(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2, .dbbuf = true, .qsize = 64 };
	uint64_t before;

	(void)state;
	start(RAM_64M, &o);
	rw_roundtrip(1, 0, 16, 3);
	before = nvt_requests(&t);
	pump(2, 16, 5000, true);
	assert_int_equal(nvt_requests(&t) - before, 0);
	rw_roundtrip(2, 50, 1024, 4);
}

/*
 * Driver memory mapped the way QEMU maps it behind a guest IOMMU: one
 * DMA window per 4 KiB page, and pages that follow each other in IOVA
 * space apart in the file.  The I/O queues (1024 entries: a 64 KiB SQ over
 * 16 windows), PRP lists, transfers up to MDTS and an SGL data block over
 * many windows must all work, and the queues must wrap several times.
 */
static void test_iommu_page_windows(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2, .qsize = 1024, .dbbuf = true,
			      .iommu_pages = true };
	static const uint32_t sizes[] = { 1, 8, 9, 255, 1024 };

	(void)state;
	start(RAM_64M, &o);
	assert_int_equal(t.d->nr_ioq, 2);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		rw_roundtrip(1 + i % 2, 2000 + 3000 * i, sizes[i], 40 + i);
	pump(2, 32, 5000, true);
	pump(2, 32, 3000, false);
	/* An SGL data block of 64 KiB: one descriptor over 16 windows. */
	nvt_pattern(t.d->buf, 65536, 900, 9);
	for (int write = 1; write >= 0; write--) {
		struct nvme_sqe cmd = { .opc = write ? NVME_CMD_WRITE : NVME_CMD_READ,
					.flags = 1u << 6, .nsid = 1, .cdw10 = 900, .cdw12 = 127 };
		struct nvme_sgl_desc dd = { .addr = t.d->buf_iova, .len = 65536,
					    .type = NVME_SGL_DATA_BLOCK << 4 };
		struct nvme_cqe cqe;

		memcpy(&cmd.prp1, &dd, sizeof(dd));
		assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
		assert_int_equal(nvd_status(&cqe), 0);
		if (write)
			memset(t.d->buf, 0, 65536);
	}
	assert_true(nvt_check(t.d->buf, 65536, 900, 9));
}

/* Trapped doorbells: each register write is a message, but a host using
 * shadow doorbells writes the register only when the I/O thread sleeps. */
static void test_trapped_doorbells(void **state)
{
	static const char *const args[] = { "--size", "64M", "--trap-doorbells", NULL };
	struct nvd_opts o = { .nr_io_queues = 1, .dbbuf = true, .qsize = 64 };
	struct vfk_region_info ri;
	uint64_t before, msgs;

	(void)state;
	start(args, &o);
	assert_int_equal(vfk_region_get_info(t.dev, 0, &ri), 0);
	/* Only the MSI-X pages are mappable; the doorbell page is not. */
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].offset, NVME_MSIX_TABLE);
	assert_null((void *)t.d->bar0);
	rw_roundtrip(1, 0, 8, 1);
	before = nvt_requests(&t);
	pump(1, 32, 20000, false);
	msgs = nvt_requests(&t) - before;
	/* Two doorbells per batch without EventIdx; far fewer with it. */
	print_message("# trapped doorbells + shadow: %llu messages for 20000 I/Os\n",
		      (unsigned long long)msgs);
	assert_true(msgs < 2000);
	/* After idling, the first doorbell wakes the thread at once. */
	usleep(300000);
	rw_roundtrip(1, 8, 8, 2);
}

static void test_page_size_64k(void **state)
{
	static const char *const args[] = { "--size", "16M", "--page-size", "65536", NULL };
	struct nvd_opts o = { .nr_io_queues = 2 };

	(void)state;
	start(args, &o);
	assert_null((void *)t.d->bar0); /* nothing mappable in one 64K page */
	rw_roundtrip(1, 0, 8, 1);
	rw_roundtrip(2, 100, 256, 2);
}

/* ---- admin ---- */

static void test_features(void **state)
{
	struct nvd_opts o = { .no_io = true };
	uint32_t v;

	(void)state;
	start(RAM_64M, &o);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 3 | (1u << 16), &v), 0);
	assert_int_equal(v, 3 | (1u << 16));
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 100 | (100u << 16), &v), 0);
	assert_int_equal(v, (NVME_MAX_IOQ - 1) * 0x10001u);
	assert_int_equal(NVT_CODE(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 0xffff, NULL)),
			 NVT_SC(0, NVME_SC_INVALID_FIELD));
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_VOLATILE_WC, 0, 0, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_VOLATILE_WC, 0, NULL), 0);
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_VOLATILE_WC, 0, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_VOLATILE_WC, 1, 0, &v), 0);
	assert_int_equal(v, 1); /* default */
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_IRQ_COALESCE, 0x0a07, NULL), 0);
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_IRQ_COALESCE, 0, 0, &v), 0);
	assert_int_equal(v, 0x0a07);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_IRQ_CONFIG, 3 | (1u << 16), NULL), 0);
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_IRQ_CONFIG, 0, 3, &v), 0);
	assert_int_equal(v, 3 | (1u << 16));
	assert_int_equal(NVT_CODE(nvt_set_feature(&t, NVME_FEAT_IRQ_CONFIG, 999, NULL)),
			 NVT_SC(0, NVME_SC_INVALID_FIELD));
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_ARBITRATION, 3, 0, &v), 0);
	assert_int_equal(v, 4); /* changeable, not saveable */
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_TEMP_THRESH, 0, 0, &v), 0);
	assert_int_equal(v, 343);
	assert_int_equal(NVT_CODE(nvt_set_feature(&t, NVME_FEAT_POWER_MGMT, 1, NULL)),
			 NVT_SC(0, NVME_SC_INVALID_FIELD));
	{
		struct nvme_sqe cmd = { .opc = NVME_ADM_SET_FEAT,
					.cdw10 = NVME_FEAT_ARBITRATION | (1u << 31) };

		assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)),
				 NVT_SC(1, NVME_SC_FEATURE_NOT_SAVEABLE));
	}
	assert_int_equal(NVT_CODE(nvt_get_feature(&t, 0x7e, 0, 0, &v)),
			 NVT_SC(0, NVME_SC_INVALID_FIELD));
	/* A controller reset brings the defaults back. */
	assert_int_equal(nvd_disable(t.d), 0);
	assert_int_equal(nvd_enable(t.d), 0);
	assert_int_equal(nvt_get_feature(&t, NVME_FEAT_VOLATILE_WC, 0, 0, &v), 0);
	assert_int_equal(v, 1);
}

static void test_log_pages(void **state)
{
	struct nvd_opts o = { 0 };
	uint8_t log[4096];
	struct nvme_error_log e;
	uint64_t v, n_err;

	(void)state;
	start(RAM_64M, &o);
	for (unsigned i = 0; i < 5; i++)
		rw_roundtrip(1, i * 8, 8, i);
	assert_int_equal(NVT_CODE(nvd_rw(t.d, 1, false, t.d->nsze, 1, 0, 0)),
			 NVT_SC(0, NVME_SC_LBA_RANGE));
	/* SMART: reads, writes and data units are counted honestly. */
	assert_int_equal(nvt_get_log(&t, NVME_LOG_SMART, log, 512, false), 0);
	memcpy(&v, log + 64, 8);
	assert_int_equal(v, 5); /* the refused read does not count */
	memcpy(&v, log + 80, 8);
	assert_int_equal(v, 5);
	memcpy(&v, log + 48, 8);
	assert_int_equal(v, 1); /* 40 blocks written: 1 unit of 1000 */
	assert_int_equal(log[3], 100);
	memcpy(&n_err, log + 176, 8);
	assert_true(n_err >= 1);
	/* Error log: newest first, with the LBA and status. */
	assert_int_equal(nvt_get_log(&t, NVME_LOG_ERROR, log, 4096, false), 0);
	memcpy(&e, log, sizeof(e));
	assert_int_equal(e.error_count, n_err);
	assert_int_equal(e.sqid, 1);
	assert_int_equal(e.lba, t.d->nsze);
	assert_int_equal((e.status >> 1) & 0x7ff, NVT_SC(0, NVME_SC_LBA_RANGE));
	/* Firmware slot, effects. */
	assert_int_equal(nvt_get_log(&t, NVME_LOG_FW_SLOT, log, 512, false), 0);
	assert_int_equal(log[0], 1);
	assert_memory_equal(log + 8, "0.1.0", 5);
	assert_int_equal(nvt_get_log(&t, NVME_LOG_CMD_EFFECTS, log, 4096, false), 0);
	assert_int_equal(log[1024 + 4 * NVME_CMD_WRITE] & 3, 3);
	assert_int_equal(log[4 * NVME_ADM_DBBUF] & 1, 1);
	assert_int_equal(log[4 * 0x10], 0); /* no firmware commit */
	/* Unknown log page; offset past the end. */
	assert_int_equal(NVT_CODE(nvt_get_log(&t, 0x7f, log, 512, false)),
			 NVT_SC(1, NVME_SC_INVALID_LOG_PAGE));
	{
		struct nvme_sqe cmd = { .opc = NVME_ADM_GET_LOG, .cdw10 = NVME_LOG_SMART | (127u << 16),
					.cdw12 = 4096, .prp1 = t.d->buf_iova };

		assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)),
				 NVT_SC(0, NVME_SC_INVALID_FIELD));
	}
	/* The vendor statistics page has latency samples. */
	{
		static struct nvme_vfk_stats st;

		assert_int_equal(nvt_get_log(&t, NVME_LOG_VFK_STATS, &st, 4096, false), 0);
		assert_true(st.commands > 10);
		assert_true(st.io_commands <= st.commands);
	}
}

static void test_async_events(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 1, .qsize = 16 };
	struct nvme_sqe aer = { .opc = NVME_ADM_AER };
	struct nvme_cqe e;
	uint8_t log[4096];

	(void)state;
	start(RAM_64M, &o);
	for (unsigned i = 0; i < 4; i++) {
		aer.cid = (uint16_t)(100 + i);
		nvd_sq_push(t.d, &t.d->aq, &aer);
	}
	nvd_sq_ring(t.d, &t.d->aq);
	usleep(20000);
	assert_false(nvd_cq_pop(t.d, &t.d->aq, &e)); /* outstanding */
	/* A fifth is over the limit. */
	aer.cid = 104;
	nvd_sq_push(t.d, &t.d->aq, &aer);
	nvd_sq_ring(t.d, &t.d->aq);
	assert_int_equal(nvd_wait_cqe(t.d, &t.d->aq, &e, 2000), 0);
	assert_int_equal(e.cid, 104);
	assert_int_equal(NVT_CODE(nvd_status(&e)), NVT_SC(1, NVME_SC_AER_LIMIT));
	nvd_cq_ring(t.d, &t.d->aq);
	/* A tail past the queue's end: ignored, reported. */
	nvd_db_write(t.d, 2, 16);
	assert_int_equal(nvd_wait_cqe(t.d, &t.d->aq, &e, 2000), 0);
	nvd_cq_ring(t.d, &t.d->aq);
	assert_true(e.cid >= 100 && e.cid < 104);
	assert_int_equal(nvd_status(&e), 0);
	assert_int_equal(e.dw0, NVME_AER_RESULT(NVME_AER_TYPE_ERROR, NVME_AER_ERR_INVALID_DB_VALUE,
						NVME_LOG_ERROR));
	/* Masked until the error log is read. */
	nvd_db_write(t.d, 3, 9); /* CQ head past what was posted */
	usleep(50000);
	assert_false(nvd_cq_pop(t.d, &t.d->aq, &e));
	assert_int_equal(nvt_get_log(&t, NVME_LOG_ERROR, log, 512, false), 0);
	/* ... which re-arms it: the pending event (CQ head) is delivered. */
	assert_int_equal(nvd_wait_cqe(t.d, &t.d->aq, &e, 2000), 0);
	nvd_cq_ring(t.d, &t.d->aq);
	assert_int_equal(e.dw0 & 0xff07, NVME_AER_ERR_INVALID_DB_VALUE << 8);
	/* Put the doorbells back where the queue is: I/O works. */
	nvd_db_write(t.d, 2, t.d->ioq[1].sq_tail);
	nvd_db_write(t.d, 3, t.d->ioq[1].cq_head);
	rw_roundtrip(1, 0, 8, 1);
	/* A doorbell of a queue that does not exist. */
	assert_int_equal(nvt_get_log(&t, NVME_LOG_ERROR, log, 512, false), 0);
	nvd_db_write(t.d, 2 * 9, 1);
	assert_int_equal(nvd_wait_cqe(t.d, &t.d->aq, &e, 3000), 0);
	nvd_cq_ring(t.d, &t.d->aq);
	assert_int_equal(e.dw0, NVME_AER_RESULT(NVME_AER_TYPE_ERROR, NVME_AER_ERR_INVALID_DB,
						NVME_LOG_ERROR));
}

static void test_queue_admin_errors(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 1 };
	struct nvme_sqe cmd;
	uint64_t iova;
	void *mem = NULL;

	(void)state;
	start(RAM_64M, &o);
	mem = nvd_alloc(t.d, 65536, &iova);
	assert_non_null(mem);
	/* Create CQ: id 0, existing, past the limit; bad size; bad vector. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_CREATE_CQ;
	cmd.prp1 = iova;
	cmd.cdw11 = 1;
	cmd.cdw10 = 0 | (15u << 16);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QID_INVALID));
	cmd.cdw10 = 1 | (15u << 16);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QID_INVALID));
	cmd.cdw10 = 2 | (15u << 16); /* Set Features allowed one queue */
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QID_INVALID));
	/* Delete SQ 1 and CQ 1 (CQ first is refused). */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_DELETE_CQ;
	cmd.cdw10 = 1;
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)),
			 NVT_SC(1, NVME_SC_INVALID_QUEUE_DELETION));
	cmd.opc = NVME_ADM_DELETE_SQ;
	assert_int_equal(nvt_admin(&t, &cmd, NULL), 0);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QID_INVALID));
	cmd.opc = NVME_ADM_DELETE_CQ;
	assert_int_equal(nvt_admin(&t, &cmd, NULL), 0);
	cmd.cdw10 = 0;
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QID_INVALID));
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_CREATE_CQ;
	cmd.prp1 = iova;
	cmd.cdw10 = 1 | (0u << 16);
	cmd.cdw11 = 1;
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QUEUE_SIZE));
	cmd.cdw10 = 1 | (1024u << 16);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_QUEUE_SIZE));
	cmd.cdw10 = 1 | (15u << 16);
	cmd.cdw11 = 1 | (NVME_NR_VECTORS << 16);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_INVALID_VECTOR));
	cmd.cdw11 = 0; /* not physically contiguous: CAP.CQR says no */
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	cmd.cdw11 = 1;
	cmd.prp1 = iova + 512; /* not page aligned */
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	cmd.prp1 = 0x7000000000ull; /* not mapped */
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(0, NVME_SC_INVALID_FIELD));
	/* SQ on a CQ that does not exist. */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = NVME_ADM_CREATE_SQ;
	cmd.prp1 = iova;
	cmd.cdw10 = 1 | (15u << 16);
	cmd.cdw11 = 1 | (1u << 16);
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(1, NVME_SC_CQ_INVALID));
	/* Set Features Number of Queues after queues exist is refused;
	 * here none exist any more, so it is allowed again. */
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_NUM_QUEUES, 0, NULL), 0);
	/* Unknown admin opcode; Abort says "not aborted". */
	memset(&cmd, 0, sizeof(cmd));
	cmd.opc = 0x7e;
	assert_int_equal(NVT_CODE(nvt_admin(&t, &cmd, NULL)), NVT_SC(0, NVME_SC_INVALID_OPCODE));
	{
		uint32_t dw0 = 0;

		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = NVME_ADM_ABORT;
		cmd.cdw10 = 0 | (1234u << 16);
		assert_int_equal(nvt_admin(&t, &cmd, &dw0), 0);
		assert_int_equal(dw0 & 1, 1);
	}
}

/* ---- resets ---- */

/* Disable with commands in flight: every completion is posted before
 * CSTS.RDY clears or never, none after, none twice. */
static void reset_under_load(bool file, bool flr)
{
	struct nvd_opts o = { .nr_io_queues = 2, .qsize = 128, .buf_size = 8u << 20 };
	const char *args[] = { "--size", "64M", NULL };
	uint8_t seen[2][256];

	if (file)
		assert_int_equal(nvt_file(&t, 64u << 20), 0);
	start(file ? NULL : args, &o);
	for (int round = 0; round < 5; round++) {
		unsigned posted[3] = { 0 };

		memset(seen, 0, sizeof(seen));
		for (unsigned q = 1; q <= 2; q++) {
			for (unsigned i = 0; i < 120; i++) {
				struct nvme_sqe cmd = { .opc = (i & 1) ? NVME_CMD_WRITE : NVME_CMD_READ,
							.nsid = 1, .cid = (uint16_t)i };

				cmd.cdw10 = (uint32_t)(i * 64 + q * 20000);
				cmd.cdw12 = 63;
				/* 32 KiB: a PRP list for each command */
				{
					uint64_t *list = (uint64_t *)(t.d->buf + (4u << 20) +
								      (q * 128 + i) * 64);
					uint64_t liova = t.d->buf_iova + (4u << 20) + (q * 128 + i) * 64;

					nvd_build_prp(t.d, &cmd, t.d->buf_iova + q * 65536, 32768, list,
						      liova);
				}
				nvd_sq_push(t.d, &t.d->ioq[q], &cmd);
			}
			nvd_sq_ring(t.d, &t.d->ioq[q]);
		}
		if (flr)
			assert_int_equal(vfk_device_reset(t.dev), 0);
		else
			assert_int_equal(nvd_disable(t.d), 0);
		/* What is in the CQs now is all there will ever be. */
		for (unsigned q = 1; q <= 2; q++) {
			struct nvme_cqe e;

			while (nvd_cq_pop(t.d, &t.d->ioq[q], &e)) {
				assert_true(e.cid < 120);
				assert_int_equal(seen[q - 1][e.cid], 0);
				seen[q - 1][e.cid] = 1;
				posted[q]++;
			}
		}
		usleep(50000);
		for (unsigned q = 1; q <= 2; q++) {
			struct nvme_cqe e;

			assert_false(nvd_cq_pop(t.d, &t.d->ioq[q], &e));
		}
		if (flr) {
			uint16_t cmd = 0x6;
			uint32_t csts;

			assert_int_equal(vfk_device_config_write(t.dev, 4, &cmd, 2), 0);
			assert_int_equal(nvd_reg_read32(t.d, NVME_REG_CSTS, &csts), 0);
			assert_int_equal(csts, 0);
		}
		/* A fresh controller: set up again and do I/O. */
		nvd_close(t.d);
		t.d = NULL;
		assert_int_equal(nvt_open(&t, &o), 0);
		rw_roundtrip(1, 7, 16, (uint32_t)round);
		rw_roundtrip(2, 77, 16, (uint32_t)round);
		print_message("# round %d: %u + %u of 240 completed before the reset\n", round,
			      posted[1], posted[2]);
	}
}

static void test_disable_under_load_ram(void **state)
{
	(void)state;
	reset_under_load(false, false);
}

static void test_disable_under_load_file(void **state)
{
	(void)state;
	reset_under_load(true, false);
}

static void test_flr_under_load_file(void **state)
{
	(void)state;
	reset_under_load(true, true);
}

static void test_shutdown(void **state)
{
	struct nvd_opts o = { 0 };
	uint8_t log[512];
	uint64_t unsafe;

	(void)state;
	assert_int_equal(nvt_file(&t, 8u << 20), 0);
	start(NULL, &o);
	rw_roundtrip(1, 0, 64, 1);
	assert_int_equal(nvd_shutdown(t.d), 0);
	/* After shutdown, commands are not processed until a reset. */
	{
		struct nvme_sqe c = { .opc = NVME_CMD_READ, .nsid = 1, .cid = 1,
				      .prp1 = t.d->buf_iova };
		struct nvme_cqe e;

		nvd_sq_push(t.d, &t.d->ioq[1], &c);
		nvd_sq_ring(t.d, &t.d->ioq[1]);
		usleep(50000);
		assert_false(nvd_cq_pop(t.d, &t.d->ioq[1], &e));
	}
	assert_int_equal(nvd_disable(t.d), 0);
	nvd_close(t.d);
	t.d = NULL;
	assert_int_equal(nvt_open(&t, &o), 0);
	rw_roundtrip(1, 0, 64, 2);
	assert_int_equal(nvt_get_log(&t, NVME_LOG_SMART, log, 512, false), 0);
	memcpy(&unsafe, log + 144, 8);
	assert_int_equal(unsafe, 0);
	/* Leaving without shutting down counts as unsafe (for the next
	 * client of the same server). */
	nvt_close(&t);
	t.dev = tsrv_open(&t.srv, NULL);
	assert_non_null(t.dev);
	assert_int_equal(nvt_open(&t, &o), 0);
	assert_int_equal(nvt_get_log(&t, NVME_LOG_SMART, log, 512, false), 0);
	memcpy(&unsafe, log + 144, 8);
	assert_int_equal(unsafe, 1);
}

/* ---- file backing and data safety ---- */

static void test_file_backing(void **state)
{
	struct nvd_opts o = { .nr_io_queues = 2 };
	uint8_t buf[65536];
	int fd;

	(void)state;
	assert_int_equal(nvt_file(&t, 32u << 20), 0);
	start(NULL, &o);
	assert_int_equal(t.d->nsze, (32u << 20) / 512);
	rw_roundtrip(1, 2048, 128, 42);
	rw_roundtrip(2, t.d->nsze - 1024, 1024, 43);
	/* Odd-aligned buffer: served through the page cache. */
	nvt_pattern(t.d->buf + 4, 4096, 9000, 44);
	{
		struct nvme_sqe cmd = { .opc = NVME_CMD_WRITE, .nsid = 1, .cdw10 = 9000, .cdw12 = 7 };
		struct nvme_cqe cqe;

		nvd_build_prp(t.d, &cmd, t.d->buf_iova + 4, 4096, t.d->list, t.d->list_iova);
		assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
		assert_int_equal(nvd_status(&cqe), 0);
	}
	assert_int_equal(nvd_flush(t.d, 1), 0);
	fd = open(t.file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 65536, 2048 * 512), 65536);
	assert_true(nvt_check(buf, 65536, 2048, 42));
	assert_int_equal(pread(fd, buf, 4096, 9000 * 512), 4096);
	assert_true(nvt_check(buf, 4096, 9000, 44));
	close(fd);
	/* Write Zeroes and deallocate on the file. */
	{
		struct nvme_sqe cmd = { .opc = NVME_CMD_WRITE_ZEROES, .nsid = 1, .cdw10 = 2048,
					.cdw12 = 15 | NVME_RW_FUA };
		struct nvme_cqe cqe;

		assert_int_equal(nvd_cmd(t.d, 1, &cmd, &cqe), 0);
		assert_int_equal(nvd_status(&cqe), 0);
		memset(t.d->buf, 0x55, 8192);
		assert_int_equal(nvd_rw(t.d, 1, false, 2048, 16, 0, 0), 0);
		memset(buf, 0, 8192);
		assert_memory_equal(t.d->buf, buf, 8192);
	}
	/* The file keeps its size: nothing is written past the namespace. */
	{
		struct stat st;

		assert_int_equal(stat(t.file, &st), 0);
		assert_int_equal(st.st_size, 32u << 20);
	}
}

/* A block device (a loop device over a file) as the backing; skipped
 * without root or losetup. */
static void test_block_device(void **state)
{
	struct nvd_opts o = { 0 };
	char cmd[256], loop[64] = "";
	uint8_t buf[65536];
	FILE *f;
	int fd;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(nvt_file(&t, 16u << 20), 0);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", t.file);
	f = popen(cmd, "r");
	if (!f || !fgets(loop, sizeof(loop), f)) {
		if (f)
			pclose(f);
		skip();
		return;
	}
	pclose(f);
	loop[strcspn(loop, "\n")] = 0;
	strcpy(loop_dev, loop);
	{
		const char *args[] = { "--backing", loop, NULL };
		char keep[64];

		/* nvt_start adds --backing for t.file: serve the loop device. */
		strcpy(keep, t.file);
		t.file[0] = 0;
		start(args, &o);
		strcpy(t.file, keep);
	}
	assert_int_equal(t.d->nsze, (16u << 20) / 512);
	rw_roundtrip(1, 100, 128, 5);
	{
		struct nvme_sqe c = { .opc = NVME_CMD_WRITE_ZEROES, .nsid = 1, .cdw10 = 100,
				      .cdw12 = 7 | NVME_RW_FUA };
		struct nvme_cqe e;

		assert_int_equal(nvd_cmd(t.d, 1, &c, &e), 0);
		assert_int_equal(nvd_status(&e), 0);
	}
	assert_int_equal(nvd_flush(t.d, 1), 0);
	nvt_close(&t);
	assert_int_equal(tsrv_stop(&t.srv), 0);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", loop);
	assert_int_equal(system(cmd), 0);
	loop_dev[0] = 0;
	fd = open(t.file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 65536, 100 * 512), 65536);
	close(fd);
	{
		uint8_t z[4096] = { 0 };

		assert_memory_equal(buf, z, 4096);
		assert_true(nvt_check(buf + 4096, 65536 - 4096, 108, 5));
	}
}

/* cachestat(2), Linux 6.5; libc headers may not have it yet. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct cs_range {
	uint64_t off, len;
};
struct cs_stat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Blocks [lba, lba + nlb) of the backing file have nothing dirty or under
 * writeback in the page cache: what a flush, a FUA write or a disabled
 * write cache must leave.  (A SIGKILL of the server cannot show it: the
 * page cache outlives the process.)  Only noted where cachestat is
 * missing (Linux before 6.5). */
static void assert_clean(uint64_t lba, uint32_t nlb)
{
	struct cs_range r = { lba * 512, (uint64_t)nlb * 512 };
	struct cs_stat cs;
	int fd = open(t.file, O_RDONLY), err;
	long rc;

	assert_true(fd >= 0);
	rc = syscall(__NR_cachestat, fd, &r, &cs, 0);
	err = errno;
	close(fd);
	if (rc < 0 && (err == ENOSYS || err == EPERM)) {
		/* Not skip(): that would end the whole test, and the SIGKILL
		 * half of it still holds on older kernels. */
		print_message("# cachestat(2) unavailable: dirty pages not checked\n");
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(cs.nr_dirty, 0);
	assert_int_equal(cs.nr_writeback, 0);
}

/* Requests the server sent through the page cache (its statistics log). */
static uint64_t bounced(void)
{
	static struct nvme_vfk_stats st;

	assert_int_equal(nvt_get_log(&t, NVME_LOG_VFK_STATS, &st, 4096, false), 0);
	return st.bounced;
}

/* Write 8 blocks at `lba` in two PRP pieces of 4092 and 4 bytes: lengths no
 * O_DIRECT alignment divides, so the write goes through the page cache
 * whatever the file system allows.  The NVMe status, or -errno. */
static int write_buffered(uint64_t lba, uint32_t seed, uint32_t cdw12_flags)
{
	struct nvme_sqe cmd = { .opc = NVME_CMD_WRITE, .nsid = 1, .cdw10 = (uint32_t)lba,
				.cdw11 = (uint32_t)(lba >> 32), .cdw12 = 7 | cdw12_flags,
				.prp1 = t.d->buf_iova + 4, .prp2 = t.d->buf_iova + 8192 };
	struct nvme_cqe cqe;
	uint8_t pat[4096];
	int rc;

	nvt_pattern(pat, sizeof(pat), lba, seed);
	memcpy(t.d->buf + 4, pat, 4092);
	memcpy(t.d->buf + 8192, pat + 4092, 4);
	rc = nvd_cmd(t.d, 1, &cmd, &cqe);
	return rc ? rc : nvd_status(&cqe);
}

/* A flush and a FUA write leave nothing dirty behind, and after SIGKILL
 * right after them the data is in the backing file (none was held in the
 * server). */
static void test_kill_after_flush(void **state)
{
	struct nvd_opts o = { 0 };
	uint8_t buf[131072];
	uint64_t b0;
	int fd, st;

	(void)state;
	assert_int_equal(nvt_file(&t, 16u << 20), 0);
	start(NULL, &o);
	nvt_pattern(t.d->buf, 131072, 4096, 0xabc);
	assert_int_equal(nvd_rw(t.d, 1, true, 4096, 256, 0, 0), 0);
	b0 = bounced();
	assert_int_equal(write_buffered(200, 0xabc, 0), 0);
	assert_int_equal(nvd_flush(t.d, 1), 0);
	assert_clean(200, 8);
	assert_int_equal(write_buffered(100, 0xdef, NVME_RW_FUA), 0);
	assert_clean(100, 8);
	assert_int_equal(bounced() - b0, 2); /* both went through the page cache */
	kill(t.srv.pid, SIGKILL);
	waitpid(t.srv.pid, &st, 0);
	t.srv.pid = 0;
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	fd = open(t.file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 131072, 4096 * 512), 131072);
	assert_true(nvt_check(buf, 131072, 4096, 0xabc));
	assert_int_equal(pread(fd, buf, 4096, 200 * 512), 4096);
	assert_true(nvt_check(buf, 4096, 200, 0xabc));
	assert_int_equal(pread(fd, buf, 4096, 100 * 512), 4096);
	assert_true(nvt_check(buf, 4096, 100, 0xdef));
	close(fd);
	nvt_close(&t);
	unlink(t.srv.path);
	rmdir(t.srv.dir);
	unlink(t.file);
	t.file[0] = 0;
}

/* With the volatile write cache off, every write is durable at completion:
 * a write through the page cache leaves no dirty page. */
static void test_write_cache_off(void **state)
{
	struct nvd_opts o = { 0 };
	uint8_t buf[4096];
	uint64_t b0;
	int fd;

	(void)state;
	assert_int_equal(nvt_file(&t, 8u << 20), 0);
	start(NULL, &o);
	assert_int_equal(nvt_set_feature(&t, NVME_FEAT_VOLATILE_WC, 0, NULL), 0);
	b0 = bounced();
	assert_int_equal(write_buffered(8, 0x77, 0), 0);
	assert_int_equal(bounced() - b0, 1);
	assert_clean(8, 8);
	fd = open(t.file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, 4096, 8 * 512), 4096);
	close(fd);
	assert_true(nvt_check(buf, 4096, 8, 0x77));
}

/* DMA_UNMAP of the data buffers while reads into them are in flight: the
 * server waits for them before answering, nothing lands afterwards. */
static void test_unmap_in_flight(void **state)
{
	struct nvd_opts o = { .qsize = 64 };
	struct vfk_dma_mapping m;
	uint8_t *win;
	int fd;

	(void)state;
	assert_int_equal(nvt_file(&t, 64u << 20), 0);
	start(NULL, &o);
	fd = memfd_create("win", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fd, 8u << 20), 0);
	win = mmap(NULL, 8u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(win != MAP_FAILED);
	m = (struct vfk_dma_mapping){ .iova = 1ull << 40, .size = 8u << 20, .vaddr = win, .fd = fd,
				      .prot = VFK_DMA_READ | VFK_DMA_WRITE };
	for (int round = 0; round < 10; round++) {
		struct nvme_cqe e;
		unsigned got = 0;

		assert_int_equal(vfk_device_dma_map(t.dev, &m), 0);
		for (unsigned i = 0; i < 60; i++) {
			struct nvme_sqe cmd = { .opc = NVME_CMD_READ, .nsid = 1, .cid = (uint16_t)i,
						.cdw10 = i * 256, .cdw12 = 255 };
			uint64_t *list = (uint64_t *)(t.d->buf + i * 512);

			nvd_build_prp(t.d, &cmd, m.iova + (uint64_t)i * 131072, 131072, list,
				      t.d->buf_iova + i * 512);
			nvd_sq_push(t.d, &t.d->ioq[1], &cmd);
		}
		nvd_sq_ring(t.d, &t.d->ioq[1]);
		assert_int_equal(vfk_device_dma_unmap(t.dev, m.iova, m.size), 0);
		/* Everything fetched completed before the reply; what was
		 * fetched later fails cleanly. */
		memset(win, 0x5a, 8u << 20);
		while (got < 60 && nvd_wait_cqe(t.d, &t.d->ioq[1], &e, 3000) == 0) {
			uint16_t s = NVT_CODE(nvd_status(&e));

			assert_true(s == 0 || s == NVT_SC(0, NVME_SC_DATA_XFER_ERROR));
			got++;
		}
		assert_int_equal(got, 60);
		nvd_cq_ring(t.d, &t.d->ioq[1]);
		usleep(10000);
		for (size_t i = 0; i < (8u << 20); i += 4096)
			if (win[i] != 0x5a)
				fail_msg("byte %zu changed after DMA_UNMAP", i);
	}
	munmap(win, 8u << 20);
	close(fd);
	rw_roundtrip(1, 0, 8, 1);
}

static void test_vendor_counters(void **state)
{
	struct nvd_opts o = { 0 };
	uint64_t m0, m1, c0, c1;

	(void)state;
	start(RAM_64M, &o);
	assert_int_equal(nvd_reg_read64(t.d, NVME_REG_VFK_MSGS, &m0), 0);
	assert_int_equal(nvd_reg_read64(t.d, NVME_REG_VFK_CMDS, &c0), 0);
	for (unsigned i = 0; i < 100; i++)
		rw_roundtrip(1, i, 1, i);
	assert_int_equal(nvd_reg_read64(t.d, NVME_REG_VFK_MSGS, &m1), 0);
	assert_int_equal(nvd_reg_read64(t.d, NVME_REG_VFK_CMDS, &c1), 0);
	assert_int_equal(c1 - c0, 200);
	assert_int_equal(m1 - m0, 2); /* the two register reads */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_identity_and_bar_layout, teardown),
		cmocka_unit_test_teardown(test_identify, teardown),
		cmocka_unit_test_teardown(test_rw_queues_and_sizes, teardown),
		cmocka_unit_test_teardown(test_rw_errors, teardown),
		cmocka_unit_test_teardown(test_write_zeroes_dsm_flush, teardown),
		cmocka_unit_test_teardown(test_many_in_flight, teardown),
		cmocka_unit_test_teardown(test_msix_vector_per_cq, teardown),
		cmocka_unit_test_teardown(test_irq_coalescing, teardown),
		cmocka_unit_test_teardown(test_intx_fallback, teardown),
		cmocka_unit_test_teardown(test_shadow_doorbells, teardown),
		cmocka_unit_test_teardown(test_iommu_page_windows, teardown),
		cmocka_unit_test_teardown(test_trapped_doorbells, teardown),
		cmocka_unit_test_teardown(test_page_size_64k, teardown),
		cmocka_unit_test_teardown(test_features, teardown),
		cmocka_unit_test_teardown(test_log_pages, teardown),
		cmocka_unit_test_teardown(test_async_events, teardown),
		cmocka_unit_test_teardown(test_queue_admin_errors, teardown),
		cmocka_unit_test_teardown(test_disable_under_load_ram, teardown),
		cmocka_unit_test_teardown(test_disable_under_load_file, teardown),
		cmocka_unit_test_teardown(test_flr_under_load_file, teardown),
		cmocka_unit_test_teardown(test_shutdown, teardown),
		cmocka_unit_test_teardown(test_file_backing, teardown),
		cmocka_unit_test_teardown(test_block_device, teardown),
		cmocka_unit_test_teardown(test_kill_after_flush, teardown),
		cmocka_unit_test_teardown(test_write_cache_off, teardown),
		cmocka_unit_test_teardown(test_unmap_in_flight, teardown),
		cmocka_unit_test_teardown(test_vendor_counters, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
