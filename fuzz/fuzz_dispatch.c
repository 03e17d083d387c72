/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the server's dispatcher, in process and fast: no
 * socket, no thread, no waiting.  One dma-test device and one server live
 * across inputs; each input is a client whose messages reach the server
 * through an in-memory channel (an implementation of the channel ops, so
 * the server's code above the channel is the real one, dispatch and epoll
 * included).  The client leaves when its messages run out, which resets the
 * device (the departure rule), so inputs do not depend on each other.
 *
 * Input (fuzz_format.h, "fuzz_dispatch"): records of ctl(1) len(2) bytes;
 * each record is one message, header included, with the fds `ctl` asks
 * for.  A VERSION exchange comes first unless DF_RAW_START is set in the
 * first record.  The server's DMA requests get the next records as
 * replies; with none left they fail at once (the channel's wait returns at
 * once), so no input waits.
 *
 * Checked after each input: the client was dropped, no DMA window is
 * left, the server let go of every fd the client gave it (by inode), and
 * every message the server sent had a decodable header.  A violation
 * aborts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../channel/channel.h"
#include "../server/internal.h"
#include "dma_test.h"
#include "fuzz_format.h"

#define FUZZ_NAME "fuzz_dispatch"
#include "fuzz_check.h"

struct memch {
	struct vfk_channel ch;
	int efd;                /* always readable: the end shows as -EPIPE */
	const uint8_t *p;       /* the input's records */
	size_t left;
	bool version_sent;
	uint8_t hdr[16];
	uint8_t version[128];
	size_t version_len;
};

/* Every fd this input handed the server, to check that the server let go
 * of each (by inode: the number may be reused by then). */
static struct given {
	int fd;
	dev_t dev;
	ino_t ino;
} given[4096];
static size_t ngiven;

static void note_given(int fd)
{
	struct stat st;

	if (ngiven < sizeof(given) / sizeof(given[0]) && fstat(fd, &st) == 0)
		given[ngiven++] = (struct given){ fd, st.st_dev, st.st_ino };
}

