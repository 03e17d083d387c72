/* SPDX-License-Identifier: MIT */
/*
 * DMA_MAP rate.  Every window is a page of one memfd and every DMA_MAP
 * carries that fd, as QEMU's do (the kernel installs a new descriptor in
 * the server for each message).  The windows cycle over a few pages of the
 * file, so 65,535 windows cost no memory and the server maps the file once.
 * Consecutive windows are a page apart in IOVA space, so none is adjacent
 * to the next and none can be merged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

const struct map_layout map_layout = {
	.base = 0x100000000ull,
	.stride = 0x2000,
	.size = 0x1000,
	.file_pages = 16,
};

int dma_env_init(struct dma_env *e)
{
	e->mem_len = (size_t)map_layout.file_pages * map_layout.size;
	e->memfd = memfd_create("vfk-bench-ram", MFD_CLOEXEC);
	if (e->memfd < 0)
		return -errno;
	if (ftruncate(e->memfd, (off_t)e->mem_len) < 0)
		goto fail;
	e->mem = mmap(NULL, e->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, e->memfd, 0);
	if (e->mem == MAP_FAILED)
		goto fail;
	/* Allocate the pages now, so the server's reads never fault them in. */
	for (size_t i = 0; i < e->mem_len; i++)
		e->mem[i] = (uint8_t)(i * 7);
	return 0;
fail:
	close(e->memfd);
	return -errno;
}

void dma_env_fini(struct dma_env *e)
{
	munmap(e->mem, e->mem_len);
	close(e->memfd);
}

static uint64_t win_iova(unsigned i)
{
	return map_layout.base + (uint64_t)i * map_layout.stride;
}

static uint64_t win_off(unsigned i)
{
	return (uint64_t)(i % map_layout.file_pages) * map_layout.size;
}

int map_sync(struct vfk_device *dev, const struct dma_env *e, unsigned n,
	     uint64_t *samples, double *total_ns)
{
	uint64_t t0 = now_ns();

	for (unsigned i = 0; i < n; i++) {
		struct vfk_dma_mapping m = {
			.iova = win_iova(i), .size = map_layout.size,
			.vaddr = e->mem + win_off(i), .fd = e->memfd,
			.fd_offset = win_off(i), .prot = VFK_DMA_READ | VFK_DMA_WRITE,
		};
		uint64_t t = now_ns();
		int rc = vfk_device_dma_map(dev, &m);

		if (rc)
			return rc;
		samples[i] = now_ns() - t;
	}
	*total_ns = (double)(now_ns() - t0);
	return 0;
}

static int send_map(int fd, unsigned i, int memfd)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(int))];
	} cb;
	uint8_t hb[16];
	struct vfk_hdr h = { .id = (uint16_t)i, .cmd = VFK_CMD_DMA_MAP, .size = 48 };
	struct vfk_dma_map_wire w = { .argsz = sizeof(w),
				      .flags = VFK_DMA_READ | VFK_DMA_WRITE,
				      .offset = win_off(i), .addr = win_iova(i),
				      .size = map_layout.size };
	struct iovec iov[2] = { { hb, 16 }, { &w, sizeof(w) } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = cb.buf,
			     .msg_controllen = sizeof(cb.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	ssize_t k;

	vfk_hdr_encode(hb, &h);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &memfd, sizeof(int));
	do {
		k = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	return k == 48 ? 0 : -EIO;
}

int map_pipelined(int fd, const struct dma_env *e, unsigned n, unsigned window,
		  double *total_ns)
{
	uint8_t in[16 * 256];
	size_t have = 0;
	unsigned sent = 0, got = 0;
	uint64_t t0 = now_ns();

	while (got < n) {
		ssize_t k;
		size_t at = 0;

		while (sent < n && sent - got < window) {
			int rc = send_map(fd, sent, e->memfd);

			if (rc)
				return rc;
			sent++;
		}
		k = read(fd, in + have, sizeof(in) - have);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k ? -errno : -EPIPE;
		have += (size_t)k;
		/* Replies to DMA_MAP are bare headers. */
		while (have - at >= 16) {
			struct vfk_hdr h;

			if (vfk_hdr_decode(in + at, 16, 16, &h) || h.cmd != VFK_CMD_DMA_MAP ||
			    !vfk_hdr_is_reply(&h))
				return -EPROTO;
			if (h.flags & VFK_F_ERROR)
				return -(int)h.error;
			at += 16;
			got++;
		}
		memmove(in, in + at, have - at);
		have -= at;
	}
	*total_ns = (double)(now_ns() - t0);
	return 0;
}

int unmap_all_raw(int fd, double *ns)
{
	uint8_t msg[16 + sizeof(struct vfk_dma_unmap_wire)], rep[16 + 64];
	struct vfk_hdr h = { .id = 0xfff0, .cmd = VFK_CMD_DMA_UNMAP, .size = sizeof(msg) };
	struct vfk_dma_unmap_wire w = { .argsz = sizeof(w), .flags = VFK_DMA_UNMAP_ALL };
	struct vfk_hdr r;
	uint64_t t0 = now_ns();
	int rc;

	vfk_hdr_encode(msg, &h);
	memcpy(msg + 16, &w, sizeof(w));
	if ((rc = write_full(fd, msg, sizeof(msg))) || (rc = read_full(fd, rep, 16)))
		return rc;
	if ((rc = vfk_hdr_decode(rep, 16, sizeof(rep), &r)))
		return rc;
	if (r.size > 16 && (rc = read_full(fd, rep + 16, r.size - 16)))
		return rc;
	*ns = (double)(now_ns() - t0);
	if (r.cmd != VFK_CMD_DMA_UNMAP || (r.flags & VFK_F_ERROR))
		return r.error ? -(int)r.error : -EPROTO;
	return 0;
}
