/* SPDX-License-Identifier: MIT */
/*
 * Hostile client, part 1: malformed messages on a raw socket against a real
 * `vfiokit serve dma-test` process.
 *
 * Each test asserts the exact answer (an error reply with a given errno, or
 * the connection being closed), that a request sent after a bad one still
 * gets its own reply (the stream stays framed and nothing stray was sent),
 * that the fds the message carried were closed, and, once the session is
 * over, that the server is back to its baseline of fds and mappings and
 * serves a fresh client.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostile.h"
#include "dma_test.h"

/* The `vfiokit serve dma-test` process of the running test. */
#define S (*hs_cur)

#define MiB (1u << 20)
#define MAX_MSG (16u + 16u + MiB) /* REGION_WRITE of max_data_xfer bytes */
#define BAR2 2u

/* An error reply with `err` to a raw payload. */
static void expect_err(int fd, uint16_t cmd, const void *p, size_t len, int err)
{
	hx_expect_err(fd, cmd, p, len, NULL, 0, err);
}

/* Nothing is mapped in [addr, addr+size): a window there can be added
 * (no EEXIST).  An unmap cannot tell, since unmapping nothing succeeds,
 * as with the kernel's type1. */
static void assert_unmapped(int fd, uint64_t addr, uint64_t size)
{
	assert_int_equal(hx_dma_map(fd, addr, size, 3, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, addr, size, 0), 0);
}

static void end_session(int fd)
{
	hx_close(fd);
	hs_check_fresh(&S);
}

/* ---- framing and header ---- */

/* A size below the header size cannot be framed: the server can only drop
 * the client, without a reply. */
static void test_hdr_size_below_16(void **state)
{
	static const uint32_t sizes[] = { 0, 1, 15 };

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		int fd = hx_session(&S);

		assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DEVICE_GET_INFO,
					     sizes[i], 0, 0, NULL, 0, NULL, 0), 0);
		hx_expect_closed(fd, 3000);
		end_session(fd);
	}
}

/* Same before VERSION. */
static void test_hdr_size_below_16_first(void **state)
{
	int fd = hx_connect(&S);

	(void)state;
	assert_int_equal(hx_send_hdr(fd, 1, VFK_CMD_VERSION, 8, 0, 0, NULL, 0, NULL, 0), 0);
	hx_expect_closed(fd, 3000);
	end_session(fd);
}

/* A size that covers only the header of a DEVICE_GET_INFO: its 16-byte
 * payload is then read as the next header, whose size field is 0. */
static void test_hdr_size_short_lie(void **state)
{
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S);
	uint16_t id = hx_id();

	(void)state;
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DEVICE_GET_INFO, 16, 0, 0, &di,
				     sizeof(di), NULL, 0), 0);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DEVICE_GET_INFO, NULL, 0, NULL),
			 EINVAL);
	hx_expect_closed(fd, 3000);
	end_session(fd);
}

/* A size no message can have: E2BIG at once, from the header alone. */
static void test_hdr_size_huge(void **state)
{
	int fd = hx_session(&S);
	uint16_t id = hx_id();

	(void)state;
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_REGION_WRITE, 0x7fffffff, 0, 0,
				     NULL, 0, NULL, 0), 0);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_REGION_WRITE, NULL, 0, NULL),
			 E2BIG);
	/* The server now skips 2 GiB; hang up in the middle of that. */
	end_session(fd);
}

/* An oversized message sent whole: E2BIG, its body skipped, its fds closed,
 * the write not done, and the connection still usable. */
static void test_hdr_size_over_max(void **state)
{
	static uint8_t p[MAX_MSG + 8192];
	uint32_t count = MiB + 4096;
	size_t len = 16 + count;
	struct vfk_region_rw_wire w = { .offset = DMA_TEST_REG_SCRATCH,
					.region = VFK_PCI_BAR0, .count = count };
	uint32_t v = 0x1234, bad = 0xdeadbeef;
	int fd = hx_session(&S), efd = hx_eventfd(), rc;
	uint16_t id = hx_id();

	(void)state;
	hx_enable(fd);
	hx_bar0_write(fd, DMA_TEST_REG_SCRATCH, v, 4);
	memset(p, 0, sizeof(p));
	memcpy(p, &w, sizeof(w));
	memcpy(p + 16, &bad, 4);
	rc = hx_send_hdr(fd, id, VFK_CMD_REGION_WRITE, (uint32_t)(16 + len), 0, 0, p, len,
			 &efd, 1);
	close(efd);
	if (rc)
		fail_msg("sending the oversized message: %s (the server stopped reading)",
			 strerror(-rc));
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_REGION_WRITE, NULL, 0, NULL),
			 E2BIG);
	hx_sync(fd);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), v);
	hs_wait_resources(&S, 1);

	/* The same with NO_REPLY: skipped silently. */
	memset(p, 0, sizeof(p));
	rc = hx_send_hdr(fd, hx_id(), VFK_CMD_REGION_WRITE, (uint32_t)(16 + len),
			 VFK_F_NO_REPLY, 0, p, len, NULL, 0);
	assert_int_equal(rc, 0);
	hx_sync(fd);

	/* One byte over the largest valid message. */
	id = hx_id();
	rc = hx_send_hdr(fd, id, VFK_CMD_DEVICE_GET_INFO, MAX_MSG + 1, 0, 0, p,
			 MAX_MSG + 1 - 16, NULL, 0);
	assert_int_equal(rc, 0);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DEVICE_GET_INFO, NULL, 0, NULL),
			 E2BIG);
	hx_sync(fd);
	end_session(fd);
}

/* Unknown flag bits, ERROR on a command, an error value in a command. */
static void test_hdr_bad_flags(void **state)
{
	static const struct { uint32_t flags, error; } bad[] = {
		{ 0x40, 0 }, { 0x100, 0 }, { 0x80000000u, 0 },
		{ VFK_F_ERROR, 0 }, { VFK_F_ERROR, EIO }, { 0, EIO },
	};
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S);

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint16_t id = hx_id();

		assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DEVICE_GET_INFO, 32,
					     bad[i].flags, bad[i].error, &di, sizeof(di),
					     NULL, 0), 0);
		assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DEVICE_GET_INFO, NULL, 0,
					       NULL), EINVAL);
	}
	hx_sync(fd);
	end_session(fd);
}

/* A message type that is neither command nor reply: nothing to answer,
 * and not vfio-user; the server drops the client (fds and all), then
 * serves the next. */
static void test_hdr_bad_type(void **state)
{
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S), efd = hx_eventfd();

	(void)state;
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DEVICE_GET_INFO, 32, 0xf, 0,
				     &di, sizeof(di), &efd, 1), 0);
	close(efd);
	{
		struct vfk_hdr h;
		uint8_t buf[64];

		assert_int_equal(raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000), -EPIPE);
	}
	close(fd);
	hs_wait_resources(&S, 0);
	hs_check_fresh(&S);
}

