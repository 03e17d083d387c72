/* SPDX-License-Identifier: MIT */
/*
 * Hostile client, part 3: a flood of 10,000 random messages from a seeded
 * PRNG against a real `vfiokit serve dma-test` process.
 *
 * Messages are mostly well framed with plausible but mutated payloads (so
 * that they reach the handlers, not just the header check), some carry fds
 * of every kind, and a few connections end in a framing attack.  After
 * every few messages a DEVICE_GET_INFO round trip proves the stream is still
 * framed; requests the server sends meanwhile (DMA_READ/WRITE, when random
 * writes happened to start a copy) are answered with an error.  Every
 * connection must end with the server's fds and mappings back at their
 * baseline, and a connection may only be dropped after a message that
 * justifies it.  HOSTILE_SEED=N replays another sequence.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostile.h"
#include "dma_test.h"

#define FLOOD_MSGS 10000u

/* The `vfiokit serve dma-test` process of the running test. */
#define S (*hs_cur)
static uint64_t rng_state;

/* splitmix64: tiny, and good enough to pick fields. */
static uint64_t rnd64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t rnd(uint32_t n)
{
	return n ? (uint32_t)(rnd64() % n) : 0;
}

static bool chance(unsigned percent)
{
	return rnd(100) < percent;
}

static void rnd_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd64();
}

/* A 64-bit value of a kind that tends to find edge cases. */
static uint64_t rnd_val(uint64_t typical)
{
	switch (rnd(8)) {
	case 0:
		return rnd64();
	case 1:
		return UINT64_MAX - rnd(16);
	case 2:
		return 0;
	case 3:
		return 1ull << rnd(64);
	default:
		return typical ? rnd64() % typical : 0;
	}
}

static const uint64_t region_size[] = { 4096, 0, 0x10000, 0, 256, 16, 2048, 4096, 0 };

static void gen_rw(uint8_t *p, size_t *len, bool write)
{
	struct vfk_region_rw_wire w;
	uint32_t r = chance(90) ? rnd(9) : (uint32_t)rnd_val(16);
	uint64_t size = r < 9 ? region_size[r] : 64;
	static const uint32_t counts[] = { 1, 2, 4, 8, 3, 16, 64 };

	w.region = r;
	w.offset = chance(85) ? rnd((uint32_t)size + 8) : rnd_val(size);
	w.count = chance(80) ? counts[rnd(7)] : (uint32_t)rnd_val(4096);
	memcpy(p, &w, sizeof(w));
	*len = sizeof(w);
	if (write) {
		uint32_t n = w.count <= 4096 ? w.count : rnd(64);

		if (chance(10))
			n = rnd(64);
		rnd_bytes(p + 16, n);
		/* Mostly harmless values: keep the command register on so
		 * that BAR accesses reach the model. */
		if (r == VFK_PCI_CONFIG && w.offset == 4 && n >= 2 && chance(70))
			p[16] |= 0x7;
		*len += n;
	}
}

/* Build a random message into `m` (header included); returns its length.
 * *nfds asks the caller to attach that many fds; *may_drop is set if the
 * server may legitimately drop the client for it; *wants_reply tells
 * whether a reply to it (id, *cmd) must come. */
