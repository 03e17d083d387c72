/* SPDX-License-Identifier: MIT */
/*
 * Hostile client, part 2: misbehaviour of the connection itself against a
 * real `vfiokit serve dma-test` process: disconnects in the middle of a
 * message or while the server waits for a DMA reply, bad DMA replies, a
 * client that sends one byte at a time, one that never reads its replies,
 * a second client, and the DMA window limit (on a forked server built with
 * a small max_dma_maps).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostile.h"
#include "dma_test.h"

/* The `vfiokit serve dma-test` process of the running test. */
#define S (*hs_cur)
static struct hs F; /* forked server with max_dma_maps = 4 */
static struct hs X; /* a server for a test that may crash it */

#define SRC_IOVA 0x100000ull
#define DST_IOVA 0x101000ull
#define COPY_LEN 256u

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- disconnects in the middle of a message ---- */

static void test_partial_header_then_close(void **state)
{
	uint8_t m[64];
	struct vfk_dma_map_wire w = { .argsz = 32, .flags = 3, .addr = 0x10000,
				      .size = 0x1000 };
	size_t n = hx_build(m, hx_id(), VFK_CMD_DMA_MAP, 0, &w, sizeof(w));
	int fd = hx_session(&S);

	(void)state;
	assert_int_equal(n, 48);
	assert_int_equal(raw_send_bytes(fd, m, 8, NULL, 0), 0);
	usleep(20000);
	hx_close(fd);
	hs_check_fresh(&S);
}

static void test_header_then_close(void **state)
{
	uint8_t m[64];
	struct vfk_dma_map_wire w = { .argsz = 32, .flags = 3, .addr = 0x10000,
				      .size = 0x1000 };
	int fd = hx_session(&S), mfd = hx_memfd(0x1000);

	(void)state;
	hx_build(m, hx_id(), VFK_CMD_DMA_MAP, 0, &w, sizeof(w));
	/* The header alone, with the fd the map would use: the server holds
	 * that fd until the message is whole, and must close it when the
	 * client goes instead. */
	assert_int_equal(raw_send_bytes(fd, m, 16, &mfd, 1), 0);
	close(mfd);
	hs_wait_resources(&S, 2);
	hx_close(fd);
	hs_check_fresh(&S);
}

static void test_half_payload_then_close(void **state)
{
	uint8_t m[64];
	struct vfk_dma_map_wire w = { .argsz = 32, .flags = 3, .addr = 0x10000,
				      .size = 0x1000 };
	int fd = hx_session(&S), mfd = hx_memfd(0x1000);

	(void)state;
	hx_build(m, hx_id(), VFK_CMD_DMA_MAP, 0, &w, sizeof(w));
	assert_int_equal(raw_send_bytes(fd, m, 32, &mfd, 1), 0);
	close(mfd);
	usleep(20000);
	hx_close(fd);
	hs_check_fresh(&S);

	/* The same with a large message: half of a 1 MiB REGION_WRITE. */
	{
		static uint8_t p[16 + (1u << 20)];
		size_t len = sizeof(p);
		struct vfk_region_rw_wire rw = { .offset = 0, .region = 2,
						 .count = 1u << 20 };

		memcpy(p, &rw, sizeof(rw));
		fd = hx_session(&S);
		assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_REGION_WRITE,
					     (uint32_t)(16 + len), 0, 0, p, len / 2, NULL, 0), 0);
		usleep(20000);
		hx_close(fd);
		hs_check_fresh(&S);
	}
}

/* On a stream socket fds travel with the first byte of a sendmsg(); fds
 * that arrive with bytes in the middle of a message belong to no message,
 * and the stream cannot be trusted any more. */
static void test_fd_on_middle_byte(void **state)
{
	uint8_t m[64];
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S), efd = hx_eventfd();

	(void)state;
	hx_build(m, hx_id(), VFK_CMD_DEVICE_GET_INFO, 0, &di, sizeof(di));
	assert_int_equal(raw_send_bytes(fd, m, 20, NULL, 0), 0);
	usleep(20000);
	assert_int_equal(raw_send_bytes(fd, m + 20, 12, &efd, 1), 0);
	close(efd);
	hx_expect_closed(fd, 3000);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* ---- a slow client ---- */

static void send_slowly(int fd, const uint8_t *m, size_t len, const int *fds,
			unsigned nfds)
{
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(raw_send_bytes(fd, m + i, 1, i ? NULL : fds, i ? 0 : nfds), 0);
		usleep(i % 8 ? 200 : 3000);
	}
}

