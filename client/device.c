/* SPDX-License-Identifier: MIT */
/*
 * The generic device handle: argument checks, caching, region mappings and
 * the choice between a mapping and a message, on top of a transport.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

void vfk_client_log(struct vfk_device *d, enum vfk_log_level level,
		    const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!d->opts.log || level > d->opts.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	d->opts.log(d->opts.log_user, level, line);
}

int vfk_device_alloc(const struct vfk_transport_ops *ops,
		     const struct vfk_client_opts *opts, struct vfk_device **out)
{
	struct vfk_device *d;

	if (opts && opts->version < 1)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ops = ops;
	if (opts)
		d->opts = *opts;
	if (!d->opts.log_level)
		d->opts.log_level = VFK_LOG_INFO;
	if (d->opts.timeout_ms <= 0)
		d->opts.timeout_ms = 5000;
	if (!d->opts.max_data_xfer)
		d->opts.max_data_xfer = VFK_DEFAULT_MAX_DATA_XFER;
	if (d->opts.max_data_xfer > VFK_LIMIT_DATA_XFER)
		d->opts.max_data_xfer = VFK_LIMIT_DATA_XFER;
	if (!d->opts.max_msg_fds || d->opts.max_msg_fds > 64)
		d->opts.max_msg_fds = 16;
	for (unsigned i = 0; i < CLIENT_MAX_REGIONS; i++)
		d->regions[i].map_fd = -1;
	*out = d;
	return 0;
}

void vfk_device_free(struct vfk_device *d)
{
	free(d);
}

int vfk_device_open_fd(int fd, const struct vfk_client_opts *opts,
		       struct vfk_device **out)
{
	extern const struct vfk_transport_ops vfk_vfio_user_ops;
	struct vfk_device *d;
	int rc;

	if (fd < 0 || !out)
		return -EINVAL;
	rc = vfk_device_alloc(&vfk_vfio_user_ops, opts, &d);
	if (rc)
		return rc;
	rc = vfk_vfio_user_attach(d, fd);
	if (rc) {
		vfk_device_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int vfk_device_open_socket(const char *path, const struct vfk_client_opts *opts,
			   struct vfk_device **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	if (!path || !out)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = vfk_device_open_fd(fd, opts, out);
	if (rc)
		close(fd);
	return rc;
}

void vfk_device_close(struct vfk_device *d)
{
	if (!d)
		return;
	for (unsigned i = 0; i < CLIENT_MAX_REGIONS; i++)
		vfk_region_unmap(d, i);
	d->ops->close(d);
	vfk_device_free(d);
}

const char *vfk_device_transport(const struct vfk_device *d)
{
	return d->ops->name;
}

int vfk_device_session(struct vfk_device *d, struct vfk_session_info *out)
{
	if (!d->ops->session) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	return d->ops->session(d, out);
}

int vfk_device_get_info(struct vfk_device *d, struct vfk_device_info *out)
{
	int rc;

	if (!d->info_valid) {
		rc = d->ops->get_info(d, &d->info);
		if (rc)
			return rc;
		d->info_valid = true;
	}
	*out = d->info;
	return 0;
}

static int region_cached(struct vfk_device *d, uint32_t index,
			 struct region_cache **out)
{
	struct vfk_device_info info;
	struct region_cache *rc;
	int err;

	err = vfk_device_get_info(d, &info);
	if (err)
		return err;
	if (index >= info.num_regions || index >= CLIENT_MAX_REGIONS)
		return -EINVAL;
	rc = &d->regions[index];
	if (!rc->valid) {
		err = d->ops->get_region_info(d, index, rc);
		if (err)
			return err;
		rc->info.areas = rc->areas;
		rc->valid = true;
	}
	*out = rc;
	return 0;
}

int vfk_region_get_info(struct vfk_device *d, uint32_t index,
			struct vfk_region_info *out)
{
	struct region_cache *rc;
	int err = region_cached(d, index, &rc);

	if (!err)
		*out = rc->info;
	return err;
}

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

int vfk_region_map(struct vfk_device *d, uint32_t index, void **base)
{
	struct region_cache *rc;
	size_t page = page_size(), len;
	uint8_t *b;
	int prot = 0, err;

	err = region_cached(d, index, &rc);
	if (err)
		return err;
	if (rc->map_base) {
		*base = rc->map_base;
		return 0;
	}
	if (!rc->info.mappable || !rc->info.nr_areas || rc->map_fd < 0)
		return -ENODEV;
	if (rc->info.flags & VFK_REGION_FLAG_READ)
		prot |= PROT_READ;
	if (rc->info.flags & VFK_REGION_FLAG_WRITE)
		prot |= PROT_WRITE;
	if (rc->info.size > SIZE_MAX - page)
		return -ENOMEM;
	len = ((size_t)rc->info.size + page - 1) & ~(page - 1);
	/* Reserve the whole region so that base + offset works, then map
	 * each area over the reservation. */
	b = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (b == MAP_FAILED)
		return -errno;
	for (unsigned i = 0; i < rc->info.nr_areas; i++) {
		const struct vfk_area *a = &rc->areas[i];
		size_t alen = ((size_t)a->size + page - 1) & ~(page - 1);
		void *p;

		p = mmap(b + a->offset, alen, prot, MAP_SHARED | MAP_FIXED, rc->map_fd,
			 (off_t)(rc->info.offset + a->offset));
		if (p == MAP_FAILED) {
			err = -errno;
			munmap(b, len);
			vfk_client_log(d, VFK_LOG_WARN, "region %u: mmap of area %u failed: %s",
				       index, i, vfk_strerror(err));
			return err;
		}
	}
	rc->map_base = b;
	rc->map_len = len;
	*base = b;
	return 0;
}