static int fd_for(unsigned kind, int *fds)
{
	int n = 0;

	switch (kind & DF_FD_MASK) {
	case 1:
		fds[n++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		break;
	case 2:
	case 3: {
		int m = memfd_create("fd", MFD_CLOEXEC);

		if (m >= 0 && ftruncate(m, DF_MEMFD_SIZE) == 0) {
			if ((kind & DF_FD_MASK) == 3) {
				char p[64];

				snprintf(p, sizeof(p), "/proc/self/fd/%d", m);
				fds[n++] = open(p, O_RDONLY | O_CLOEXEC);
				close(m);
			} else {
				fds[n++] = m;
			}
		} else if (m >= 0) {
			close(m);
		}
		break;
	}
	case 4:
		fds[n++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		fds[n++] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		break;
	case 5: {
		int p[2];

		if (pipe2(p, O_CLOEXEC) == 0) {
			fds[n++] = p[0];
			close(p[1]);
		}
		break;
	}
	}
	for (int i = 0; i < n; i++) {
		if (fds[i] < 0)
			return i;
		note_given(fds[i]);
	}
	return n;
}

static struct memch *mc(struct vfk_channel *ch)
{
	return (struct memch *)ch;
}

static int mc_recv(struct vfk_channel *ch, struct vfk_msg *msg)
{
	struct memch *m = mc(ch);
	const uint8_t *b;
	size_t len;
	uint8_t ctl = 0;

	memset(msg, 0, offsetof(struct vfk_msg, fds));
	if (!m->version_sent) {
		m->version_sent = true;
		b = m->version;
		len = m->version_len;
	} else {
		if (m->left < DF_HDR)
			return -EPIPE; /* the client is gone */
		ctl = m->p[0];
		len = (size_t)m->p[1] | (size_t)m->p[2] << 8;
		m->p += DF_HDR;
		m->left -= DF_HDR;
		if (len > m->left)
			len = m->left;
		b = m->p;
		m->p += len;
		m->left -= len;
	}
	memset(m->hdr, 0, sizeof(m->hdr));
	memcpy(m->hdr, b, len < 16 ? len : 16);
	if (!(ctl & DF_RAW_SIZE)) {
		uint32_t size = (uint32_t)(len < 16 ? 16 : len);

		memcpy(m->hdr + 4, &size, 4);
	}
	msg->hdr_err = vfk_hdr_decode(m->hdr, sizeof(m->hdr), ch->max_msg_size, &msg->hdr);
	msg->payload = len > 16 ? b + 16 : b;
	msg->len = len > 16 ? (uint32_t)(len - 16) : 0;
	if (msg->len + 16u > ch->max_msg_size) {
		msg->oversized = true;
		msg->len = 0;
	}
	msg->nfds = (unsigned)fd_for(ctl, msg->fds);
	return 1;
}

static bool mc_has_buffered(struct vfk_channel *ch)
{
	struct memch *m = mc(ch);

	return !m->version_sent || m->left >= DF_HDR;
}

static int mc_send(struct vfk_channel *ch, struct vfk_hdr *hdr, const struct iovec *iov,
		   int iovcnt, const int *fds, unsigned nfds)
{
	size_t n = 16;
	uint8_t b[16];

	(void)fds;
	(void)nfds;
	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	CHECK(n <= 16 + (size_t)VFK_LIMIT_DATA_XFER + 64);
	hdr->size = (uint32_t)n;
	vfk_hdr_encode(b, hdr);
	/* What the server sends must frame: its own decoder agrees. */
	{
		struct vfk_hdr back;

		CHECK(vfk_hdr_decode(b, 16, UINT32_MAX, &back) == 0);
		CHECK(!(back.flags & VFK_F_ERROR) || back.error != 0);
	}
	ch->msgs_out++;
	return 0;
}

static int mc_flush(struct vfk_channel *ch, int timeout_ms)
{
	(void)ch;
	(void)timeout_ms;
	return 0;
}

static bool mc_tx_pending(struct vfk_channel *ch)
{
	(void)ch;
	return false;
}

static int mc_wait(struct vfk_channel *ch, int timeout_ms)
{
	(void)timeout_ms;
	return mc_has_buffered(ch) ? 0 : -ETIMEDOUT;
}

static int mc_fd(struct vfk_channel *ch)
{
	return mc(ch)->efd;
}

static void mc_destroy(struct vfk_channel *ch)
{
	close(mc(ch)->efd);
	free(ch);
}

static const struct vfk_channel_ops memch_ops = {
	.version = 1,
	.name = "memory",
	.recv = mc_recv,
	.has_buffered = mc_has_buffered,
	.send = mc_send,
	.flush = mc_flush,
	.tx_pending = mc_tx_pending,
	.wait = mc_wait,
	.fd = mc_fd,
	.destroy = mc_destroy,
};

static struct vfk_dev *dev;
static struct vfk_server *srv;

static void setup(void)
{
	struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION, .reply_timeout_ms = 1 };

	CHECK(dma_test_create(NULL, &dev) == 0);
	CHECK(vfk_server_create(dev, &so, &srv) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memch *m;
	struct vfk_version v = { .major = 0, .minor = 0 };
	int n;

	if (!srv)
		setup();
	m = calloc(1, sizeof(*m));
	CHECK(m);
	m->ch.ops = &memch_ops;
	m->ch.max_msg_size = VFK_HDR_SIZE + 16 + VFK_DEFAULT_MAX_DATA_XFER;
	m->ch.max_fds = VFK_CHANNEL_MAX_FDS;
	m->efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(m->efd >= 0);
	m->p = data;
	m->left = size;
	/* The VERSION the client opens with, unless the input does it. */
	vfk_version_caps_default(&v.caps);
	v.caps.present = VFK_CAP_MAX_MSG_FDS | VFK_CAP_MAX_DATA_XFER | VFK_CAP_MAX_DMA_MAPS;
	v.caps.max_msg_fds = 16;
	v.caps.max_data_xfer_size = 1 << 20;
	v.caps.max_dma_maps = 64;
	n = vfk_version_encode(m->version + 16, sizeof(m->version) - 16, &v);
	CHECK(n > 0);
	{
		struct vfk_hdr h = { .id = 0, .cmd = VFK_CMD_VERSION, .size = (uint32_t)(16 + n),
				     .flags = VFK_F_TYPE_COMMAND };

		vfk_hdr_encode(m->version, &h);
	}
	m->version_len = 16 + (size_t)n;
	if (size >= DF_HDR && (data[0] & DF_RAW_START))
		m->version_sent = true;
	if (vfk_server_attach_channel(srv, &m->ch)) {
		mc_destroy(&m->ch);
		return 0;
	}
	for (unsigned guard = 0; vfk_server_attached(srv) && guard < 100000; guard++)
		CHECK(vfk_server_dispatch(srv) >= 0);
	CHECK(!vfk_server_attached(srv));
	/* The departure rules: the client's memory and fds are gone. */
	CHECK(vfk_dma_count(dev) == 0);
	/* Each fd the client gave is closed (the departure rule). */
	for (size_t i = 0; i < ngiven; i++) {
		struct stat st;

		CHECK(fstat(given[i].fd, &st) != 0 || st.st_ino != given[i].ino ||
		      st.st_dev != given[i].dev);
	}
	ngiven = 0;
	return 0;
}