static size_t gen_msg(uint8_t *m, uint16_t id, bool negotiated, unsigned *nfds,
		      bool *may_drop, uint16_t *cmd, bool *wants_reply)
{
	static const uint16_t cmds[] = {
		1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10, 11, 12,
		13, 15, 15, 16, 17, 18,
	};
	static const char *const jsons[] = {
		"{}", "", "{\"capabilities\":{}}",
		"{\"capabilities\":{\"max_msg_fds\":4,\"max_data_xfer_size\":4096}}",
		"{\"capabilities\":{\"max_msg_fds\":\"x\"}}", "{", "[1,2]",
		"{\"capabilities\":{\"pgsizes\":4096,\"max_dma_maps\":1}}",
		"{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}",
		"{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}",
	};
	struct vfk_hdr h = { .id = id };
	uint8_t *p = m + 16;
	size_t len = 0;

	*nfds = 0;
	h.cmd = chance(90) ? cmds[rnd(sizeof(cmds) / sizeof(cmds[0]))] : (uint16_t)rnd64();
	if (chance(85))
		h.flags = 0;
	else if (chance(50))
		h.flags = VFK_F_NO_REPLY;
	else
		h.flags = (uint32_t)rnd_val(0x40);
	h.error = chance(97) ? 0 : (uint32_t)rnd64();
	/* A type that is neither command nor reply: not vfio-user, so the
	 * server drops the client. */
	if ((h.flags & VFK_F_TYPE_MASK) > VFK_F_TYPE_REPLY)
		*may_drop = true;

	if (chance(8)) {
		len = rnd(96);
		rnd_bytes(p, len);
		if (chance(5))
			*nfds = 1 + rnd(3);
	} else {
		switch (h.cmd) {
		case VFK_CMD_VERSION: {
			uint16_t major = chance(85) ? 0 : (uint16_t)rnd64();
			uint16_t minor = (uint16_t)rnd(3);
			const char *j = jsons[rnd(sizeof(jsons) / sizeof(jsons[0]))];

			memcpy(p, &major, 2);
			memcpy(p + 2, &minor, 2);
			len = 4;
			if (chance(80)) {
				memcpy(p + 4, j, strlen(j) + 1);
				len += strlen(j) + (chance(90) ? 1 : 0);
			}
			if (!negotiated && major != 0)
				*may_drop = true;
			break;
		}
		case VFK_CMD_DMA_MAP: {
			struct vfk_dma_map_wire w = {
				.argsz = chance(90) ? 32 : (uint32_t)rnd_val(64),
				.flags = chance(90) ? 1 + rnd(3) : (uint32_t)rnd_val(8),
				.offset = chance(80) ? rnd(16) * 0x1000ull : rnd_val(0x10000),
				.addr = chance(80) ? rnd(32) * 0x1000ull : rnd_val(0),
				.size = chance(80) ? (1 + rnd(4)) * 0x1000ull : rnd_val(0x10000),
			};

			memcpy(p, &w, sizeof(w));
			len = sizeof(w);
			if (chance(50))
				*nfds = chance(90) ? 1 : 2;
			break;
		}
		case VFK_CMD_DMA_UNMAP: {
			struct vfk_dma_unmap_wire w = {
				.argsz = chance(90) ? 24 : (uint32_t)rnd_val(64),
				.flags = chance(85) ? 0 : (uint32_t)rnd_val(4),
				.addr = chance(80) ? rnd(32) * 0x1000ull : rnd_val(0),
				.size = chance(80) ? (1 + rnd(8)) * 0x1000ull : rnd_val(0x10000),
			};

			if (w.flags == VFK_DMA_UNMAP_ALL && chance(80))
				w.addr = w.size = 0;
			memcpy(p, &w, sizeof(w));
			len = sizeof(w);
			break;
		}
		case VFK_CMD_DEVICE_GET_INFO:
		case VFK_CMD_DEVICE_GET_REGION_IO_FDS:
		case VFK_CMD_DEVICE_GET_IRQ_INFO: {
			uint32_t w[4] = { chance(90) ? 16 : (uint32_t)rnd_val(64), 0,
					  chance(90) ? rnd(10) : (uint32_t)rnd64(), 0 };

			if (chance(10))
				w[1] = (uint32_t)rnd64();
			memcpy(p, w, sizeof(w));
			len = chance(95) ? sizeof(w) : rnd(24);
			break;
		}
		case VFK_CMD_DEVICE_GET_REGION_INFO: {
			struct vfk_region_info_wire w = {
				.argsz = chance(80) ? 32 + rnd(200) : (uint32_t)rnd_val(64),
				.index = chance(90) ? rnd(10) : (uint32_t)rnd64(),
			};

			memcpy(p, &w, sizeof(w));
			len = chance(95) ? sizeof(w) : rnd(40);
			break;
		}
		case VFK_CMD_DEVICE_SET_IRQS: {
			static const uint32_t data[] = { 1, 2, 4 }, act[] = { 8, 16, 32 };
			struct vfk_irq_set_wire w = {
				.flags = chance(85) ? data[rnd(3)] | act[rnd(3)]
						    : (uint32_t)rnd_val(64),
				.index = chance(90) ? rnd(6) : (uint32_t)rnd64(),
				.start = chance(90) ? rnd(5) : (uint32_t)rnd64(),
				.count = chance(90) ? rnd(5) : (uint32_t)rnd64(),
			};

			len = sizeof(w);
			if ((w.flags & 2) && w.count < 16) {
				rnd_bytes(p + len, w.count);
				len += w.count;
			}
			w.argsz = chance(90) ? (uint32_t)len : (uint32_t)rnd_val(64);
			memcpy(p, &w, sizeof(w));
			if ((w.flags & 4) && chance(80))
				*nfds = w.count < 8 ? w.count : 1;
			else if (chance(5))
				*nfds = 1;
			break;
		}
		case VFK_CMD_REGION_READ:
			gen_rw(p, &len, false);
			break;
		case VFK_CMD_REGION_WRITE:
			gen_rw(p, &len, true);
			break;
		case VFK_CMD_REGION_WRITE_MULTI: {
			uint64_t n = chance(90) ? 1 + rnd(4) : rnd_val(8);
			unsigned k = n <= 8 ? (unsigned)n : rnd(3);

			if (chance(10))
				k = rnd(5);
			memcpy(p, &n, 8);
			len = 8;
			for (unsigned i = 0; i < k; i++) {
				struct vfk_write_one_wire e = {
					.offset = rnd(64),
					.region = chance(90) ? rnd(8) : (uint32_t)rnd64(),
					.count = chance(90) ? 1u << rnd(4) : rnd(12),
				};

				rnd_bytes(e.data, 8);
				memcpy(p + len, &e, sizeof(e));
				len += sizeof(e);
			}
			break;
		}
		case VFK_CMD_DEVICE_FEATURE: {
			uint32_t w[2] = { 8 + rnd(32), (uint32_t)rnd_val(0x80000) };

			memcpy(p, w, 8);
			len = 8 + rnd(16);
			rnd_bytes(p + 8, len - 8);
			break;
		}
		default:
			len = rnd(48);
			rnd_bytes(p, len);
			break;
		}
	}
	h.size = (uint32_t)(16 + len);
	vfk_hdr_encode(m, &h);
	/* Every command without NO_REPLY is answered, even a malformed
	 * one; nothing else is. */
	*cmd = h.cmd;
	*wants_reply = (h.flags & VFK_F_TYPE_MASK) == VFK_F_TYPE_COMMAND &&
		       !(h.flags & VFK_F_NO_REPLY);
	return 16 + len;
}