static void test_byte_per_write(void **state)
{
	uint8_t m[256], rb[256];
	struct vfk_version v = { 0 };
	struct vfk_device_info_wire di = { .argsz = 16 };
	struct vfk_dma_map_wire w = { .argsz = 32, .flags = 3, .addr = 0x10000,
				      .size = 0x2000 };
	struct vfk_hdr h;
	int fd = hx_connect(&S), mfd = hx_memfd(0x2000), n;
	uint16_t id;
	size_t len;

	(void)state;
	/* VERSION */
	vfk_version_caps_default(&v.caps);
	v.caps.present = VFK_CAP_MAX_MSG_FDS;
	v.caps.max_msg_fds = 8;
	n = vfk_version_encode(rb, sizeof(rb), &v);
	assert_true(n > 0);
	id = hx_id();
	len = hx_build(m, id, VFK_CMD_VERSION, 0, rb, (size_t)n);
	send_slowly(fd, m, len, NULL, 0);
	n = raw_recv(fd, &h, rb, sizeof(rb), NULL, NULL, 5000);
	assert_true(n >= 4);
	assert_int_equal(h.id, id);
	assert_int_equal(h.flags, VFK_F_TYPE_REPLY);
	/* DEVICE_GET_INFO */
	id = hx_id();
	len = hx_build(m, id, VFK_CMD_DEVICE_GET_INFO, 0, &di, sizeof(di));
	send_slowly(fd, m, len, NULL, 0);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DEVICE_GET_INFO, rb, sizeof(rb), &n), 0);
	assert_int_equal(n, 16);
	/* DMA_MAP with its fd on the first byte */
	id = hx_id();
	len = hx_build(m, id, VFK_CMD_DMA_MAP, 0, &w, sizeof(w));
	send_slowly(fd, m, len, &mfd, 1);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DMA_MAP, NULL, 0, NULL), 0);
	close(mfd);
	hs_wait_resources(&S, 1);
	/* The window is there: unmapping it works. */
	assert_int_equal(hx_dma_unmap(fd, 0x10000, 0x2000, 0), 0);
	/* Two messages glued together, split at an odd place. */
	{
		uint8_t two[128];
		uint16_t id1 = hx_id(), id2 = hx_id();
		size_t l1 = hx_build(two, id1, VFK_CMD_DEVICE_GET_INFO, 0, &di, sizeof(di));
		size_t l2 = hx_build(two + l1, id2, VFK_CMD_DEVICE_GET_INFO, 0, &di,
				     sizeof(di));

		assert_int_equal(raw_send_bytes(fd, two, l1 + 5, NULL, 0), 0);
		usleep(5000);
		assert_int_equal(raw_send_bytes(fd, two + l1 + 5, l2 - 5, NULL, 0), 0);
		assert_int_equal(hx_wait_reply(fd, id1, VFK_CMD_DEVICE_GET_INFO, NULL, 0,
					       NULL), 0);
		assert_int_equal(hx_wait_reply(fd, id2, VFK_CMD_DEVICE_GET_INFO, NULL, 0,
					       NULL), 0);
	}
	hx_close(fd);
	hs_check_fresh(&S);
}

/* ---- the server waiting for a DMA reply ---- */

/* Map a window without fd (reached by DMA messages), program a copy
 * within it and ring the doorbell. */
static int start_copy_session(void)
{
	int fd = hx_session(&S);

	hx_enable(fd);
	assert_int_equal(hx_dma_map(fd, SRC_IOVA, 0x2000, 3, 0, NULL, 0), 0);
	return fd;
}

/* Clear STATUS, program a copy and ring the doorbell. */
static void program_copy(int fd, uint64_t src, uint64_t dst, uint32_t len, uint32_t ctrl)
{
	hx_bar0_write(fd, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE | DMA_TEST_STATUS_ERROR, 4);
	hx_bar0_write(fd, DMA_TEST_REG_SRC, src, 8);
	hx_bar0_write(fd, DMA_TEST_REG_DST, dst, 8);
	hx_bar0_write(fd, DMA_TEST_REG_LEN, len, 4);
	hx_bar0_write(fd, DMA_TEST_REG_CTRL, ctrl, 4);
	hx_bar0_write(fd, DMA_TEST_REG_DOORBELL, 1, 4);
}

static void ring(int fd)
{
	program_copy(fd, SRC_IOVA, DST_IOVA, COPY_LEN, 0);
}

/* The server's next message must be DMA command `cmd` for [addr, +count);
 * a DMA_WRITE's data goes to `data`.  Returns the request's id. */
static uint16_t expect_dma_req(int fd, uint16_t cmd, uint64_t addr, uint64_t count,
			       uint8_t *data)
{
	static uint8_t b[16 + 4096];
	struct vfk_hdr h;
	uint64_t a, c;
	int n = raw_recv(fd, &h, b, sizeof(b), NULL, NULL, 5000);

	if (n < 0)
		fail_msg("no %s from the server: %s", vfk_cmd_name(cmd), strerror(-n));
	if (h.cmd != cmd || h.flags != VFK_F_TYPE_COMMAND)
		fail_msg("expected a %s command, got cmd %u flags %#x", vfk_cmd_name(cmd),
			 h.cmd, h.flags);
	assert_int_equal(h.error, 0);
	assert_true(n >= 16);
	memcpy(&a, b, 8);
	memcpy(&c, b + 8, 8);
	assert_int_equal(a, addr);
	assert_int_equal(c, count);
	if (cmd == VFK_CMD_DMA_WRITE) {
		assert_int_equal(n, 16 + count);
		if (data)
			memcpy(data, b + 16, count);
	} else {
		assert_int_equal(n, 16);
	}
	return h.id;
}