/* A reply nobody asked for is ignored, fds and all. */
static void test_reply_typed(void **state)
{
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S), efd = hx_eventfd();

	(void)state;
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DEVICE_GET_INFO, 32,
				     VFK_F_TYPE_REPLY, 0, &di, sizeof(di), NULL, 0), 0);
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DMA_READ, 16,
				     VFK_F_TYPE_REPLY | VFK_F_ERROR, EIO, NULL, 0, NULL, 0), 0);
	assert_int_equal(hx_send_hdr(fd, 0x8000, VFK_CMD_DMA_WRITE, 32,
				     VFK_F_TYPE_REPLY, 0, &di, sizeof(di), &efd, 1), 0);
	/* NO_REPLY on a reply is malformed, and still not answered. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DEVICE_GET_INFO, 16,
				     VFK_F_TYPE_REPLY | VFK_F_NO_REPLY, 0, NULL, 0, NULL, 0), 0);
	close(efd);
	hx_sync(fd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

/* NO_REPLY: no reply, not even an error one; the command still runs. */
static void test_no_reply(void **state)
{
	struct vfk_region_rw_wire rd0 = { .region = VFK_PCI_BAR0, .count = 0 };
	uint8_t wr[20];
	struct vfk_region_rw_wire w = { .offset = DMA_TEST_REG_SCRATCH,
					.region = VFK_PCI_BAR0, .count = 4 };
	uint32_t v = 0xabcd1234;
	int fd = hx_session(&S);

	(void)state;
	hx_enable(fd);
	memcpy(wr, &w, sizeof(w));
	memcpy(wr + 16, &v, 4);
	/* A failing command. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_REGION_READ, 32, VFK_F_NO_REPLY,
				     0, &rd0, sizeof(rd0), NULL, 0), 0);
	/* An unknown command. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), 99, 16, VFK_F_NO_REPLY, 0, NULL, 0,
				     NULL, 0), 0);
	/* A bad header. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_DEVICE_GET_INFO, 16,
				     VFK_F_NO_REPLY | 0x100, 0, NULL, 0, NULL, 0), 0);
	/* A VERSION after negotiation. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_VERSION, 20, VFK_F_NO_REPLY,
				     0, "\0\0\0\0", 4, NULL, 0), 0);
	/* A successful write, which must take effect. */
	assert_int_equal(hx_send_hdr(fd, hx_id(), VFK_CMD_REGION_WRITE, 36,
				     VFK_F_NO_REPLY, 0, wr, sizeof(wr), NULL, 0), 0);
	/* The next message received must be this read's reply. */
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), v);
	end_session(fd);
}

static void test_unknown_command(void **state)
{
	static const uint16_t cmds[] = { 0, 14, 19, 20, 0x7fff, 0xffff };
	int fd = hx_session(&S);

	(void)state;
	for (unsigned i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		expect_err(fd, cmds[i], NULL, 0, ENOSYS);
	/* With a payload, too. */
	expect_err(fd, 0x1234, "payload!", 8, ENOSYS);
	/* Server-to-client commands sent the wrong way. */
	{
		uint64_t rw[2] = { 0x1000, 8 };

		expect_err(fd, VFK_CMD_DMA_READ, rw, sizeof(rw), EINVAL);
		expect_err(fd, VFK_CMD_DMA_WRITE, rw, sizeof(rw), EINVAL);
	}
	hx_sync(fd);
	end_session(fd);
}

/* ---- VERSION ---- */

static int version_payload(uint8_t *buf, uint16_t major, uint16_t minor,
			   const char *json, size_t json_len)
{
	memcpy(buf, &major, 2);
	memcpy(buf + 2, &minor, 2);
	memcpy(buf + 4, json, json_len);
	return (int)(4 + json_len);
}

static void expect_not_negotiated(int fd)
{
	struct vfk_device_info_wire di = { .argsz = 16 };

	expect_err(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
}

static void test_version_not_first(void **state)
{
	int fd = hx_connect(&S);

	(void)state;
	expect_not_negotiated(fd);
	{
		struct vfk_region_rw_wire w = { .region = VFK_PCI_BAR0, .count = 4 };

		expect_err(fd, VFK_CMD_REGION_READ, &w, sizeof(w), EINVAL);
	}
	expect_err(fd, 0x777, NULL, 0, EINVAL);
	/* The client may still negotiate, and then be served. */
	assert_int_equal(raw_negotiate(fd), 0);
	hx_sync(fd);
	end_session(fd);
}

static void test_version_twice(void **state)
{
	int fd = hx_session(&S);
	uint8_t p[64];
	int n = version_payload(p, 0, 0, "", 0);

	(void)state;
	expect_err(fd, VFK_CMD_VERSION, p, (size_t)n, EINVAL);
	n = version_payload(p, 0, 0, "{}", 3);
	expect_err(fd, VFK_CMD_VERSION, p, (size_t)n, EINVAL);
	hx_sync(fd);
	end_session(fd);
}

static void test_version_bad_payload(void **state)
{
	/* J: with the terminating NUL, as the spec wants; JN: without. */
#define J(s) { s, sizeof(s) }
#define JN(s) { s, sizeof(s) - 1 }
	static const struct { const char *json; size_t len; } bad[] = {
		J("{"),                                  /* truncated JSON */
		J("{}}"),                                /* trailing garbage */
		J("[]"),                                 /* not an object */
		J("null"),
		JN("{}"),                                /* no NUL */
		J("{}\0{}"),                             /* NUL inside */
		J("\0\0"),                               /* several NULs */
		J("{\"capabilities\":[]}"),
		J("{\"capabilities\":{\"max_msg_fds\":\"8\"}}"),
		J("{\"capabilities\":{\"max_msg_fds\":-1}}"),
		J("{\"capabilities\":{\"max_msg_fds\":1.5}}"),
		J("{\"capabilities\":{\"max_data_xfer_size\":0}}"),
		J("{\"capabilities\":{\"max_data_xfer_size\":1e99}}"),
		J("{\"capabilities\":{\"max_dma_maps\":true}}"),
		J("{\"capabilities\":{\"pgsizes\":0}}"),
		J("{\"capabilities\":{\"write_multiple\":1}}"),
		J("{\"capabilities\":{\"migration\":5}}"),
		J("{\"capabilities\":{\"migration\":{\"pgsize\":\"x\"}}}"),
		J("{\"capabilities\":{\"twin_socket\":{\"fd_index\":999}}}"),
		J("{\"capabilities\":{\"twin_socket\":{\"supported\":0}}}"),
	};
#undef J
#undef JN
	uint8_t p[128];
	int fd = hx_connect(&S);

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int n;

		n = version_payload(p, 0, 0, bad[i].json, bad[i].len);
		if (hx_call(fd, VFK_CMD_VERSION, p, (size_t)n, NULL, 0, NULL, 0, NULL) !=
		    EINVAL)
			fail_msg("VERSION payload %u (%s) not refused with EINVAL", i,
				 bad[i].json);
	}
	/* Shorter than the version numbers. */
	expect_err(fd, VFK_CMD_VERSION, p, 0, EINVAL);
	expect_err(fd, VFK_CMD_VERSION, p, 3, EINVAL);
	/* None of them negotiated anything. */
	expect_not_negotiated(fd);
	assert_int_equal(raw_negotiate(fd), 0);
	hx_sync(fd);
	end_session(fd);
}

/* The JSON part is optional and may say nothing: a client with no
 * capabilities to announce must still be able to negotiate. */
static void test_version_minimal(void **state)
{
	static const struct { const char *json; size_t len; } good[] = {
		{ "", 0 },                                 /* no JSON at all */
		{ "", 1 },                                 /* a lone NUL */
		{ "{}", 3 },
		{ "{\"capabilities\":{}}", 20 },
		{ "{\"x\":[1,{\"y\":null}]}", 21 },       /* unknown members */
	};
	char failed[256] = "";

	(void)state;
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t p[64], rb[512];
		struct vfk_version v;
		int fd = hx_connect(&S), rl = -1, rc;
		int n = version_payload(p, 0, 0, good[i].json, good[i].len);

		rc = hx_call(fd, VFK_CMD_VERSION, p, (size_t)n, NULL, 0, rb, sizeof(rb), &rl);
		if (rc) {
			snprintf(failed + strlen(failed), sizeof(failed) - strlen(failed),
				 " [%u:'%s'/%zu: %s]", i, good[i].json, good[i].len,
				 strerror(rc));
		} else {
			assert_int_equal(vfk_version_decode(rb, (size_t)rl, &v), 0);
			assert_int_equal(v.major, 0);
			assert_int_equal(v.minor, 0);
			hx_sync(fd);
		}
		end_session(fd);
	}
	if (failed[0])
		fail_msg("valid VERSION payloads refused:%s", failed);
}

