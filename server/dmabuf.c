/* SPDX-License-Identifier: MIT */
/*
 * Streaming DMA: the mask, the bounce pool, and the sync points.
 *
 * The pool is one anonymous mapping carved into pages; a bounce buffer is a
 * run of free pages (first fit).  It stands for swiotlb's low memory: what
 * a device with a narrow mask can reach.  Copies between the pool and the
 * client go through vfk_dma_read/write, so windows without fd work too.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define POOL_PAGE 4096u

int vfk_pool_init(struct vfk_dev *dev)
{
	size_t pages = (dev->pool_size + POOL_PAGE - 1) / POOL_PAGE;

	if (!pages)
		return 0;
	dev->pool = mmap(NULL, pages * POOL_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dev->pool == MAP_FAILED) {
		dev->pool = NULL;
		return -ENOMEM;
	}
	dev->pool_used = calloc(pages, 1);
	if (!dev->pool_used) {
		munmap(dev->pool, pages * POOL_PAGE);
		dev->pool = NULL;
		return -ENOMEM;
	}
	dev->pool_size = pages * POOL_PAGE;
	return 0;
}

void vfk_pool_fini(struct vfk_dev *dev)
{
	if (dev->pool)
		munmap(dev->pool, dev->pool_size);
	free(dev->pool_used);
	dev->pool = NULL;
	dev->pool_used = NULL;
}

int vfk_dev_set_dma_mask(struct vfk_dev *dev, unsigned bits)
{
	if (bits < 32 || bits > 64)
		return -EINVAL;
	dev->dma_mask_bits = bits;
	dev->dma_limit = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
	return 0;
}

int vfk_dev_set_bounce_pool(struct vfk_dev *dev, size_t bytes)
{
	if (dev->realized)
		return -EBUSY;
	if (bytes > (1ull << 32))
		return -EINVAL;
	dev->pool_size = bytes;
	return 0;
}

int vfk_dev_set_dma_coherency(struct vfk_dev *dev,
			      const struct vfk_dma_coherency_ops *ops, void *user)
{
	if (ops && ops->version < 1)
		return -EINVAL;
	dev->coh = ops;
	dev->coh_user = user;
	return 0;
}

static int pool_alloc(struct vfk_dev *dev, size_t len, uint32_t *slot)
{
	size_t pages = (len + POOL_PAGE - 1) / POOL_PAGE;
	size_t total = dev->pool_size / POOL_PAGE, run = 0;

	pthread_mutex_lock(&dev->pool_lock);
	for (size_t i = 0; i < total; i++) {
		run = dev->pool_used[i] ? 0 : run + 1;
		if (run == pages) {
			size_t first = i + 1 - pages;

			memset(dev->pool_used + first, 1, pages);
			pthread_mutex_unlock(&dev->pool_lock);
			*slot = (uint32_t)first;
			return 0;
		}
	}
	pthread_mutex_unlock(&dev->pool_lock);
	return -ENOMEM; /* like a full swiotlb */
}

static void pool_free(struct vfk_dev *dev, uint32_t slot, size_t len)
{
	size_t pages = (len + POOL_PAGE - 1) / POOL_PAGE;

	pthread_mutex_lock(&dev->pool_lock);
	memset(dev->pool_used + slot, 0, pages);
	pthread_mutex_unlock(&dev->pool_lock);
}

static bool dir_valid(enum vfk_dma_dir dir)
{
	return dir == VFK_DMA_TO_DEVICE || dir == VFK_DMA_FROM_DEVICE ||
	       dir == VFK_DMA_BIDIRECTIONAL;
}

static uint32_t dir_prot(enum vfk_dma_dir dir)
{
	return (dir & VFK_DMA_TO_DEVICE ? VFK_PROT_READ : 0) |
	       (dir & VFK_DMA_FROM_DEVICE ? VFK_PROT_WRITE : 0);
}

/* vfk_dma_translate's checks over the whole range, however many pieces
 * it takes. */
static int dma_check(struct vfk_dev *dev, uint64_t iova, size_t len, uint32_t prot)
{
	struct vfk_sg sg[16];

	while (len) {
		int n = vfk_dma_translate_prefix(dev, iova, len, prot, sg, 16);
		uint64_t done;

		if (n <= 0)
			return n;
		done = sg[n - 1].iova + sg[n - 1].len - iova;
		iova += done;
		len -= done;
	}
	return 0;
}