/* Answer a DMA request: address, 64-bit count, and the data of a read. */
static void dma_reply(int fd, uint16_t id, uint16_t cmd, uint64_t addr,
		      uint64_t count, const uint8_t *data)
{
	uint8_t p[16 + 4096];
	size_t len = 16;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &count, 8);
	if (data) {
		memcpy(p + 16, data, count);
		len += count;
	}
	assert_int_equal(hx_send_hdr(fd, id, cmd, (uint32_t)(16 + len), VFK_F_TYPE_REPLY,
				     0, p, len, NULL, 0), 0);
}

/* Wait until the copy is over; returns STATUS. */
static uint32_t wait_copy(int fd, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	uint32_t st;

	for (;;) {
		st = hx_bar0_read32(fd, DMA_TEST_REG_STATUS);
		if (!(st & DMA_TEST_STATUS_BUSY) || now_ms() > end)
			return st;
		usleep(20000);
	}
}

/* The normal path, with commands served while the server waits. */
/* Before a device-to-memory bounce the server reads the destination, so
 * that bytes the engine leaves alone keep the client's contents (as
 * swiotlb does): answer that read with `old`, then expect the copy's
 * DMA_WRITE, whose data goes to `data`.  Returns the write's id. */
static uint16_t expect_dst_write(int fd, const uint8_t *old, uint8_t *data)
{
	uint16_t id = expect_dma_req(fd, VFK_CMD_DMA_READ, DST_IOVA, COPY_LEN, NULL);

	dma_reply(fd, id, VFK_CMD_DMA_READ, DST_IOVA, COPY_LEN, old);
	return expect_dma_req(fd, VFK_CMD_DMA_WRITE, DST_IOVA, COPY_LEN, data);
}

static void test_dma_serves_commands_meanwhile(void **state)
{
	uint8_t pat[COPY_LEN], got[COPY_LEN];
	uint32_t count0;
	uint16_t id;
	int fd = start_copy_session();

	(void)state;
	for (unsigned i = 0; i < COPY_LEN; i++)
		pat[i] = (uint8_t)(i ^ 0x5a);
	count0 = hx_bar0_read32(fd, DMA_TEST_REG_COUNT);
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	/* The server must not wait for our answer with its ears shut. */
	hx_sync(fd);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_STATUS) & DMA_TEST_STATUS_BUSY,
			 DMA_TEST_STATUS_BUSY);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	memset(got, 0xee, sizeof(got));
	id = expect_dst_write(fd, got, got);
	assert_memory_equal(got, pat, COPY_LEN);
	dma_reply(fd, id, VFK_CMD_DMA_WRITE, DST_IOVA, COPY_LEN, NULL);
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_DONE);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_COUNT), count0 + 1);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* A DEVICE_RESET while the copy waits for its data voids the copy: the
 * reset's reply comes first, the data after it is not written anywhere,
 * and no status or interrupt says the copy completed. */
static void test_dma_reset_during_copy(void **state)
{
	uint8_t pat[COPY_LEN], b[64];
	int fd = start_copy_session(), e = hx_eventfd();
	struct pollfd p = { e, POLLIN, 0 };
	struct vfk_hdr h;
	uint16_t id;

	(void)state;
	memset(pat, 0x42, sizeof(pat));
	assert_int_equal(hx_set_irqs(fd, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
				     VFK_PCI_MSIX, 0, 1, &e, 1), 0);
	program_copy(fd, SRC_IOVA, DST_IOVA, COPY_LEN, DMA_TEST_CTRL_IRQ);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	assert_int_equal(hx_call(fd, VFK_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL), 0);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	/* Nothing more from the server: no read of the destination, no
	 * write of the data. */
	assert_int_equal(raw_recv(fd, &h, b, sizeof(b), NULL, NULL, 300), -ETIMEDOUT);
	hx_enable(fd); /* the reset cleared the command register */
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_STATUS), 0);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_COUNT), 0);
	assert_int_equal(poll(&p, 1, 100), 0);
	close(e);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* Registers the client rewrites while a copy waits in message DMA do not
 * change the copy: it runs on what the doorbell latched (a LEN write used
 * to cut a 128 KiB copy to its first 64 KiB chunk and report DONE). */