/* JSON that costs the parser: deep nesting, a payload near the largest
 * message. */
static void test_version_big_json(void **state)
{
	static uint8_t p[(1u << 20) + 16];
	size_t cap = sizeof(p), n;
	int fd = hx_connect(&S);

	(void)state;
	memset(p, 0, 4);
	n = 4;
	n += (size_t)sprintf((char *)p + n, "{\"capabilities\":");
	for (unsigned i = 0; i < 100000; i++)
		p[n++] = '[';
	for (unsigned i = 0; i < 100000; i++)
		p[n++] = ']';
	p[n++] = '}';
	p[n++] = '\0';
	expect_err(fd, VFK_CMD_VERSION, p, n, EINVAL);
	/* JSON text may have white space before and after the value
	 * (RFC 8259); here about 1 MiB of it, before. */
	memset(p + 4, ' ', cap - 4);
	memcpy(p + cap - 35, "{\"capabilities\":{\"max_msg_fds\":4}}", 34);
	p[cap - 1] = '\0';
	hx_expect_ok(fd, VFK_CMD_VERSION, p, cap, NULL, 0);
	hx_sync(fd);
	end_session(fd);
	/* After. */
	fd = hx_connect(&S);
	n = 4 + (size_t)sprintf((char *)p + 4, "{\"capabilities\":{}}\n ");
	p[n++] = '\0';
	hx_expect_ok(fd, VFK_CMD_VERSION, p, n, NULL, 0);
	hx_sync(fd);
	end_session(fd);
}

/* The spec: a server that cannot support the proposed major closes the
 * connection. */
static void test_version_major(void **state)
{
	static const uint16_t majors[] = { 1, 0xffff };

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		uint8_t p[16];
		int fd = hx_connect(&S);
		int n = version_payload(p, majors[i], 0, "{}", 3);
		uint16_t id = hx_id();

		assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_VERSION, (uint32_t)(16 + n),
					     0, 0, p, (size_t)n, NULL, 0), 0);
		assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_VERSION, NULL, 0, NULL),
				 EOPNOTSUPP);
		hx_expect_closed(fd, 3000);
		end_session(fd);
	}
}

/* ---- DMA_MAP / DMA_UNMAP ---- */

static void test_dma_map_bad_ranges(void **state)
{
	int fd = hx_session(&S), mfd = hx_memfd(0x4000);

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0, 3, 0, NULL, 0), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0, 3, 0, &mfd, 1), EINVAL);
	/* iova + size wraps around 2^64 */
	assert_int_equal(hx_dma_map(fd, 0xfffffffffffff000ull, 0x2000, 3, 0, NULL, 0),
			 EOVERFLOW);
	assert_int_equal(hx_dma_map(fd, 2, UINT64_MAX, 3, 0, NULL, 0), EOVERFLOW);
	/* ... while [1, 2^64) does not wrap. */
	assert_int_equal(hx_dma_map(fd, 1, UINT64_MAX, 1, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0, 0, VFK_DMA_UNMAP_ALL), 0);
	/* file offset + size wraps */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x2000, 3, 0xfffffffffffff000ull,
				    &mfd, 1), EOVERFLOW);
	/* A window ending exactly at 2^64 is valid. */
	assert_int_equal(hx_dma_map(fd, 0xffffffffffff0000ull, 0x10000, 3, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0xffffffffffff0000ull, 0x10000, 0), 0);
	close(mfd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

static void test_dma_map_overlap(void **state)
{
	int fd = hx_session(&S), mfd = hx_memfd(0x10000);

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x2000, 3, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x2000, 3, 0, NULL, 0), EEXIST);
	assert_int_equal(hx_dma_map(fd, 0x11000, 0x2000, 3, 0, NULL, 0), EEXIST);
	assert_int_equal(hx_dma_map(fd, 0xf000, 0x2000, 3, 0, NULL, 0), EEXIST);
	assert_int_equal(hx_dma_map(fd, 0x8000, 0x10000, 3, 0, NULL, 0), EEXIST);
	assert_int_equal(hx_dma_map(fd, 0x11fff, 1, 3, 0, NULL, 0), EEXIST);
	/* The same with an fd: refused before anything is mapped. */
	assert_int_equal(hx_dma_map(fd, 0x11000, 0x1000, 3, 0, &mfd, 1), EEXIST);
	/* Adjacent on both sides is fine. */
	assert_int_equal(hx_dma_map(fd, 0x12000, 0x1000, 3, 0, &mfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0xf000, 0x1000, 1, 0, NULL, 0), 0);
	close(mfd);
	/* The server closed every fd it was given; the mapping stays. */
	hs_wait_resources(&S, 1);
	end_session(fd);
}