/* fds of assorted kinds; the caller closes them after sending. */
static void make_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		int pfd[2];

		switch (rnd(6)) {
		case 0:
		case 1:
			fds[i] = hx_memfd(0x10000);
			break;
		case 2:
		case 3:
			fds[i] = hx_eventfd();
			break;
		case 4:
			assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
			close(pfd[0]);
			fds[i] = pfd[1];
			break;
		default:
			fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
			assert_true(fds[i] >= 0);
			break;
		}
	}
}

struct flood_stats {
	unsigned msgs, replies, errors, no_reply_seen, server_reqs, conns, drops,
		attacks;
	unsigned err_count[256];
};

struct expect {
	uint16_t id, cmd;
};

/*
 * Read until the reply to `sync_id` arrives; the replies before it must be
 * those in `exp`, in order.  Returns 0 with the sync's errno in *sync_err,
 * or -EPIPE when the server dropped us.
 */
static int drain(int fd, uint16_t sync_id, const struct expect *exp, unsigned nexp,
		 int *sync_err, struct flood_stats *st)
{
	unsigned next = 0;

	static uint8_t b[(1 << 20) + 64];

	for (;;) {
		struct vfk_hdr h;
		int n = raw_recv(fd, &h, b, sizeof(b), NULL, NULL, 10000);

		if (n == -EPIPE || n == -ECONNRESET)
			return -EPIPE;
		if (n < 0)
			fail_msg("the server stopped answering: %s", strerror(-n));
		if ((h.flags & VFK_F_TYPE_MASK) == VFK_F_TYPE_COMMAND) {
			/* A DMA request from a copy our random writes
			 * started: refuse it as a client without bus
			 * mastering would. */
			assert_true(h.cmd == VFK_CMD_DMA_READ || h.cmd == VFK_CMD_DMA_WRITE);
			st->server_reqs++;
			assert_int_equal(hx_send_hdr(fd, h.id, h.cmd, 16,
						     VFK_F_TYPE_REPLY | VFK_F_ERROR, ENODEV,
						     NULL, 0, NULL, 0), 0);
			continue;
		}
		assert_int_equal(h.flags & VFK_F_TYPE_MASK, VFK_F_TYPE_REPLY);
		if (h.flags & VFK_F_ERROR) {
			/* Error replies are bare headers with an errno. */
			assert_int_equal(n, 0);
			assert_int_not_equal(h.error, 0);
			st->errors++;
			st->err_count[h.error < 256 ? h.error : 255]++;
		} else {
			assert_int_equal(h.error, 0);
		}
		if (next == nexp) {
			if (h.id != sync_id || h.cmd != VFK_CMD_DEVICE_GET_INFO)
				fail_msg("unexpected reply id %#x cmd %u (message %u)", h.id,
					 h.cmd, st->msgs);
			*sync_err = (h.flags & VFK_F_ERROR) ? (int)h.error : 0;
			return 0;
		}
		if (h.id != exp[next].id || h.cmd != exp[next].cmd)
			fail_msg("reply id %#x cmd %u, expected id %#x cmd %u (message %u)",
				 h.id, h.cmd, exp[next].id, exp[next].cmd, st->msgs);
		next++;
		st->replies++;
	}
}