static void test_dma_registers_latched(void **state)
{
	static uint8_t mem[0x40000], b[16 + 0x10000];
	const uint64_t base = 0x200000, len = 0x20000;
	int fd = hx_session(&S);
	unsigned reads = 0;
	bool rewrote = false;

	(void)state;
	hx_enable(fd);
	for (size_t i = 0; i < len; i++)
		mem[i] = (uint8_t)(i * 3 + 7);
	memset(mem + len, 0, len);
	assert_int_equal(hx_dma_map(fd, base, sizeof(mem), 3, 0, NULL, 0), 0);
	program_copy(fd, base, base + len, (uint32_t)len, 0);
	/* Serve the copy's requests from `mem`; after the first, rewrite
	 * LEN and SRC. */
	for (;;) {
		struct vfk_hdr h;
		uint64_t a, c;
		int n = raw_recv(fd, &h, b, sizeof(b), NULL, NULL, 500);

		if (n == -ETIMEDOUT)
			break;
		assert_true(n >= 16);
		memcpy(&a, b, 8);
		memcpy(&c, b + 8, 8);
		assert_true(a >= base && c <= sizeof(mem) && a - base <= sizeof(mem) - c);
		if (!rewrote) {
			/* While the server waits for this answer. */
			hx_bar0_write(fd, DMA_TEST_REG_LEN, 0x1000, 4);
			hx_bar0_write(fd, DMA_TEST_REG_SRC, base + 0x30000, 8);
			rewrote = true;
		}
		if (h.cmd == VFK_CMD_DMA_WRITE) {
			memcpy(mem + (a - base), b + 16, c);
			dma_reply(fd, h.id, h.cmd, a, c, NULL);
		} else {
			assert_int_equal(h.cmd, VFK_CMD_DMA_READ);
			memcpy(b + 16, mem + (a - base), c);
			assert_int_equal(hx_send_hdr(fd, h.id, h.cmd, (uint32_t)(32 + c),
						     VFK_F_TYPE_REPLY, 0, b, 16 + c, NULL, 0), 0);
			reads++;
		}
	}
	assert_int_equal(wait_copy(fd, 2000), DMA_TEST_STATUS_DONE);
	assert_true(reads >= 2); /* both chunks were read */
	assert_memory_equal(mem, mem + len, len);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* The client goes away instead of answering: the server must drop it and
 * serve the next one. */
static void test_dma_disconnect_while_waiting(void **state)
{
	int fd = start_copy_session();
	uint32_t st;

	(void)state;
	ring(fd);
	expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	hx_close(fd);
	hs_check_fresh(&S);
	/* The copy failed, and the departure reset the device: the next
	 * client finds it idle, not stuck busy. */
	fd = hx_session(&S);
	hx_enable(fd);
	st = hx_bar0_read32(fd, DMA_TEST_REG_STATUS);
	assert_int_equal(st & (DMA_TEST_STATUS_BUSY | DMA_TEST_STATUS_ERROR), 0);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* Half a reply, then gone. */
static void test_dma_disconnect_mid_reply(void **state)
{
	uint8_t pat[COPY_LEN] = { 0 }, m[16 + 16 + COPY_LEN];
	uint64_t a = SRC_IOVA, c = COPY_LEN;
	int fd = start_copy_session();
	uint16_t id;
	struct vfk_hdr h;

	(void)state;
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	h = (struct vfk_hdr){ .id = id, .cmd = VFK_CMD_DMA_READ, .size = sizeof(m),
			      .flags = VFK_F_TYPE_REPLY };
	vfk_hdr_encode(m, &h);
	memcpy(m + 16, &a, 8);
	memcpy(m + 24, &c, 8);
	memcpy(m + 32, pat, COPY_LEN);
	assert_int_equal(raw_send_bytes(fd, m, sizeof(m) / 2, NULL, 0), 0);
	usleep(20000);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* Replies that do not fit the request fail the copy (the device sees an
 * error) without dropping the client; replies to other ids are not taken
 * for the awaited one. */
static void test_dma_bad_replies(void **state)
{
	uint8_t pat[COPY_LEN] = { 0 };
	int fd = start_copy_session();
	uint16_t id;

	(void)state;
	/* count that does not match the request */
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN / 2, pat);
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EPROTO);

	/* address that does not match */
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA + 1, COPY_LEN, pat);
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EPROTO);

	/* the client's error is the copy's error (QEMU answers ENODEV
	 * without bus mastering) */
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DMA_READ, 16,
				     VFK_F_TYPE_REPLY | VFK_F_ERROR, ENODEV, NULL, 0,
				     NULL, 0), 0);
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), ENODEV);

	/* an error reply without an errno still fails */
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DMA_READ, 16,
				     VFK_F_TYPE_REPLY | VFK_F_ERROR, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EIO);

	/* replies with the wrong id or command, or a malformed header, are
	 * not the awaited reply: the server goes on waiting */
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	dma_reply(fd, (uint16_t)(id + 1), VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	dma_reply(fd, id, VFK_CMD_DMA_WRITE, SRC_IOVA, COPY_LEN, NULL);
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DMA_READ, 16,
				     VFK_F_TYPE_REPLY | 0x100, 0, NULL, 0, NULL, 0), 0);
	hx_sync(fd);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_STATUS) & DMA_TEST_STATUS_BUSY,
			 DMA_TEST_STATUS_BUSY);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	id = expect_dst_write(fd, pat, NULL);
	/* a DMA_WRITE reply with the spec's 4-byte count is accepted too */
	{
		uint8_t p[12];
		uint64_t a = DST_IOVA;
		uint32_t c = COPY_LEN;

		memcpy(p, &a, 8);
		memcpy(p + 8, &c, 4);
		assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DMA_WRITE, 28,
					     VFK_F_TYPE_REPLY, 0, p, 12, NULL, 0), 0);
	}
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_DONE);
	hx_close(fd);
	hs_check_fresh(&S);
}

