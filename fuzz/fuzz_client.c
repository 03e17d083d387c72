/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the client library's handling of a server: what it
 * replies and what it asks for itself (DMA_READ/DMA_WRITE).
 *
 * A scripted server on a thread answers each request of a fixed client
 * session with the next record of the input (fuzz_format.h), which lets
 * the fuzzer control every reply while the ids and commands still match
 * the requests, as a real server's would; CF_RAW records send arbitrary
 * bytes instead.  The session: open (VERSION), device info, every
 * region's and IRQ's info, a config read, a BAR0 read and write, a DMA
 * window without fd (so that server requests are served from it), a
 * dispatch, unmap, reset and close.
 *
 * Checked for every input: what the library hands out is sound (a region
 * whose range wraps, an area outside its region, an IRQ count past the
 * limit is a bug), the session ends without a hang (the client's timeout
 * is short; the server closes when the input ends), and closing the device
 * leaves no fd behind.  A violation aborts.  Sanitizers catch the rest.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_format.h"
#include "vfiokit/vfiokit.h"

#define FUZZ_NAME "fuzz_client"
#include "fuzz_check.h"

struct script {
	int fd;
	const uint8_t *p;
	size_t left;
};

/* Next record, or false at the end of the input. */
static bool next_record(struct script *s, uint8_t *ctl, const uint8_t **b, size_t *len)
{
	if (s->left < CF_HDR)
		return false;
	*ctl = s->p[0];
	*len = (size_t)s->p[1] | (size_t)s->p[2] << 8;
	s->p += CF_HDR;
	s->left -= CF_HDR;
	if (*len > s->left)
		*len = s->left;
	*b = s->p;
	s->p += *len;
	s->left -= *len;
	return true;
}

static void send_msg(int fd, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t err,
		     const uint8_t *b, size_t len, bool with_fd)
{
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = (uint32_t)(sizeof(h) + len),
			     .flags = flags, .error = err };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)b, len } };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	int mfd = -1;

	if (with_fd) {
		struct cmsghdr *c;

		mfd = memfd_create("fuzz", MFD_CLOEXEC);
		if (mfd >= 0 && ftruncate(mfd, CF_MEMFD_SIZE) == 0) {
			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &mfd, sizeof(int));
		}
	}
	(void)!sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (mfd >= 0)
		close(mfd);
}

static void send_raw(int fd, const uint8_t *b, size_t len)
{
	(void)!send(fd, b, len, MSG_NOSIGNAL);
}

/* Read one whole message from the client (its header and payload). */
static bool recv_msg(int fd, struct vfk_hdr *h)
{
	static uint8_t skip[1 << 16];
	size_t got = 0;

	while (got < sizeof(*h)) {
		ssize_t n = recv(fd, (uint8_t *)h + got, sizeof(*h) - got, 0);

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	for (size_t left = h->size > sizeof(*h) ? h->size - sizeof(*h) : 0; left;) {
		ssize_t n = recv(fd, skip, left < sizeof(skip) ? left : sizeof(skip), 0);

		if (n <= 0)
			return false;
		left -= (size_t)n;
	}
	return true;
}

static void *server_main(void *arg)
{
	struct script *s = arg;
	uint16_t next_id = 0x8000;
	struct vfk_hdr h;

	while (recv_msg(s->fd, &h)) {
		const uint8_t *b;
		uint8_t ctl;
		size_t len;

		if (h.flags & VFK_F_TYPE_REPLY)
			continue; /* the answer to one of our requests */
		if (h.flags & VFK_F_NO_REPLY)
			continue;
		/* Server requests and raw messages come in addition: records
		 * go out until one answers the request, so that the client
		 * never waits out its timeout for an answer that is not
		 * coming. */
		for (;;) {
			if (!next_record(s, &ctl, &b, &len) || (ctl & CF_CLOSE))
				goto out;
			if (ctl & CF_SERVER_REQ)
				send_msg(s->fd, next_id++,
					 (ctl & CF_WRITE) ? VFK_CMD_DMA_WRITE : VFK_CMD_DMA_READ,
					 VFK_F_TYPE_COMMAND, 0, b, len, false);
			else if (ctl & CF_RAW)
				send_raw(s->fd, b, len);
			else
				break;
		}
		if (ctl & CF_ERROR)
			send_msg(s->fd, h.id, h.cmd, VFK_F_TYPE_REPLY | VFK_F_ERROR,
				 len ? b[0] : 0, NULL, 0, false);
		else
			send_msg(s->fd, h.id, h.cmd, VFK_F_TYPE_REPLY, 0, b, len, ctl & CF_FD);
	}
out:
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* What the library hands out must be sound, whatever the server said. */
static void check_region(const struct vfk_region_info *ri, uint32_t index)
{
	CHECK(ri->index == index);
	CHECK(!ri->size || ri->offset + ri->size - 1 >= ri->offset);
	CHECK(ri->mappable == (ri->nr_areas > 0));
	for (unsigned a = 0; a < ri->nr_areas; a++) {
		CHECK(ri->areas[a].size > 0);
		CHECK(ri->areas[a].offset <= ri->size);
		CHECK(ri->areas[a].size <= ri->size - ri->areas[a].offset);
	}
	CHECK(!ri->has_attrs || ri->backed_size <= ri->size);
}

/* The session; false if the open failed (the fd is then still ours). */
static bool session(int fd)
{
	struct vfk_client_opts o = { .version = VFK_CLIENT_OPTS_VERSION, .timeout_ms = 5 };
	static uint8_t mem[CF_DMA_SIZE];
	struct vfk_device *d;
	struct vfk_device_info di;
	uint8_t cfg[64];
	uint32_t v = 0x12345678;

	if (vfk_device_open_fd(fd, &o, &d))
		return false;
	if (vfk_device_get_info(d, &di) == 0) {
		for (uint32_t i = 0; i < di.num_regions && i < 16; i++) {
			struct vfk_region_info ri;

			if (vfk_region_get_info(d, i, &ri) == 0)
				check_region(&ri, i);
		}
		for (uint32_t i = 0; i < di.num_irqs && i < 8; i++) {
			struct vfk_irq_info ii;

			if (vfk_device_irq_info(d, i, &ii) == 0)
				CHECK(ii.count <= (i == 1 ? 32u : i == 2 ? 2048u : i < 5 ? 1u : 65536u));
		}
	}
	(void)vfk_device_config_read(d, 0, cfg, sizeof(cfg));
	(void)vfk_region_read(d, 0, 0, &v, 4);
	(void)vfk_region_write(d, 0, 4, &v, 4);
	if (vfk_device_dma_map(d, &(struct vfk_dma_mapping){
		    .iova = CF_DMA_IOVA, .size = CF_DMA_SIZE, .vaddr = mem, .fd = -1,
		    .prot = VFK_DMA_READ | VFK_DMA_WRITE }) == 0) {
		(void)vfk_device_dispatch(d);
		(void)vfk_device_dma_unmap(d, CF_DMA_IOVA, CF_DMA_SIZE);
	}
	(void)vfk_device_reset(d);
	vfk_device_close(d);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script s = { .p = data, .left = size };
	int sv[2], before = count_fds();
	pthread_t t;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	s.fd = sv[1];
	CHECK(pthread_create(&t, NULL, server_main, &s) == 0);
	/* A successful open takes the fd; a failed one leaves it ours. */
	if (!session(sv[0]))
		close(sv[0]);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(t, NULL);
	close(sv[1]);
	CHECK(count_fds() == before);
	return 0;
}