void vfk_region_unmap(struct vfk_device *d, uint32_t index)
{
	struct region_cache *rc;

	if (index >= CLIENT_MAX_REGIONS)
		return;
	rc = &d->regions[index];
	if (rc->map_base) {
		munmap(rc->map_base, rc->map_len);
		rc->map_base = NULL;
		rc->map_len = 0;
	}
}

/* Copy through a mapping with single accesses of the natural width, as a
 * CPU access to a device register would be. */
static void mmio_copy(bool write, volatile uint8_t *m, uint8_t *buf, size_t n)
{
	uintptr_t a = (uintptr_t)m;

	if (n == 8 && !(a & 7)) {
		uint64_t v;

		if (write) {
			memcpy(&v, buf, 8);
			*(volatile uint64_t *)m = v;
		} else {
			v = *(volatile uint64_t *)m;
			memcpy(buf, &v, 8);
		}
	} else if (n == 4 && !(a & 3)) {
		uint32_t v;

		if (write) {
			memcpy(&v, buf, 4);
			*(volatile uint32_t *)m = v;
		} else {
			v = *(volatile uint32_t *)m;
			memcpy(buf, &v, 4);
		}
	} else if (n == 2 && !(a & 1)) {
		uint16_t v;

		if (write) {
			memcpy(&v, buf, 2);
			*(volatile uint16_t *)m = v;
		} else {
			v = *(volatile uint16_t *)m;
			memcpy(buf, &v, 2);
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (write)
				m[i] = buf[i];
			else
				buf[i] = m[i];
		}
	}
}

static int region_rw(struct vfk_device *d, bool write, bool posted,
		     uint32_t index, uint64_t off, uint8_t *buf, size_t count)
{
	struct region_cache *rc;
	uint64_t end;
	int err;

	err = region_cached(d, index, &rc);
	if (err)
		return err;
	if (count == 0)
		return 0;
	if (off >= rc->info.size || count > rc->info.size - off)
		return -EINVAL;
	end = off + count;
	while (off < end) {
		uint64_t stop = end;
		bool mapped = false;

		if (rc->map_base) {
			for (unsigned i = 0; i < rc->info.nr_areas; i++) {
				const struct vfk_area *a = &rc->areas[i];

				if (off >= a->offset && off - a->offset < a->size) {
					mapped = true;
					if (a->offset + a->size < stop)
						stop = a->offset + a->size;
					break;
				}
				if (a->offset > off && a->offset < stop)
					stop = a->offset;
			}
		}
		if (mapped)
			mmio_copy(write, rc->map_base + off, buf, (size_t)(stop - off));
		else if ((err = d->ops->region_rw(d, write, posted, index, off, buf,
						  (size_t)(stop - off))))
			return err;
		buf += stop - off;
		off = stop;
	}
	return 0;
}

int vfk_region_read(struct vfk_device *d, uint32_t index, uint64_t offset,
		    void *buf, size_t count)
{
	return region_rw(d, false, false, index, offset, buf, count);
}

int vfk_region_write(struct vfk_device *d, uint32_t index, uint64_t offset,
		     const void *buf, size_t count)
{
	return region_rw(d, true, false, index, offset, (void *)buf, count);
}

int vfk_region_write_posted(struct vfk_device *d, uint32_t index,
			    uint64_t offset, const void *buf, size_t count)
{
	return region_rw(d, true, true, index, offset, (void *)buf, count);
}

int vfk_device_config_read(struct vfk_device *d, uint32_t offset, void *buf,
			   size_t count)
{
	return vfk_region_read(d, VFK_PCI_CONFIG, offset, buf, count);
}

int vfk_device_config_write(struct vfk_device *d, uint32_t offset,
			    const void *buf, size_t count)
{
	return vfk_region_write(d, VFK_PCI_CONFIG, offset, buf, count);
}

int vfk_device_irq_info(struct vfk_device *d, uint32_t index,
		     struct vfk_irq_info *out)
{
	struct vfk_device_info info;
	int err = vfk_device_get_info(d, &info);