/* No answer at all: the server gives up after its reply timeout (5 s),
 * serving commands meanwhile, and ignores the late reply. */
static void test_dma_reply_timeout(void **state)
{
	uint8_t pat[COPY_LEN] = { 0 };
	int fd = start_copy_session();
	int64_t t0;
	uint32_t st;
	uint16_t id;

	(void)state;
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	t0 = now_ms();
	hx_sync(fd);
	st = wait_copy(fd, 15000);
	assert_int_equal(st, DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), ETIMEDOUT);
	assert_true(now_ms() - t0 >= 4000);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	hx_sync(fd);
	hx_close(fd);
	hs_check_fresh(&S);
}

static void assert_refused(struct hs *s);

/* Nothing waits behind a DMA reply that does not come: a new client is
 * turned away with EBUSY at once, and SIGTERM stops the server at once
 * (it used to wait out the 5 s reply timeout, and new connections with
 * it). */
static void test_dma_wait_interruptible(void **state)
{
	int fd, st;
	int64_t t0;

	(void)state;
	assert_int_equal(hs_start_exec(&X), 0);
	fd = hx_session(&X);
	hx_enable(fd);
	assert_int_equal(hx_dma_map(fd, SRC_IOVA, 0x2000, 3, 0, NULL, 0), 0);
	ring(fd);
	expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	t0 = now_ms();
	assert_refused(&X);
	assert_true(now_ms() - t0 < 1000);
	t0 = now_ms();
	st = hs_stop(&X);
	assert_true(now_ms() - t0 < 2000);
	assert_int_equal(st, 0);
	hx_close(fd);
	hs_cleanup(&X);
}

/* The client withdraws the window while the server waits for data from
 * it.  The unmap is served at once (the client is waiting for it too), and
 * the copy must not go on into memory that is no longer mapped. */
static void test_dma_unmap_while_waiting(void **state)
{
	uint8_t pat[COPY_LEN] = { 0 };
	int fd = start_copy_session();
	uint16_t id;

	(void)state;
	ring(fd);
	id = expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	assert_int_equal(hx_dma_unmap(fd, SRC_IOVA, 0x2000, 0), 0);
	dma_reply(fd, id, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, pat);
	/* No DMA_WRITE may follow: the next message is the STATUS reply. */
	assert_int_equal(wait_copy(fd, 5000), DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EFAULT);
	hx_close(fd);
	hs_check_fresh(&S);
}

/*
 * The client shrinks the file behind a window it passed by fd, then starts
 * a copy from it.  The server's mapping of the lost pages now raises SIGBUS
 * on access; the copy must fail, not the server.  On a server of its own,
 * so that a crash does not take the other tests with it.
 */
static void test_dma_truncated_backing(void **state)
{
	int fd, mfd, st;

	(void)state;
	assert_int_equal(hs_start_exec(&X), 0);
	hs_baseline(&X);
	fd = hx_session(&X);
	hx_enable(fd);
	mfd = hx_memfd(0x2000);
	assert_int_equal(hx_dma_map(fd, SRC_IOVA, 0x2000, 3, 0, &mfd, 1), 0);
	assert_int_equal(ftruncate(mfd, 0), 0);
	ring(fd);
	/* The copy runs right after the doorbell's reply. */
	for (int i = 0; i < 50 && hs_alive(&X); i++)
		usleep(10000);
	close(mfd);
	if (!hs_alive(&X)) {
		hs_dump_log(&X);
		st = hs_stop(&X);
		hs_cleanup(&X);
		fail_msg("the server died (status %d) copying from a truncated DMA window",
			 st);
	}
	/* The copy fails as an IOMMU fault would (the library's SIGBUS
	 * guard turns the fault into EFAULT), never a silent success. */
	st = wait_copy(fd, 5000);
	assert_int_equal(st, DMA_TEST_STATUS_ERROR);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EFAULT);
	hx_close(fd);
	hs_check_fresh(&X);
	st = hs_stop(&X);
	if (st != 0)
		hs_dump_log(&X);
	assert_int_equal(st, 0);
	hs_assert_log_clean(&X);
}

/* One copy of COPY_LEN bytes; returns STATUS. */
static uint32_t copy_status(int fd, uint64_t src, uint64_t dst)
{
	program_copy(fd, src, dst, COPY_LEN, 0);
	return wait_copy(fd, 5000);
}

/* Whether the first COPY_LEN bytes of `mfd` hold `v`. */
static bool file_holds(int mfd, uint8_t v)
{
	uint8_t *m = mmap(NULL, 0x1000, PROT_READ, MAP_SHARED, mfd, 0);
	bool ok = m != MAP_FAILED;

	for (unsigned k = 0; ok && k < COPY_LEN; k++)
		ok = m[k] == v;
	if (m != MAP_FAILED)
		munmap(m, 0x1000);
	return ok;
}