/* fds that are not memory, or that cannot back the window. */
static void test_dma_map_bad_fds(void **state)
{
	int fd = hx_session(&S);
	int pfd[2], sv[2], dfd, nfd, efd, path_fd;

	(void)state;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	nfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	efd = hx_eventfd();
	assert_true(dfd >= 0 && nfd >= 0);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &pfd[0], 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &pfd[1], 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &sv[0], 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &dfd, 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &nfd, 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &efd, 1), EINVAL);
	/* The server's own listening socket, passed back to it. */
	{
		int lfd = tsrv_connect(&S.t);

		assert_true(lfd >= 0);
		/* (a connected socket; the listener itself is not ours) */
		assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &lfd, 1), EINVAL);
		close(lfd);
	}
	path_fd = hx_memfd(0x1000);
	{
		char p[64];
		int o;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", path_fd);
		o = open(p, O_PATH | O_CLOEXEC);
		assert_true(o >= 0);
		/* An O_PATH fd cannot be mapped at all. */
		assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &o, 1), EBADF);
		close(o);
	}
	close(path_fd);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
	close(dfd);
	close(nfd);
	close(efd);
	/* Nothing was mapped, and every fd was closed by the server. */
	assert_unmapped(fd, 0x10000, 0x1000);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

/* A regular file shorter than offset + size would SIGBUS on access. */
static void test_dma_map_short_file(void **state)
{
	int fd = hx_session(&S), mfd = hx_memfd(0x1000);

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x2000, 3, 0, &mfd, 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0x1000, &mfd, 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0x800, &mfd, 1), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0x100000000ull, &mfd, 1),
			 EINVAL);
	/* An empty file. */
	assert_int_equal(ftruncate(mfd, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &mfd, 1), EINVAL);
	/* The control: the whole file fits. */
	assert_int_equal(ftruncate(mfd, 0x1000), 0);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &mfd, 1), 0);
	assert_int_equal(hx_dma_unmap(fd, 0x10000, 0x1000, 0), 0);
	close(mfd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

static void test_dma_map_access_modes(void **state)
{
	int fd = hx_session(&S), mfd = hx_memfd(0x2000), ro, wo;
	char p[64];

	(void)state;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", mfd);
	ro = open(p, O_RDONLY | O_CLOEXEC);
	wo = open(p, O_WRONLY | O_CLOEXEC);
	assert_true(ro >= 0 && wo >= 0);
	/* The device may not be given write access through a read-only fd. */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &ro, 1), EACCES);
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 2, 0, &ro, 1), EACCES);
	/* A write-only fd cannot be mapped at all. */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &wo, 1), EACCES);
	/* Read-only use of a read-only fd is fine. */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &ro, 1), 0);
	/* flags: none, or unknown bits */
	assert_int_equal(hx_dma_map(fd, 0x20000, 0x1000, 0, 0, NULL, 0), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x20000, 0x1000, 4 | 1, 0, NULL, 0), EINVAL);
	assert_int_equal(hx_dma_map(fd, 0x20000, 0x1000, 0x80000001u, 0, &mfd, 1), EINVAL);
	close(ro);
	close(wo);
	close(mfd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

/* Sealed and huge files. */
static void test_dma_map_odd_files(void **state)
{
	int fd = hx_session(&S);
	int sfd = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int hfd = hx_memfd(0);

	(void)state;
	assert_true(sfd >= 0);
	assert_int_equal(ftruncate(sfd, 0x2000), 0);
	assert_int_equal(fcntl(sfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK |
			       F_SEAL_GROW), 0);
	/* A write-sealed file cannot back a window the device writes... */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, &sfd, 1), EPERM);
	/* ...but can back one it only reads. */
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 1, 0, &sfd, 1), 0);
	/* A sparse 64 GiB file: a window far into it. */
	assert_int_equal(ftruncate(hfd, 64ll << 30), 0);
	assert_int_equal(hx_dma_map(fd, 0x100000000ull, 0x1000, 3, 32ull << 30, &hfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0x200000000ull, 0x1000, 3, (64ull << 30) - 0x1000,
				    &hfd, 1), 0);
	assert_int_equal(hx_dma_map(fd, 0x300000000ull, 0x2000, 3, (64ull << 30) - 0x1000,
				    &hfd, 1), EINVAL);
	close(sfd);
	close(hfd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

static void test_dma_map_two_fds(void **state)
{
	int fd = hx_session(&S), fds[2] = { hx_memfd(0x1000), hx_memfd(0x1000) };

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, fds, 2), EINVAL);
	close(fds[0]);
	close(fds[1]);
	hs_wait_resources(&S, 1);
	/* Nothing was mapped. */
	assert_unmapped(fd, 0x10000, 0x1000);
	end_session(fd);
}

/* Without an fd the offset means nothing: it is ignored, not refused. */
static void test_dma_map_offset_without_fd(void **state)
{
	int fd = hx_session(&S);

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0x12345000, NULL, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x20000, 0x1000, 1, UINT64_MAX, NULL, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0x10000, 0x1000, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0x20000, 0x1000, 0), 0);
	end_session(fd);
}

static void test_dma_map_bad_struct(void **state)
{
	struct vfk_dma_map_wire w = { .argsz = 32, .flags = 3, .addr = 0x10000,
				      .size = 0x1000 };
	uint8_t big[64] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	memcpy(big, &w, sizeof(w));
	expect_err(fd, VFK_CMD_DMA_MAP, &w, 31, EINVAL);
	expect_err(fd, VFK_CMD_DMA_MAP, big, 33, EINVAL);
	expect_err(fd, VFK_CMD_DMA_MAP, NULL, 0, EINVAL);
	w.argsz = 31;
	expect_err(fd, VFK_CMD_DMA_MAP, &w, sizeof(w), EINVAL);
	w.argsz = 0xffffffff;
	expect_err(fd, VFK_CMD_DMA_MAP, &w, sizeof(w), EINVAL);
	assert_unmapped(fd, 0x10000, 0x1000);
	end_session(fd);
}