int vfk_dma_map_buf(struct vfk_dev *dev, uint64_t iova, size_t len,
		    enum vfk_dma_dir dir, struct vfk_dma_buf *buf)
{
	struct vfk_sg sg[2];
	uint32_t slot = 0;
	uint8_t *host;
	bool bounce;
	int n, rc;

	if (!len || !dir_valid(dir) || iova + len - 1 < iova)
		return -EINVAL;
	/* The access rules come first: a device never gets a buffer for
	 * memory the client did not map for it. */
	n = vfk_dma_translate(dev, iova, len, dir_prot(dir), sg, 2);
	if (n == -ENOSPC)
		n = dma_check(dev, iova, len, dir_prot(dir));
	if (n < 0)
		return n;
	/* Past the device's mask translation already failed (-EFAULT): no
	 * hardware can reach there, and bouncing for a narrow mask is the
	 * driver's job (swiotlb), on the client's side. */
	bounce = !(n == 1 && sg[0].host);
	if (!bounce) {
		host = sg[0].host; /* the engine works on client memory */
	} else {
		if (!dev->pool)
			return -ENOMEM;
		rc = pool_alloc(dev, len, &slot);
		if (rc)
			return rc;
		host = dev->pool + (size_t)slot * POOL_PAGE;
		if (dir & VFK_DMA_TO_DEVICE) {
			rc = vfk_dma_read(dev, iova, host, len);
			if (rc) {
				pool_free(dev, slot, len);
				return rc;
			}
		} else if (vfk_dma_read(dev, iova, host, len) != 0) {
			/* Copied back whole at the sync points, so bytes the
			 * engine does not write must be the client's own (as
			 * swiotlb does since CVE-2022-0854), or, where the
			 * client gave no read access, zeros: never the pool's
			 * earlier contents. */
			memset(host, 0, len);
		}
	}
	memset(buf, 0, sizeof(*buf));
	buf->gen = atomic_load(&dev->dma.gen);
	buf->host = host;
	buf->iova = iova;
	buf->len = len;
	buf->dir = dir;
	buf->bounced = bounce;
	buf->slot = slot;
	return 0;
}

int vfk_dma_buf_check(struct vfk_dev *dev, struct vfk_dma_buf *buf)
{
	struct vfk_sg sg;
	unsigned long gen = atomic_load(&dev->dma.gen);

	if (buf->bounced || buf->gen == gen)
		return 0; /* the pool is ours; no window went since the map */
	if (vfk_dma_translate(dev, buf->iova, buf->len, dir_prot(buf->dir), &sg, 1) != 1 ||
	    sg.host != buf->host)
		return -EFAULT;
	buf->gen = gen;
	return 0;
}

int vfk_dma_sync_for_device(struct vfk_dev *dev, struct vfk_dma_buf *buf)
{
	int rc = 0;

	if (buf->bounced && (buf->dir & VFK_DMA_TO_DEVICE))
		rc = vfk_dma_read(dev, buf->iova, buf->host, buf->len);
	if (dev->coh && dev->coh->writeback)
		dev->coh->writeback(dev->coh_user, buf->host, buf->len);
	/* The engine must see every earlier CPU store (mfence on x86). */
	atomic_thread_fence(memory_order_seq_cst);
	return rc;
}

int vfk_dma_sync_for_cpu(struct vfk_dev *dev, struct vfk_dma_buf *buf)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (dev->coh && dev->coh->invalidate)
		dev->coh->invalidate(dev->coh_user, buf->host, buf->len);
	if (buf->bounced && (buf->dir & VFK_DMA_FROM_DEVICE))
		return vfk_dma_write(dev, buf->iova, buf->host, buf->len);
	return 0;
}

void vfk_dma_release_buf(struct vfk_dev *dev, struct vfk_dma_buf *buf)
{
	if (buf->bounced)
		pool_free(dev, buf->slot, buf->len);
	buf->host = NULL;
	buf->bounced = false;
}

int vfk_dma_unmap_buf(struct vfk_dev *dev, struct vfk_dma_buf *buf)
{
	int rc = 0;

	if (buf->dir & VFK_DMA_FROM_DEVICE)
		rc = vfk_dma_sync_for_cpu(dev, buf);
	vfk_dma_release_buf(dev, buf);
	return rc;
}