/*
 * The SIGBUS guard has no table to fill: 4,097 distinct files (the old
 * guard had 4,096 slots, and one more killed the server with SIGBUS), the
 * last one shrunk under its window.  DMA from it fails with EFAULT.
 * Grown back, a write into it either fails or lands in the file: never a
 * success whose data went nowhere (the old guard's zero page swallowed
 * it).  Mapped again, the file works.
 */
static void test_dma_sigbus_many_files(void **state)
{
	const unsigned nfiles = 4097;
	const uint64_t base = 0x10000000;
	uint64_t last = base + (uint64_t)(nfiles - 1) * 0x1000;
	int fd, first = -1, mfd = -1;
	uint8_t *m;
	uint32_t st;

	(void)state;
	assert_int_equal(hs_start_exec(&X), 0);
	fd = hx_session(&X);
	hx_enable(fd);
	for (unsigned i = 0; i < nfiles; i++) {
		int f = hx_memfd(0x1000);

		assert_int_equal(hx_dma_map(fd, base + i * 0x1000ull, 0x1000, 3, 0, &f, 1), 0);
		if (i == 0)
			first = f;
		else if (i == nfiles - 1)
			mfd = f;
		else
			close(f);
	}
	m = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, first, 0);
	assert_true(m != MAP_FAILED);
	memset(m, 0x3c, 0x1000);
	munmap(m, 0x1000);
	assert_int_equal(copy_status(fd, base, last), DMA_TEST_STATUS_DONE);
	assert_true(file_holds(mfd, 0x3c));
	assert_int_equal(ftruncate(mfd, 0), 0);
	assert_int_equal(copy_status(fd, last, base), DMA_TEST_STATUS_ERROR);
	assert_true(hs_alive(&X));
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ERRNO), EFAULT);
	assert_int_equal(copy_status(fd, base, last), DMA_TEST_STATUS_ERROR);
	/* Grown back (zeros): a write either fails or reaches the file. */
	assert_int_equal(ftruncate(mfd, 0x1000), 0);
	st = copy_status(fd, base, last);
	assert_true(st == DMA_TEST_STATUS_ERROR ||
		    (st == DMA_TEST_STATUS_DONE && file_holds(mfd, 0x3c)));
	/* Mapped again, the file works, and the device's write lands. */
	assert_int_equal(hx_dma_unmap(fd, last, 0x1000, 0), 0);
	assert_int_equal(ftruncate(mfd, 0), 0);
	assert_int_equal(ftruncate(mfd, 0x1000), 0);
	assert_int_equal(hx_dma_map(fd, last, 0x1000, 3, 0, &mfd, 1), 0);
	assert_int_equal(copy_status(fd, base, last), DMA_TEST_STATUS_DONE);
	assert_true(file_holds(mfd, 0x3c));
	close(first);
	close(mfd);
	hx_close(fd);
	assert_int_equal(hs_stop(&X), 0);
	hs_cleanup(&X);
}

/* ---- other clients ---- */

/* One client at a time: a second one is turned away at once with EBUSY
 * to its first request (not left hanging, not a bare reset), and the
 * first is not disturbed. */
static void assert_refused(struct hs *s)
{
	int c2 = tsrv_connect(&s->t);
	int64_t t0 = now_ms();
	int rc;

	assert_true(c2 >= 0);
	rc = raw_negotiate(c2);
	close(c2);
	if (rc != -EBUSY)
		fail_msg("a second client got %s (%d) instead of EBUSY",
			 rc ? strerror(-rc) : "served", rc);
	assert_true(now_ms() - t0 < 4000);
}

static void test_second_client_refused(void **state)
{
	int fd = hx_session(&S);

	(void)state;
	hx_sync(fd);
	assert_refused(&S);
	assert_refused(&S);
	hx_sync(fd);
	hs_wait_resources(&S, 1);
	/* Also while the first has not negotiated yet. */
	hx_close(fd);
	hs_check_fresh(&S);
	fd = hx_connect(&S);
	hs_wait_resources(&S, 1);
	assert_refused(&S);
	assert_int_equal(raw_negotiate(fd), 0);
	hx_sync(fd);
	hx_close(fd);
	hs_check_fresh(&S);
}

/*
 * A client that sends requests and never reads the replies.  The server
 * must not block in a send, queue replies without bound, or spin: it
 * stops reading that client until it can write again.  Other clients are
 * still turned away promptly meanwhile, and once the hog goes the next
 * client is served.
 */