static void test_dma_unmap_bad(void **state)
{
	struct vfk_dma_unmap_wire w = { .argsz = 24, .addr = 0x100000, .size = 0x1000 };
	uint8_t big[64] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x100000, 0x2000, 3, 0, NULL, 0), 0);
	assert_int_equal(hx_dma_map(fd, 0x102000, 0x1000, 3, 0, NULL, 0), 0);
	/* Cutting a window: refused, nothing removed. */
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0x1000, 0), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0x101000, 0x1000, 0), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0x101000, 0x2000, 0), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0xff000, 0x2000, 0), EINVAL);
	/* Nothing mapped there: success with nothing removed, as type1
	 * answers (QEMU unmaps what it never mapped when it replays a guest
	 * IOMMU), also for a range that covers the holes around a window. */
	assert_int_equal(hx_dma_unmap(fd, 0x200000, 0x1000, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0, 0x1000, 0), 0);
	assert_int_equal(hx_dma_unmap(fd, 0, 0x100000, 0), 0);
	/* Size 0, wrap-around. */
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0, 0), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0xfffffffffffff000ull, 0x2000, 0), EOVERFLOW);
	/* UNMAP_ALL takes no range. */
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0, VFK_DMA_UNMAP_ALL), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0, 0x1000, VFK_DMA_UNMAP_ALL), EINVAL);
	/* Unknown flags; the dirty bitmap is not supported. */
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0x2000, 4), EINVAL);
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0x2000, VFK_DMA_UNMAP_DIRTY_BITMAP),
			 EOPNOTSUPP);
	/* Malformed payloads. */
	expect_err(fd, VFK_CMD_DMA_UNMAP, "\1", 1, EINVAL);
	expect_err(fd, VFK_CMD_DMA_UNMAP, NULL, 0, EINVAL);
	expect_err(fd, VFK_CMD_DMA_UNMAP, &w, 23, EINVAL);
	memcpy(big, &w, sizeof(w));
	expect_err(fd, VFK_CMD_DMA_UNMAP, big, 25, EINVAL);
	w.argsz = 8;
	expect_err(fd, VFK_CMD_DMA_UNMAP, &w, sizeof(w), EINVAL);
	/* Both windows are still there: one range covering both whole windows
	 * removes them. */
	assert_int_equal(hx_dma_unmap(fd, 0x100000, 0x3000, 0), 0);
	assert_unmapped(fd, 0x100000, 0x3000);
	/* UNMAP_ALL with nothing mapped is fine. */
	assert_int_equal(hx_dma_unmap(fd, 0, 0, VFK_DMA_UNMAP_ALL), 0);
	end_session(fd);
}

/* ---- info requests ---- */

static void test_region_info_bad(void **state)
{
	struct vfk_region_info_wire ri = { .argsz = 32 };
	uint8_t big[64] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	ri.index = 9;
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
	ri.index = 0xffffffff;
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
	ri.index = 0;
	ri.argsz = 31;
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
	ri.argsz = 0;
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
	ri.argsz = 32;
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, 16, EINVAL);
	memcpy(big, &ri, sizeof(ri));
	expect_err(fd, VFK_CMD_DEVICE_GET_REGION_INFO, big, 33, EINVAL);
	/* A huge argsz only means the client has room. */
	ri.argsz = 0xffffffff;
	ri.index = VFK_PCI_CONFIG;
	hx_expect_ok(fd, VFK_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0);
	{
		struct vfk_irq_info_wire ii = { .argsz = 16, .index = 5 };

		expect_err(fd, VFK_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);
		ii.index = 0xffffffff;
		expect_err(fd, VFK_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);
		ii.index = 0;
		ii.argsz = 15;
		expect_err(fd, VFK_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);
		ii.argsz = 16;
		ii.count = 1;
		expect_err(fd, VFK_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);
	}
	{
		struct vfk_io_fds_wire io = { .argsz = 16, .index = 9 };

		expect_err(fd, VFK_CMD_DEVICE_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);
		io.index = 0;
		io.count = 0xffffffff;
		expect_err(fd, VFK_CMD_DEVICE_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);
	}
	{
		struct vfk_device_info_wire di = { .argsz = 15 };

		expect_err(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
		di.argsz = 16;
		di.num_regions = 5;
		expect_err(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
		expect_err(fd, VFK_CMD_DEVICE_GET_INFO, &di, 8, EINVAL);
	}
	expect_err(fd, VFK_CMD_DEVICE_RESET, "x", 1, EINVAL);
	hx_sync(fd);
	end_session(fd);
}

/* ---- REGION_READ / REGION_WRITE ---- */

static void test_region_rw_counts(void **state)
{
	struct vfk_region_rw_wire w = { .offset = 0, .region = VFK_PCI_CONFIG };
	uint8_t b[64] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	hx_enable(fd);
	/* count 0 */
	expect_err(fd, VFK_CMD_REGION_READ, &w, sizeof(w), EINVAL);
	expect_err(fd, VFK_CMD_REGION_WRITE, &w, sizeof(w), EINVAL);
	/* count over max_data_xfer */
	assert_int_equal(hx_region_read(fd, VFK_PCI_CONFIG, 0, MiB + 1, NULL), E2BIG);
	assert_int_equal(hx_region_read(fd, BAR2, 0, 0xffffffff, NULL), E2BIG);
	w.count = MiB + 1;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + 4, E2BIG);
	w.count = 0xffffffff;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + 8, E2BIG);
	/* The largest transfer is fine where the region is large enough:
	 * BAR2 is 64 KiB. */
	assert_int_equal(hx_region_read(fd, BAR2, 0, 0x1000, NULL), 0);
	hx_sync(fd);
	end_session(fd);
}

static void test_region_rw_offsets(void **state)
{
	static const struct { uint32_t region; uint64_t off; uint32_t count; int err; } bad[] = {
		/* offset + count wraps around 2^64 */
		{ VFK_PCI_BAR0, 0xfffffffffffffffeull, 4, EOVERFLOW },
		{ VFK_PCI_CONFIG, UINT64_MAX - 2, 8, EOVERFLOW },
		{ BAR2, 0x8000000000000000ull, 0xffffff, E2BIG },
		/* beyond the region, or straddling its end */
		{ VFK_PCI_BAR0, 4096, 4, EINVAL },
		{ VFK_PCI_BAR0, 4094, 4, EINVAL },
		{ VFK_PCI_BAR0, 1ull << 40, 4, EINVAL },
		{ VFK_PCI_BAR0, UINT64_MAX - 4, 4, EINVAL },
		{ BAR2, 0x10000, 1, EINVAL },
		{ BAR2, 0xfff0, 0x20, EINVAL },
		{ 4, 256, 4, EINVAL },
		{ 4, 0, 257, EINVAL },
		{ 5, 16, 1, EINVAL },
		{ 5, 12, 8, EINVAL },
		{ VFK_PCI_ROM, 2048, 4, EINVAL },
		/* vfio-pci answers EFAULT past config space */
		{ VFK_PCI_CONFIG, 4096, 4, EFAULT },
		{ VFK_PCI_CONFIG, 4094, 4, EFAULT },
		{ VFK_PCI_CONFIG, 0, 4097, EFAULT },
		/* region indexes that do not exist: the upper halves of the
		 * 64-bit BAR2, VGA, past the last region */
		{ 3, 0, 4, EINVAL },
		{ 1, 0, 4, EINVAL },
		{ VFK_PCI_VGA, 0, 4, EINVAL },
		{ 9, 0, 4, EINVAL },
		{ 0xffffffff, 0, 4, EINVAL },
	};
	uint8_t data[0x1000] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	hx_enable(fd);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = hx_region_read(fd, bad[i].region, bad[i].off, bad[i].count, NULL);
		int w;

		if (r != bad[i].err)
			fail_msg("REGION_READ %u/%#llx/%u: errno %d, expected %d",
				 bad[i].region, (unsigned long long)bad[i].off,
				 bad[i].count, r, bad[i].err);
		if (bad[i].count > sizeof(data))
			continue;
		w = hx_region_write(fd, bad[i].region, bad[i].off, bad[i].count, data);
		if (w != bad[i].err)
			fail_msg("REGION_WRITE %u/%#llx/%u: errno %d, expected %d",
				 bad[i].region, (unsigned long long)bad[i].off,
				 bad[i].count, w, bad[i].err);
	}
	/* The ROM is read-only. */
	assert_int_equal(hx_region_write(fd, VFK_PCI_ROM, 0, 4, data), EINVAL);
	hx_sync(fd);
	end_session(fd);
}

