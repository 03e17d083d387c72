/* SPDX-License-Identifier: MIT */
/*
 * Round trips of the size of a 4-byte REGION_READ: the raw floors and the
 * two ways of asking a vfiokit server.
 *
 * Floor A is the cheapest request/reply two processes can do over an
 * AF_UNIX stream socket: blocking write() and read() on both sides, two
 * system calls each, no protocol.  The two variants beside it add exactly
 * one system call, on one side each (epoll_wait before a non-blocking
 * recvmsg in the server, poll before the read in the client), which is the
 * structure of the vfiokit server and client: with them the cost of a
 * system call is measured in the same run, and what the library adds on
 * top of its system calls shows up as the difference.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "bench.h"
#include "dma_test.h"

const char *const rtt_key[RTT_KINDS] = {
	[RTT_FLOOR] = "floor_a",
	[RTT_FLOOR_SEPOLL] = "floor_a_server_epoll",
	[RTT_FLOOR_CPOLL] = "floor_a_client_poll",
	[RTT_RAW] = "region_read_raw_client",
	[RTT_LIB] = "region_read_vfk_region_read",
};

const char *const rtt_label[RTT_KINDS] = {
	[RTT_FLOOR] = "floor A: raw AF_UNIX, blocking write/read (2+2)",
	[RTT_FLOOR_SEPOLL] = "floor A, server epoll_wait+recvmsg+sendmsg (2+3)",
	[RTT_FLOOR_CPOLL] = "floor A, client write+poll+read (3+2)",
	[RTT_RAW] = "REGION_READ 4 B, raw socket client -> vfiokit",
	[RTT_LIB] = "REGION_READ 4 B, vfk_region_read -> vfiokit",
};

int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_full(int fd, void *buf, size_t len)
{
	uint8_t *b = buf;

	while (len) {
		ssize_t n = read(fd, b, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- floor servers (run in a child) ---- */

int floor_serve(int fd)
{
	uint8_t req[RR_REQ_SIZE], rep[RR_REP_SIZE];

	memset(rep, 0x5a, sizeof(rep));
	for (;;) {
		int rc = read_full(fd, req, sizeof(req));

		if (rc)
			return rc == -EPIPE ? 0 : rc;
		/* echo the first bytes, as a reply echoes the header */
		memcpy(rep, req, 16);
		rc = write_full(fd, rep, sizeof(rep));
		if (rc)
			return rc == -EPIPE ? 0 : rc;
	}
}

/* The vfiokit server's system calls without its logic: wait in epoll,
 * take what is there with a non-blocking recvmsg, answer each whole
 * request with a sendmsg. */