static void test_non_reading_client(void **state)
{
	struct vfk_region_rw_wire w = { .offset = 0, .region = VFK_PCI_CONFIG,
					.count = 4096 };
	uint8_t m[32];
	int fd = hx_session(&S);
	unsigned sent = 0;
	int64_t t0 = now_ms(), stall = 0;
	long cpu0, cpu1;

	(void)state;
	hx_build(m, 1, VFK_CMD_REGION_READ, 0, &w, sizeof(w));
	while (now_ms() - t0 < 20000) {
		ssize_t n = send(fd, m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == (ssize_t)sizeof(m)) {
			sent++;
			stall = 0;
			continue;
		}
		if (n > 0)
			break; /* a partial message: the socket is full */
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		/* Full once the server has stopped reading for a while. */
		if (!stall)
			stall = now_ms();
		else if (now_ms() - stall > 500)
			break;
		usleep(10000);
	}
	if (now_ms() - t0 >= 20000)
		fail_msg("the server kept reading %u requests without its replies "
			 "being read", sent);
	assert_true(sent > 10);

	/* Waiting to write is not busy: the server uses (almost) no CPU. */
	cpu0 = tsrv_cpu_ms(&S.t);
	usleep(1000000);
	cpu1 = tsrv_cpu_ms(&S.t);
	assert_true(cpu0 >= 0 && cpu1 >= 0);

	assert_refused(&S);
	hx_close(fd);
	hs_check_fresh(&S);
	/* Checked last so that a spinning server still shows whether it
	 * recovers. */
	if (cpu1 - cpu0 > 300)
		fail_msg("the server spins while its client does not read: %ld ms CPU "
			 "in 1 s", cpu1 - cpu0);
}

/*
 * The same while the server waits for a DMA reply: it serves commands in
 * that wait, and must not pile up their replies without bound for a client
 * that reads none of them.  4000 reads of 64 KiB would queue 250 MiB.
 */
static void test_dma_wait_non_reading(void **state)
{
	struct vfk_region_rw_wire w = { .offset = 0, .region = 2, .count = 0x10000 };
	uint8_t m[32];
	int fd = start_copy_session();
	long rss0, rss1 = 0;
	unsigned sent = 0;
	int64_t t0;

	(void)state;
	/* The whole of BAR2 (64 KiB) per request. */
	hx_build(m, 1, VFK_CMD_REGION_READ, 0, &w, sizeof(w));
	ring(fd);
	expect_dma_req(fd, VFK_CMD_DMA_READ, SRC_IOVA, COPY_LEN, NULL);
	rss0 = hs_rss_kib(&S);
	t0 = now_ms();
	while (sent < 4000 && now_ms() - t0 < 4000) {
		ssize_t n = send(fd, m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == (ssize_t)sizeof(m)) {
			sent++;
			continue;
		}
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			break;
		usleep(5000);
	}
	for (int i = 0; i < 20; i++) {
		long r = hs_rss_kib(&S);

		if (r > rss1)
			rss1 = r;
		usleep(20000);
	}
	print_message("# %u requests sent; server RSS %ld -> %ld KiB\n", sent, rss0, rss1);
	hx_close(fd);
	hs_check_fresh(&S);
	if (rss1 - rss0 > 64 * 1024)
		fail_msg("the server queued %ld KiB of replies for a client that reads none",
			 rss1 - rss0);
}

/* ---- the DMA window limit, on a forked server ---- */

/* A model as an out-of-tree author may write one: its bar_read fills
 * only the bytes of its one register (BAR0 byte 0) and leaves the rest. */
static int sparse_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		       uint32_t count)
{
	(void)dev;
	(void)count;
	if (bar == 0 && off == 0)
		((uint8_t *)buf)[0] = 0x5a;
	return 0;
}

static const struct vfk_dev_ops sparse_ops = {
	.version = VFK_DEV_OPS_VERSION, .name = "sparse", .bar_read = sparse_read,
};

static struct vfk_shm *sparse_shm;

static int sparse_setup(void *arg, struct vfk_dev **dev, struct vfk_server_opts *so)
{
	int rc;

	(void)arg;
	(void)so;
	if ((rc = vfk_dev_create(&sparse_ops, NULL, dev)) ||
	    (rc = vfk_shm_create(0x10000, "sparse-bar2", &sparse_shm)))
		return rc;
	memset(vfk_shm_ptr(sparse_shm), 0xab, 0x10000);
	if ((rc = vfk_dev_set_bar(*dev, 0, &(struct vfk_bar_desc){ .size = 4096 })) ||
	    (rc = vfk_dev_set_bar(*dev, 2, &(struct vfk_bar_desc){ .size = 0x10000,
							       .shm = sparse_shm })))
		return rc;
	return 0;
}

static void sparse_teardown(void *arg, struct vfk_dev *dev)
{
	(void)arg;
	vfk_dev_destroy(dev);
	vfk_shm_put(sparse_shm);
}

/* No byte of an earlier reply reaches the client: after the VERSION reply
 * and after a 64 KiB read of 0xab bytes, reads of the register-less bytes
 * are zeros (they returned pieces of both before). */
static void test_no_stale_reply_bytes(void **state)
{
	static uint8_t big[0x10000];
	uint8_t got[256];
	int fd;

	(void)state;
	assert_int_equal(hs_start_fork(&F, sparse_setup, sparse_teardown, NULL), 0);
	fd = hx_session(&F);
	hx_enable(fd);
	assert_int_equal(hx_region_read(fd, 0, 0, sizeof(got), got), 0);
	assert_int_equal(got[0], 0x5a);
	for (size_t k = 1; k < sizeof(got); k++)
		if (got[k])
			fail_msg("after VERSION: byte %zu of BAR0 reads %#x", k, got[k]);
	assert_int_equal(hx_region_read(fd, 2, 0, sizeof(big), big), 0);
	assert_int_equal(big[0xffff], 0xab);
	assert_int_equal(hx_region_read(fd, 0, 0, sizeof(got), got), 0);
	for (size_t k = 1; k < sizeof(got); k++)
		if (got[k])
			fail_msg("after a 64 KiB read: byte %zu of BAR0 reads %#x", k, got[k]);
	hx_close(fd);
	assert_int_equal(hs_stop(&F), 0);
}