/* The payload of a REGION_WRITE must be exactly `count` bytes; a
 * REGION_READ carries none. */
static void test_region_rw_payload_mismatch(void **state)
{
	struct vfk_region_rw_wire w = { .offset = DMA_TEST_REG_SCRATCH,
					.region = VFK_PCI_BAR0 };
	uint8_t b[64];
	uint32_t v = 0x5a5a0001;
	int fd = hx_session(&S);

	(void)state;
	hx_enable(fd);
	hx_bar0_write(fd, DMA_TEST_REG_SCRATCH, v, 4);
	memset(b, 0xee, sizeof(b));
	w.count = 8;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + 4, EINVAL);
	w.count = 4;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + 8, EINVAL);
	expect_err(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + 3, EINVAL);
	expect_err(fd, VFK_CMD_REGION_WRITE, b, 8, EINVAL);
	expect_err(fd, VFK_CMD_REGION_WRITE, NULL, 0, EINVAL);
	expect_err(fd, VFK_CMD_REGION_READ, b, sizeof(w) + 4, EINVAL);
	expect_err(fd, VFK_CMD_REGION_READ, b, 8, EINVAL);
	expect_err(fd, VFK_CMD_REGION_READ, NULL, 0, EINVAL);
	/* None of them wrote. */
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), v);
	end_session(fd);
}

static size_t multi(uint8_t *b, uint64_t n, const struct vfk_write_one_wire *e,
		    unsigned ne)
{
	memcpy(b, &n, 8);
	if (ne)
		memcpy(b + 8, e, ne * sizeof(*e));
	return 8 + ne * sizeof(*e);
}

static void test_write_multi_bad(void **state)
{
	struct vfk_write_one_wire e[2] = {
		{ .offset = DMA_TEST_REG_SCRATCH, .region = VFK_PCI_BAR0, .count = 4,
		  .data = { 0x11, 0x22, 0x33, 0x44 } },
		{ .offset = DMA_TEST_REG_SCRATCH, .region = VFK_PCI_BAR0, .count = 4,
		  .data = { 0x55, 0x66, 0x77, 0x88 } },
	};
	uint8_t b[128];
	uint32_t v = 0x01020304;
	size_t n;
	int fd = hx_session(&S);

	(void)state;
	hx_enable(fd);
	hx_bar0_write(fd, DMA_TEST_REG_SCRATCH, v, 4);
	/* 0 entries */
	n = multi(b, 0, NULL, 0);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	/* count says 2, one entry follows; count says 1, 1.5 entries follow */
	n = multi(b, 2, e, 1);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	n = multi(b, 1, e, 2);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n - 12, EINVAL);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	/* huge counts, one that makes n * 24 wrap to the payload's size */
	n = multi(b, 1ull << 63, e, 1);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	n = multi(b, 0x0aaaaaaaaaaaaaabull, e, 0);
	memset(b + 8, 0, 8);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n + 8, EINVAL);
	/* shorter than the count */
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, 4, EINVAL);
	/* entry count 9 and 0 */
	e[0].count = 9;
	n = multi(b, 1, e, 1);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	e[0].count = 0;
	n = multi(b, 1, e, 1);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	/* a valid first entry and an invalid second one: the batch is
	 * validated before anything is written */
	e[0].count = 4;
	e[1].count = 9;
	n = multi(b, 2, e, 2);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EINVAL);
	/* an entry whose offset + count wraps */
	e[1].count = 4;
	e[1].offset = UINT64_MAX - 1;
	n = multi(b, 2, e, 2);
	expect_err(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, EOVERFLOW);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), v);
	/* The control: one good entry; the reply is the count. */
	{
		uint8_t rb[16];
		int rl = -1;
		uint64_t got;

		n = multi(b, 1, e, 1);
		assert_int_equal(hx_call(fd, VFK_CMD_REGION_WRITE_MULTI, b, n, NULL, 0, rb,
					 sizeof(rb), &rl), 0);
		assert_int_equal(rl, 8);
		memcpy(&got, rb, 8);
		assert_int_equal(got, 1);
		assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), 0x44332211);
	}
	end_session(fd);
}

/* ---- SET_IRQS ---- */

#define D_NONE VFK_IRQ_SET_DATA_NONE
#define D_BOOL VFK_IRQ_SET_DATA_BOOL
#define D_EFD VFK_IRQ_SET_DATA_EVENTFD
#define A_MASK VFK_IRQ_SET_ACTION_MASK
#define A_UNMASK VFK_IRQ_SET_ACTION_UNMASK
#define A_TRIG VFK_IRQ_SET_ACTION_TRIGGER