	if (err)
		return err;
	if (index >= info.num_irqs)
		return -EINVAL;
	return d->ops->get_irq_info(d, index, out);
}

int vfk_device_irq_set_eventfds(struct vfk_device *d, uint32_t index, uint32_t start,
			 uint32_t count, const int *fds)
{
	if (count == 0 || !fds || start + count < start)
		return -EINVAL;
	return d->ops->set_irqs(d, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
				index, start, count, fds, NULL);
}

int vfk_device_irq_disable(struct vfk_device *d, uint32_t index)
{
	return d->ops->set_irqs(d, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER,
				index, 0, 0, NULL, NULL);
}

int vfk_device_irq_mask(struct vfk_device *d, uint32_t index, uint32_t start,
		 uint32_t count, bool mask)
{
	if (count == 0)
		return -EINVAL;
	return d->ops->set_irqs(d, VFK_IRQ_SET_DATA_NONE |
				       (mask ? VFK_IRQ_SET_ACTION_MASK : VFK_IRQ_SET_ACTION_UNMASK),
				index, start, count, NULL, NULL);
}

int vfk_device_irq_trigger(struct vfk_device *d, uint32_t index, uint32_t start,
		    uint32_t count)
{
	if (count == 0)
		return -EINVAL;
	return d->ops->set_irqs(d, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER,
				index, start, count, NULL, NULL);
}

int vfk_device_irq_unmask_eventfd(struct vfk_device *d, int fd)
{
	return d->ops->set_irqs(d, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_UNMASK,
				VFK_PCI_INTX, 0, 1, &fd, NULL);
}

int vfk_device_dma_map(struct vfk_device *d, const struct vfk_dma_mapping *m)
{
	if (!m || m->size == 0 || m->iova + m->size - 1 < m->iova)
		return -EINVAL;
	if (!m->prot || (m->prot & ~(VFK_DMA_READ | VFK_DMA_WRITE)))
		return -EINVAL;
	if (!m->vaddr && m->fd < 0)
		return -EINVAL;
	return d->ops->dma_map(d, m);
}

static int cmp_iova(const void *a, const void *b)
{
	const struct vfk_dma_mapping *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* Does `b` continue `a` so that one window can stand for both? */
static bool continues(const struct vfk_dma_mapping *a, const struct vfk_dma_mapping *b)
{
	if (a->iova + a->size != b->iova || a->prot != b->prot)
		return false;
	if ((a->fd < 0) != (b->fd < 0) || (!a->vaddr) != (!b->vaddr))
		return false;
	if (a->fd >= 0 && (a->fd != b->fd || a->fd_offset + a->size != b->fd_offset))
		return false;
	return !a->vaddr || (uint8_t *)a->vaddr + a->size == b->vaddr;
}

int vfk_device_dma_map_many(struct vfk_device *d, const struct vfk_dma_mapping *m,
			    unsigned n)
{
	struct vfk_dma_mapping *sorted, cur;
	unsigned sent = 0;
	int rc = 0;

	if (!n || !m)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (m[i].size == 0 || m[i].iova + m[i].size - 1 < m[i].iova ||
		    !m[i].prot || (m[i].prot & ~(VFK_DMA_READ | VFK_DMA_WRITE)) ||
		    (!m[i].vaddr && m[i].fd < 0))
			return -EINVAL;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, m, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_iova);
	cur = sorted[0];
	for (unsigned i = 1; i <= n && !rc; i++) {
		if (i < n && continues(&cur, &sorted[i]) &&
		    cur.size + sorted[i].size > cur.size) {
			cur.size += sorted[i].size;
			continue;
		}
		rc = d->ops->dma_map(d, &cur);
		if (!rc) {
			/* The array doubles as the undo list: slot `sent` is
			 * behind `i`, already consumed. */
			sorted[sent++] = cur;
			if (i < n)
				cur = sorted[i];
		}
	}
	if (rc) {
		for (unsigned k = 0; k < sent; k++)
			d->ops->dma_unmap(d, sorted[k].iova, sorted[k].size, false);
		free(sorted);
		return rc;
	}
	free(sorted);
	return (int)sent;
}

int vfk_device_dma_unmap(struct vfk_device *d, uint64_t iova, uint64_t size)
{
	if (size == 0 || iova + size - 1 < iova)
		return -EINVAL;
	return d->ops->dma_unmap(d, iova, size, false);
}

int vfk_device_dma_unmap_all(struct vfk_device *d)
{
	return d->ops->dma_unmap(d, 0, 0, true);
}

int vfk_device_reset(struct vfk_device *d)
{
	return d->ops->reset(d);
}

int vfk_device_fd(struct vfk_device *d)
{
	return d->ops->poll_fd(d);
}

int vfk_device_dispatch(struct vfk_device *d)
{
	return d->ops->dispatch(d);
}

void vfk_device_get_stats(struct vfk_device *d, struct vfk_client_stats *out)
{
	*out = d->stats;
}