int floor_serve_epoll(int fd)
{
	uint8_t in[4096], rep[RR_REP_SIZE];
	size_t have = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	memset(rep, 0x5a, sizeof(rep));
	for (;;) {
		struct iovec iov = { in + have, sizeof(in) - have };
		union {
			struct cmsghdr align;
			uint8_t buf[CMSG_SPACE(64 * sizeof(int))];
		} cbuf;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf.buf,
				     .msg_controllen = sizeof(cbuf.buf) };
		size_t at = 0;
		ssize_t n;

		if (epoll_wait(ep, &ev, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		have += (size_t)n;
		while (have - at >= RR_REQ_SIZE) {
			struct iovec o = { rep, sizeof(rep) };
			struct msghdr om = { .msg_iov = &o, .msg_iovlen = 1 };

			memcpy(rep, in + at, 16);
			if (sendmsg(fd, &om, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(rep))
				return -EIO;
			at += RR_REQ_SIZE;
		}
		memmove(in, in + at, have - at);
		have -= at;
	}
	close(ep);
	return 0;
}

/* ---- clients: one round trip each ---- */

static void make_req(struct rtt_ctx *c, uint8_t *req)
{
	struct vfk_hdr h = { .id = c->id++, .cmd = VFK_CMD_REGION_READ,
			     .size = RR_REQ_SIZE };
	struct vfk_region_rw_wire w = { .offset = DMA_TEST_REG_ID, .region = 0,
					.count = 4 };

	vfk_hdr_encode(req, &h);
	memcpy(req + 16, &w, sizeof(w));
}

static int rt_floor(struct rtt_ctx *c)
{
	uint8_t req[RR_REQ_SIZE], rep[RR_REP_SIZE];
	int rc;

	make_req(c, req);
	rc = write_full(c->fd, req, sizeof(req));
	if (!rc)
		rc = read_full(c->fd, rep, sizeof(rep));
	return rc;
}

static int rt_floor_poll(struct rtt_ctx *c)
{
	uint8_t req[RR_REQ_SIZE], rep[RR_REP_SIZE];
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	int rc;

	make_req(c, req);
	rc = write_full(c->fd, req, sizeof(req));
	if (rc)
		return rc;
	if (poll(&p, 1, 5000) != 1)
		return -ETIMEDOUT;
	return read_full(c->fd, rep, sizeof(rep));
}

/* The same bytes as rt_floor, to a real server: the reply is checked. */
static int rt_raw(struct rtt_ctx *c)
{
	uint8_t req[RR_REQ_SIZE], rep[RR_REP_SIZE];
	uint32_t v, size, flags;
	uint16_t id = c->id;
	int rc;

	make_req(c, req);
	rc = write_full(c->fd, req, sizeof(req));
	if (!rc)
		rc = read_full(c->fd, rep, sizeof(rep));
	if (rc)
		return rc;
	memcpy(&size, rep + 4, 4);
	memcpy(&flags, rep + 8, 4);
	memcpy(&v, rep + 32, 4);
	if (memcmp(rep, &id, 2) || size != RR_REP_SIZE || flags != VFK_F_TYPE_REPLY ||
	    v != DMA_TEST_MAGIC)
		c->bad++;
	return 0;
}

static int rt_lib(struct rtt_ctx *c)
{
	uint32_t v = 0;
	int rc = vfk_region_read(c->dev, 0, DMA_TEST_REG_ID, &v, 4);

	if (!rc && v != DMA_TEST_MAGIC)
		c->bad++;
	return rc;
}

rtt_fn rtt_client_fn(enum rtt_kind k)
{
	switch (k) {
	case RTT_FLOOR:
	case RTT_FLOOR_SEPOLL:
		return rt_floor;
	case RTT_FLOOR_CPOLL:
		return rt_floor_poll;
	case RTT_RAW:
		return rt_raw;
	case RTT_LIB:
		return rt_lib;
	default:
		return NULL;
	}
}

int rtt_measure(rtt_fn fn, struct rtt_ctx *c, unsigned n, uint64_t *samples)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		int rc = fn(c);

		if (rc)
			return rc;
		samples[i] = now_ns() - t0;
	}
	return 0;
}

/* ---- a raw client's session set-up ---- */

static int raw_call(int fd, uint16_t id, uint16_t cmd, const void *p, size_t len,
		    void *rep, size_t cap, size_t *got)
{
	uint8_t hb[16];
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = (uint32_t)(16 + len) };
	int rc;

	vfk_hdr_encode(hb, &h);
	if ((rc = write_full(fd, hb, 16)) || (len && (rc = write_full(fd, p, len))))
		return rc;
	if ((rc = read_full(fd, hb, 16)))
		return rc;
	if ((rc = vfk_hdr_decode(hb, 16, 16 + (uint32_t)cap, &h)))
		return rc;
	if (!vfk_hdr_is_reply(&h) || h.id != id || h.cmd != cmd)
		return -EPROTO;
	if ((rc = read_full(fd, rep, h.size - 16)))
		return rc;
	if (h.flags & VFK_F_ERROR)
		return -(int)h.error;
	*got = h.size - 16;
	return 0;
}

int raw_setup(int fd)
{
	struct vfk_version v = { .major = VFK_PROTO_MAJOR, .minor = VFK_PROTO_MINOR };
	uint8_t buf[512], rep[512];
	struct {
		struct vfk_region_rw_wire w;
		uint16_t cmd;
	} __attribute__((packed)) wr;
	size_t got;
	int n, rc;

	vfk_version_caps_default(&v.caps);
	v.caps.present = VFK_CAP_MAX_MSG_FDS | VFK_CAP_MAX_DATA_XFER |
			 VFK_CAP_MAX_DMA_MAPS;
	v.caps.max_msg_fds = 16;
	v.caps.max_data_xfer_size = 1 << 20;
	v.caps.max_dma_maps = 65535;
	n = vfk_version_encode(buf, sizeof(buf), &v);
	if (n < 0)
		return n;
	rc = raw_call(fd, 1, VFK_CMD_VERSION, buf, (size_t)n, rep, sizeof(rep), &got);
	if (rc)
		return rc;
	/* Memory, I/O and bus master on, as a driver would. */
	wr.w = (struct vfk_region_rw_wire){ .offset = PCI_COMMAND, .region = VFK_PCI_CONFIG,
					    .count = 2 };
	wr.cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER;
	return raw_call(fd, 2, VFK_CMD_REGION_WRITE, &wr, sizeof(wr), rep, sizeof(rep),
			&got);
}