/* End a connection with something the stream cannot survive. */
static void framing_attack(int fd, struct flood_stats *st)
{
	uint8_t m[64];
	struct vfk_device_info_wire di = { .argsz = 16 };
	size_t len = hx_build(m, hx_id(), VFK_CMD_DEVICE_GET_INFO, 0, &di, sizeof(di));
	int efd;

	st->attacks++;
	switch (rnd(4)) {
	case 0: /* unframeable size */
		m[4] = (uint8_t)rnd(16);
		m[5] = m[6] = m[7] = 0;
		raw_send_bytes(fd, m, 16, NULL, 0);
		break;
	case 1: /* half a message, then gone */
		raw_send_bytes(fd, m, 1 + rnd((uint32_t)len - 1), NULL, 0);
		break;
	case 2: /* an fd in the middle of a message */
		efd = hx_eventfd();
		raw_send_bytes(fd, m, 20, NULL, 0);
		usleep(2000);
		raw_send_bytes(fd, m + 20, len - 20, &efd, 1);
		close(efd);
		break;
	default: /* a huge size, then gone */
		m[4] = m[5] = m[6] = 0xff;
		m[7] = 0x7f;
		raw_send_bytes(fd, m, len, NULL, 0);
		break;
	}
}

static void test_flood(void **state)
{
	static uint8_t m[8192];
	struct flood_stats st;
	const char *seed_env = getenv("HOSTILE_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x686f7374696c65ull;

	(void)state;
	memset(&st, 0, sizeof(st));
	rng_state = seed;
	print_message("# flood seed %#" PRIx64 "\n", seed);
	while (st.msgs < FLOOD_MSGS) {
		/* A few connections begin without VERSION. */
		bool negotiated = !chance(5);
		int fd = negotiated ? hx_session(&S) : hx_connect(&S);
		unsigned n_conn = 1 + rnd(600);
		bool dropped = false;

		st.conns++;
		if (negotiated && chance(70))
			hx_enable(fd);
		while (n_conn && st.msgs < FLOOD_MSGS && !dropped) {
			unsigned batch = 1 + rnd(8);
			bool may_drop = false;
			uint16_t sync_id;
			int sync_err = 0;
			struct expect exp[8];
			unsigned nexp = 0;
			struct vfk_device_info_wire di = { .argsz = 16 };

			for (unsigned i = 0; i < batch && n_conn && st.msgs < FLOOD_MSGS;
			     i++, n_conn--) {
				int fds[8];
				unsigned nfds;
				uint16_t id = hx_id(), cmd;
				bool wants;
				size_t len = gen_msg(m, id, negotiated, &nfds, &may_drop, &cmd,
						     &wants);
				int rc;

				if (wants)
					exp[nexp++] = (struct expect){ id, cmd };

				make_fds(fds, nfds);
				rc = raw_send_bytes(fd, m, len, fds, nfds);
				for (unsigned k = 0; k < nfds; k++)
					close(fds[k]);
				st.msgs++;
				if (rc) {
					/* The server may have dropped us
					 * already (a bad VERSION). */
					assert_true(may_drop);
					break;
				}
			}
			sync_id = hx_id();
			if (hx_send_hdr(fd, sync_id, VFK_CMD_DEVICE_GET_INFO, 32, 0, 0, &di,
					sizeof(di), NULL, 0) ||
			    drain(fd, sync_id, exp, nexp, &sync_err, &st)) {
				if (!may_drop)
					fail_msg("the server dropped a client after well framed "
						 "messages (message %u)", st.msgs);
				st.drops++;
				dropped = true;
				break;
			}
			if (sync_err) {
				/* Only an unnegotiated connection fails it. */
				assert_int_equal(sync_err, EINVAL);
				assert_int_equal(raw_negotiate(fd), 0);
			}
			negotiated = true;
		}
		if (!dropped && chance(10))
			framing_attack(fd, &st);
		hx_close(fd);
		/* Every connection, however it ended, leaves nothing. */
		hs_wait_resources(&S, 0);
	}
	print_message("# %u messages, %u connections, %u replies, %u error replies, "
		      "%u DMA requests from the server, %u drops, %u framing attacks\n",
		      st.msgs, st.conns, st.replies, st.errors, st.server_reqs, st.drops,
		      st.attacks);
	for (unsigned e = 1; e < 256; e++)
		if (st.err_count[e])
			print_message("#   errno %u (%s): %u\n", e, strerror((int)e),
				      st.err_count[e]);
	/* The flood reached the handlers, not only the header check. */
	assert_true(st.replies > FLOOD_MSGS / 2);
	assert_true(st.errors < st.replies);
	hs_check_fresh(&S);
}

/* ---- main ---- */

int main(void)
{
	static const struct hx_test tests[] = {
		HX_TEST(test_flood),
	};

	return hx_main("hostile-flood", tests, sizeof(tests) / sizeof(tests[0]), NULL);
}
