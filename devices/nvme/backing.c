/* SPDX-License-Identifier: MIT */
/*
 * The namespace's storage: a file or a block device, or memory.
 *
 * A file is opened twice: with O_DIRECT where the file system allows it,
 * for requests whose buffers and offsets meet its alignment (what a guest's
 * block layer sends), and through the page cache for the rest, so that a
 * guest's odd-aligned buffer is served rather than refused.  Linux keeps
 * the two coherent: a direct write invalidates the cached range, a direct
 * read writes dirty cached pages back first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nvme_int.h"

static void dio_alignment(struct nvme_backing *bk)
{
	struct statx st;

	bk->mem_align = 512;
	bk->off_align = 512;
#ifdef STATX_DIOALIGN
	if (statx(bk->fd_direct, "", AT_EMPTY_PATH, STATX_DIOALIGN, &st) == 0 &&
	    (st.stx_mask & STATX_DIOALIGN) && st.stx_dio_offset_align) {
		bk->mem_align = st.stx_dio_mem_align;
		bk->off_align = st.stx_dio_offset_align;
		return;
	}
#else
	(void)st;
#endif
	if (bk->blockdev) {
		int lbs = 0;

		if (ioctl(bk->fd_direct, BLKSSZGET, &lbs) == 0 && lbs > 0)
			bk->mem_align = bk->off_align = (uint32_t)lbs;
		return;
	}
	/* Without STATX_DIOALIGN, the file system's block size is safe. */
	{
		struct stat s;

		if (fstat(bk->fd_direct, &s) == 0 && s.st_blksize > 512)
			bk->mem_align = bk->off_align = (uint32_t)s.st_blksize;
	}
}

int nvme_backing_open(struct nvme_backing *bk, const char *path, uint64_t ram_size)
{
	struct stat s;
	int rc;

	memset(bk, 0, sizeof(*bk));
	bk->fd_direct = bk->fd_buf = -1;
	if (!path) {
		uint64_t size = ram_size ? ram_size : NVME_DEFAULT_RAM_SIZE;

		size &= ~((1ull << NVME_LBA_SHIFT) - 1);
		if (size == 0)
			return -EINVAL;
		/* Untouched pages read as zeros and cost nothing. */
		bk->mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (bk->mem == MAP_FAILED) {
			bk->mem = NULL;
			return -errno;
		}
		bk->ram = true;
		bk->size = size;
		bk->dealloc_zeroes = true;
		return 0;
	}
	bk->fd_buf = open(path, O_RDWR | O_CLOEXEC);
	if (bk->fd_buf < 0)
		return -errno;
	if (fstat(bk->fd_buf, &s) < 0) {
		rc = -errno;
		goto fail;
	}
	if (S_ISBLK(s.st_mode)) {
		uint64_t sz = 0;

		if (ioctl(bk->fd_buf, BLKGETSIZE64, &sz) < 0) {
			rc = -errno;
			goto fail;
		}
		bk->blockdev = true;
		bk->size = sz;
	} else if (S_ISREG(s.st_mode)) {
		bk->size = (uint64_t)s.st_size;
	} else {
		rc = -EINVAL;
		goto fail;
	}
	bk->size &= ~((1ull << NVME_LBA_SHIFT) - 1);
	if (bk->size == 0) {
		rc = -EINVAL; /* a namespace needs at least one block */
		goto fail;
	}
	bk->fd_direct = open(path, O_RDWR | O_CLOEXEC | O_DIRECT);
	if (bk->fd_direct >= 0)
		dio_alignment(bk);
	/* A hole punched past the end of a file changes nothing and tells
	 * whether the file system can deallocate (then reads give zeros). */
	if (!bk->blockdev)
		bk->dealloc_zeroes = fallocate(bk->fd_buf, FALLOC_FL_PUNCH_HOLE |
					       FALLOC_FL_KEEP_SIZE,
					       (off_t)bk->size + 4096, 4096) == 0;
	return 0;
fail:
	close(bk->fd_buf);
	bk->fd_buf = -1;
	return rc;
}

void nvme_backing_close(struct nvme_backing *bk)
{
	if (bk->mem)
		munmap(bk->mem, bk->size);
	if (bk->fd_direct >= 0)
		close(bk->fd_direct);
	if (bk->fd_buf >= 0)
		close(bk->fd_buf);
	bk->mem = NULL;
	bk->fd_direct = bk->fd_buf = -1;
}

bool nvme_backing_direct_ok(const struct nvme_backing *bk, uint64_t off, uint64_t len,
			    const struct iovec *iov, unsigned niov)
{
	uint64_t om = bk->off_align - 1, mm = bk->mem_align - 1;

	if (bk->fd_direct < 0 || (off & om) || (len & om))
		return false;
	for (unsigned i = 0; i < niov; i++)
		if (((uintptr_t)iov[i].iov_base & mm) || (iov[i].iov_len & om))
			return false;
	return true;
}

int nvme_ram_copy(struct nvme_backing *bk, bool write, uint64_t off,
		  const struct iovec *iov, unsigned niov)
{
	uint8_t *p = bk->mem + off;

	for (unsigned i = 0; i < niov; i++) {
		/* Guarded: client memory the client may shrink under us. */
		int rc = write ? vfk_dma_memcpy(p, iov[i].iov_base, iov[i].iov_len)
			       : vfk_dma_memcpy(iov[i].iov_base, p, iov[i].iov_len);

		if (rc)
			return rc;
		p += iov[i].iov_len;
	}
	return 0;
}

int nvme_ram_zero(struct nvme_backing *bk, uint64_t off, uint64_t len)
{
	uint8_t *p = bk->mem + off;
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	/* Whole pages go back to the kernel (and read as zeros); the edges
	 * are cleared by hand. */
	if (e > a + 4096 * 16) {
		memset(p, 0, a - (uintptr_t)p);
		memset((void *)e, 0, (uintptr_t)p + len - e);
		if (madvise((void *)a, e - a, MADV_DONTNEED) == 0)
			return 0;
	}
	memset(p, 0, len);
	return 0;
}