static void test_set_irqs_bad(void **state)
{
	static const struct {
		uint32_t flags, index, start, count;
		int err;
	} bad[] = {
		{ D_NONE | D_BOOL | A_TRIG, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE | D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ A_TRIG, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ 0, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE | A_MASK | A_UNMASK, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE | A_TRIG | (1u << 6), VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE | A_TRIG | 0x80000000u, VFK_PCI_MSIX, 0, 1, EINVAL },
		/* past the vector count (MSI-X has 4) */
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 0, 5, EINVAL },
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 4, 1, EINVAL },
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 3, 2, EINVAL },
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 0, 0xffffffff, EINVAL },
		{ D_NONE | A_TRIG, VFK_PCI_MSI, 1, 1, EINVAL },
		{ D_NONE | A_TRIG, VFK_PCI_INTX, 0, 2, EINVAL },
		/* start + count wraps around 2^32 */
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 0xffffffff, 2, EOVERFLOW },
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 0xfffffffe, 1, EINVAL },
		/* no such index */
		{ D_NONE | A_TRIG, 5, 0, 1, EINVAL },
		{ D_NONE | A_TRIG, 0xffffffff, 0, 1, EINVAL },
		/* count 0 only disables (NONE|TRIGGER, start 0) */
		{ D_NONE | A_TRIG, VFK_PCI_MSIX, 1, 0, EINVAL },
		{ D_NONE | A_MASK, VFK_PCI_MSIX, 0, 0, EINVAL },
		{ D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 0, EINVAL },
		/* masking ERR/REQ makes no sense (vfio-pci: EINVAL) */
		{ D_NONE | A_MASK, VFK_PCI_ERR, 0, 1, EINVAL },
		{ D_NONE | A_UNMASK, VFK_PCI_REQ, 0, 1, EINVAL },
		/* an eventfd as a mask: vfio-pci has no such thing for MSI-X */
		{ D_EFD | A_MASK, VFK_PCI_MSIX, 0, 1, ENOTTY },
		/* masking a type that is not enabled (vfio-pci: EINVAL) */
		{ D_NONE | A_MASK, VFK_PCI_INTX, 0, 1, EINVAL },
		{ D_NONE | A_UNMASK, VFK_PCI_INTX, 0, 1, EINVAL },
		{ D_EFD | A_UNMASK, VFK_PCI_INTX, 0, 1, EINVAL },
		{ D_NONE | A_MASK, VFK_PCI_MSIX, 0, 1, EINVAL },
		{ D_NONE | A_UNMASK, VFK_PCI_MSI, 0, 1, EINVAL },
	};
	int fd = hx_session(&S);

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = hx_set_irqs(fd, bad[i].flags, bad[i].index, bad[i].start,
				     bad[i].count, NULL, 0);

		if (rc != bad[i].err)
			fail_msg("SET_IRQS case %u (flags %#x index %u start %u count %u): "
				 "errno %d, expected %d", i, bad[i].flags, bad[i].index,
				 bad[i].start, bad[i].count, rc, bad[i].err);
	}
	hx_sync(fd);
	end_session(fd);
}

static void test_set_irqs_bad_data(void **state)
{
	struct vfk_irq_set_wire w = { .argsz = 20, .flags = D_BOOL | A_TRIG,
				      .index = VFK_PCI_MSIX, .start = 0, .count = 1 };
	uint8_t b[64] = { 0 };
	int fd = hx_session(&S);

	(void)state;
	/* BOOL without its bytes, or with too few / too many */
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, &w, sizeof(w), EINVAL);
	w.count = 2;
	w.argsz = 21;
	memcpy(b, &w, sizeof(w));
	b[20] = 1;
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, b, 21, EINVAL);
	w.count = 1;
	w.argsz = 23;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, b, 23, EINVAL);
	w.count = 0xffffffff;
	w.argsz = 21;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, b, 21, EINVAL);
	/* argsz that describes nothing sent */
	w.flags = D_NONE | A_TRIG;
	w.count = 1;
	w.argsz = 19;
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, &w, sizeof(w), EINVAL);
	w.argsz = 0xffffffff;
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, &w, sizeof(w), EINVAL);
	/* NONE with a payload tail */
	w.argsz = 24;
	memcpy(b, &w, sizeof(w));
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, b, 24, EINVAL);
	/* shorter than the structure */
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, &w, 16, EINVAL);
	expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, NULL, 0, EINVAL);
	hx_sync(fd);
	end_session(fd);
}

/* fds with SET_IRQS that cannot take them, or that are not eventfds; the
 * server must refuse the message and close every fd. */
static void test_set_irqs_bad_fds(void **state)
{
	int fd = hx_session(&S);
	int e[3] = { hx_eventfd(), hx_eventfd(), hx_eventfd() };
	int pfd[2], sv[2], mfd = hx_memfd(4096);

	(void)state;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* fds with DATA_NONE / DATA_BOOL */
	assert_int_equal(hx_set_irqs(fd, D_NONE | A_TRIG, VFK_PCI_MSIX, 0, 1, e, 1), EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_NONE | A_TRIG, VFK_PCI_MSIX, 0, 0, e, 1), EINVAL);
	{
		struct vfk_irq_set_wire w = { .argsz = 21, .flags = D_BOOL | A_TRIG,
					      .index = VFK_PCI_MSIX, .count = 1 };
		uint8_t b[24] = { 0 };

		memcpy(b, &w, sizeof(w));
		b[20] = 1;
		hx_expect_err(fd, VFK_CMD_DEVICE_SET_IRQS, b, 21, e, 1, EINVAL);
	}
	/* fewer or more fds than vectors */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 2, e, 1), EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 2, e, 3), EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, e, 2), EINVAL);
	/* fds that are not eventfds */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, &pfd[1], 1),
			 EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, &sv[0], 1),
			 EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, &mfd, 1),
			 EINVAL);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_INTX, 0, 1, &pfd[0], 1),
			 EINVAL);
	{
		int mixed[2] = { e[0], pfd[1] };

		assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 2, mixed,
					     2), EINVAL);
	}
	/* an eventfd for an index that does not exist */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, 5, 0, 1, e, 1), EINVAL);
	/* the server closed all of them */
	hs_wait_resources(&S, 1);
	/* The control: a valid binding keeps its eventfd until the client
	 * goes. */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 2, e, 2), 0);
	hs_wait_resources(&S, 3);
	for (unsigned i = 0; i < 3; i++)
		close(e[i]);
	close(pfd[0]);
	close(pfd[1]);
	close(sv[0]);
	close(sv[1]);
	close(mfd);
	end_session(fd);
}

/* Eventfds the server keeps are closed when replaced, disabled, or when
 * the client goes. */
static void test_set_irqs_fd_lifetimes(void **state)
{
	int fd = hx_session(&S);
	int e[4] = { hx_eventfd(), hx_eventfd(), hx_eventfd(), hx_eventfd() };
	uint64_t one = 1;

	(void)state;
	/* INTx trigger and unmask eventfds (the server watches its own
	 * duplicate of the unmask eventfd: one fd more) */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_INTX, 0, 1, &e[0], 1), 0);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_UNMASK, VFK_PCI_INTX, 0, 1, &e[1], 1), 0);
	hs_wait_resources(&S, 4);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_UNMASK, VFK_PCI_INTX, 0, 1, &e[2], 1), 0);
	hs_wait_resources(&S, 4);
	assert_int_equal(write(e[2], &one, 8), 8);
	hx_sync(fd);
	/* a mask eventfd for INTx does not exist (vfio-pci: ENOTTY) */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_MASK, VFK_PCI_INTX, 0, 1, &e[3], 1),
			 ENOTTY);
	hs_wait_resources(&S, 4);
	/* another type while INTx is on: vfio-pci wants it disabled first */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, &e[3], 1),
			 EINVAL);
	hs_wait_resources(&S, 4);
	/* disabling INTx releases both */
	assert_int_equal(hx_set_irqs(fd, D_NONE | A_TRIG, VFK_PCI_INTX, 0, 0, NULL, 0), 0);
	hs_wait_resources(&S, 1);
	/* MSI-X: bind, rebind the same vector, unbind with no fds */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 2, e, 2), 0);
	hs_wait_resources(&S, 3);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 1, 1, &e[3], 1), 0);
	hs_wait_resources(&S, 3);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, 1, NULL, 0), 0);
	hs_wait_resources(&S, 2);
	/* ERR and REQ take an eventfd too */
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_ERR, 0, 1, &e[0], 1), 0);
	assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_REQ, 0, 1, &e[1], 1), 0);
	hs_wait_resources(&S, 4);
	for (unsigned i = 0; i < 4; i++)
		close(e[i]);
	/* the client goes with three eventfds bound */
	end_session(fd);
}