static int small_maps_setup(void *arg, struct vfk_dev **dev,
			    struct vfk_server_opts *so)
{
	(void)arg;
	so->max_dma_maps = 4;
	return dma_test_create(NULL, dev);
}

static void small_maps_teardown(void *arg, struct vfk_dev *dev)
{
	(void)arg;
	dma_test_destroy(dev);
}

static void test_max_dma_maps(void **state)
{
	static const char json[] = "{\"capabilities\":{\"max_dma_maps\":65535}}";
	uint8_t p[128], rb[256];
	struct vfk_version v;
	uint16_t zero = 0;
	int fd, mfd, n = 0, st;

	(void)state;
	assert_int_equal(hs_start_fork(&F, small_maps_setup, small_maps_teardown, NULL), 0);
	hs_baseline(&F);

	/* The limit is advertised to a client that asks. */
	fd = hx_connect(&F);
	memcpy(p, &zero, 2);
	memcpy(p + 2, &zero, 2);
	memcpy(p + 4, json, sizeof(json));
	assert_int_equal(hx_call(fd, VFK_CMD_VERSION, p, 4 + sizeof(json), NULL, 0, rb,
				 sizeof(rb), &n), 0);
	assert_int_equal(vfk_version_decode(rb, (size_t)n, &v), 0);
	assert_true(v.caps.present & VFK_CAP_MAX_DMA_MAPS);
	assert_int_equal(v.caps.max_dma_maps, 4);

	mfd = hx_memfd(0x4000);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &mfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0x20000, 0x1000, 3, 0x1000, &mfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0x30000, 0x1000, 3, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x40000, 0x1000, 1, 0, NULL, 0), 0);
	/* One more: refused (vfio type1 answers ENOSPC when out of maps). */
	assert_int_equal(hx_dma_map(fd, 0x50000, 0x1000, 3, 0, NULL, 0), ENOSPC);
	assert_int_equal(hx_dma_map(fd, 0x50000, 0x1000, 3, 0x2000, &mfd, 1), ENOSPC);
	hs_wait_resources(&F, 1);
	/* Freeing one makes room for one. */
	assert_int_equal(hx_dma_unmap(fd, 0x20000, 0x1000, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x50000, 0x1000, 3, 0x2000, &mfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0x60000, 0x1000, 3, 0, NULL, 0), ENOSPC);
	/* A refused map did not take a slot: after UNMAP_ALL, four fit. */
	assert_int_equal(hx_dma_unmap(fd, 0, 0, VFK_DMA_UNMAP_ALL), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(hx_dma_map(fd, 0x100000 + i * 0x1000, 0x1000, 3, 0, NULL,
					    0), 0);
	assert_int_equal(hx_dma_map(fd, 0x200000, 0x1000, 3, 0, NULL, 0), ENOSPC);
	close(mfd);
	hx_close(fd);
	hs_check_fresh(&F);
	st = hs_stop(&F);
	if (st != 0)
		hs_dump_log(&F);
	assert_int_equal(st, 0);
	hs_assert_log_clean(&F);
}

/* ---- main ---- */

/* The extra servers some tests start: stopped after a failure. */
static void cleanup(void)
{
	hs_cleanup(&F);
	hs_cleanup(&X);
}

int main(void)
{
	static const struct hx_test tests[] = {
		HX_TEST(test_partial_header_then_close),
		HX_TEST(test_header_then_close),
		HX_TEST(test_half_payload_then_close),
		HX_TEST(test_fd_on_middle_byte),
		HX_TEST(test_byte_per_write),
		HX_TEST(test_dma_serves_commands_meanwhile),
		HX_TEST(test_dma_reset_during_copy),
		HX_TEST(test_dma_registers_latched),
		HX_TEST(test_dma_disconnect_while_waiting),
		HX_TEST(test_dma_disconnect_mid_reply),
		HX_TEST(test_dma_bad_replies),
		HX_TEST(test_dma_reply_timeout),
		HX_TEST(test_dma_wait_interruptible),
		HX_TEST(test_dma_unmap_while_waiting),
		HX_TEST(test_dma_truncated_backing),
		HX_TEST(test_dma_sigbus_many_files),
		HX_TEST(test_second_client_refused),
		HX_TEST(test_non_reading_client),
		HX_TEST(test_dma_wait_non_reading),
		HX_TEST(test_max_dma_maps),
		HX_TEST(test_no_stale_reply_bytes),
	};

	return hx_main("hostile-connection", tests, sizeof(tests) / sizeof(tests[0]),
		       cleanup);
}