/* ---- fds where none belong, too many fds ---- */

/* The rule: fds where none belong get an error reply (or the client
 * is dropped), and are closed. */
static void test_fd_on_device_info(void **state)
{
	struct vfk_device_info_wire di = { .argsz = 16 };
	int fd = hx_session(&S), efd = hx_eventfd(), rc;

	(void)state;
	rc = hx_call(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), &efd, 1, NULL, 0, NULL);
	close(efd);
	hs_wait_resources(&S, 1);
	assert_int_equal(rc, EINVAL);
	end_session(fd);
}

static void test_fd_on_region_write(void **state)
{
	struct vfk_region_rw_wire w = { .offset = DMA_TEST_REG_SCRATCH,
					.region = VFK_PCI_BAR0, .count = 4 };
	uint8_t b[20];
	uint32_t v = 0x77, nv = 0x88;
	int fd = hx_session(&S), mfd = hx_memfd(4096), rc;

	(void)state;
	hx_enable(fd);
	hx_bar0_write(fd, DMA_TEST_REG_SCRATCH, v, 4);
	memcpy(b, &w, sizeof(w));
	memcpy(b + 16, &nv, 4);
	rc = hx_call(fd, VFK_CMD_REGION_WRITE, b, sizeof(b), &mfd, 1, NULL, 0, NULL);
	close(mfd);
	hs_wait_resources(&S, 1);
	assert_int_equal(rc, EINVAL);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_SCRATCH), v);
	end_session(fd);
}

static void test_fd_on_dma_unmap(void **state)
{
	int fd = hx_session(&S), mfd = hx_memfd(4096);
	struct vfk_dma_unmap_wire w = { .argsz = 24, .addr = 0x10000, .size = 0x1000 };
	int rc;

	(void)state;
	assert_int_equal(hx_dma_map(fd, 0x10000, 0x1000, 3, 0, NULL, 0), 0);
	rc = hx_call(fd, VFK_CMD_DMA_UNMAP, &w, sizeof(w), &mfd, 1, NULL, 0, NULL);
	close(mfd);
	hs_wait_resources(&S, 1);
	assert_int_equal(rc, EINVAL);
	end_session(fd);
}

/* fds on messages that are refused whole are closed, too. */
static void test_fd_on_bad_messages(void **state)
{
	int fd = hx_session(&S), efd = hx_eventfd();
	uint16_t id;

	(void)state;
	id = hx_id();
	assert_int_equal(hx_send_hdr(fd, id, VFK_CMD_DEVICE_GET_INFO, 16, 0x100, 0, NULL,
				     0, &efd, 1), 0);
	assert_int_equal(hx_wait_reply(fd, id, VFK_CMD_DEVICE_GET_INFO, NULL, 0, NULL),
			 EINVAL);
	hx_expect_err(fd, 0x4242, NULL, 0, &efd, 1, ENOSYS);
	assert_int_equal(hx_send_hdr(fd, hx_id(), 0x4242, 16, VFK_F_NO_REPLY, 0, NULL, 0,
				     &efd, 1), 0);
	hx_sync(fd);
	close(efd);
	hs_wait_resources(&S, 1);
	end_session(fd);
}

/*
 * More fds than the server takes in one message: the kernel truncates the
 * control data (MSG_CTRUNC) and drops the rest; the message must be
 * refused and the fds that did arrive closed.
 */
static void test_too_many_fds(void **state)
{
	static const unsigned counts[] = { 65, 100, 253 };
	int fds[253];
	int fd = hx_session(&S);

	(void)state;
	for (unsigned i = 0; i < 253; i++)
		fds[i] = hx_eventfd();
	for (unsigned k = 0; k < 3; k++) {
		assert_int_equal(hx_set_irqs(fd, D_EFD | A_TRIG, VFK_PCI_MSIX, 0, counts[k],
					     fds, counts[k]), EMSGSIZE);
		hs_wait_resources(&S, 1);
	}
	{
		struct vfk_device_info_wire di = { .argsz = 16 };

		hx_expect_err(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), fds, 200,
			      EMSGSIZE);
	}
	hs_wait_resources(&S, 1);
	for (unsigned i = 0; i < 253; i++)
		close(fds[i]);
	hx_sync(fd);
	end_session(fd);
}

/* ---- main ---- */

int main(void)
{
	static const struct hx_test tests[] = {
		HX_TEST(test_hdr_size_below_16),
		HX_TEST(test_hdr_size_below_16_first),
		HX_TEST(test_hdr_size_short_lie),
		HX_TEST(test_hdr_size_huge),
		HX_TEST(test_hdr_size_over_max),
		HX_TEST(test_hdr_bad_flags),
		HX_TEST(test_hdr_bad_type),
		HX_TEST(test_reply_typed),
		HX_TEST(test_no_reply),
		HX_TEST(test_unknown_command),
		HX_TEST(test_version_not_first),
		HX_TEST(test_version_twice),
		HX_TEST(test_version_bad_payload),
		HX_TEST(test_version_minimal),
		HX_TEST(test_version_big_json),
		HX_TEST(test_version_major),
		HX_TEST(test_dma_map_bad_ranges),
		HX_TEST(test_dma_map_overlap),
		HX_TEST(test_dma_map_bad_fds),
		HX_TEST(test_dma_map_short_file),
		HX_TEST(test_dma_map_access_modes),
		HX_TEST(test_dma_map_odd_files),
		HX_TEST(test_dma_map_two_fds),
		HX_TEST(test_dma_map_offset_without_fd),
		HX_TEST(test_dma_map_bad_struct),
		HX_TEST(test_dma_unmap_bad),
		HX_TEST(test_region_info_bad),
		HX_TEST(test_region_rw_counts),
		HX_TEST(test_region_rw_offsets),
		HX_TEST(test_region_rw_payload_mismatch),
		HX_TEST(test_write_multi_bad),
		HX_TEST(test_set_irqs_bad),
		HX_TEST(test_set_irqs_bad_data),
		HX_TEST(test_set_irqs_bad_fds),
		HX_TEST(test_set_irqs_fd_lifetimes),
		HX_TEST(test_fd_on_device_info),
		HX_TEST(test_fd_on_region_write),
		HX_TEST(test_fd_on_dma_unmap),
		HX_TEST(test_fd_on_bad_messages),
		HX_TEST(test_too_many_fds),
	};

	return hx_main("hostile-messages", tests, sizeof(tests) / sizeof(tests[0]), NULL);
}
