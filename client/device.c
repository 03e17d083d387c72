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

/* A caller's table with gaps gets the real calls there. */
static void sys_fill(struct vfk_syscalls *dst, const struct vfk_syscalls *src)
{
	const struct vfk_syscalls *real = vfk_syscalls_default();

	*dst = *real;
	if (!src || src->version < 1)
		return;
	dst->user = src->user;
#define TAKE(m) do { if (src->m) dst->m = src->m; } while (0)
	TAKE(open);
	TAKE(close);
	TAKE(ioctl);
	TAKE(pread);
	TAKE(pwrite);
	TAKE(mmap);
	TAKE(munmap);
	TAKE(read);
	TAKE(write);
	TAKE(readlink);
	TAKE(list_dir);
	TAKE(sleep_ms);
#undef TAKE
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
	if (opts) {
		/* Members a caller's version does not have stay zero. */
		if (opts->version >= 2)
			d->opts = *opts;
		else
			memcpy(&d->opts, opts, offsetof(struct vfk_client_opts, sys));
	}
	sys_fill(&d->sys, d->opts.sys);
	d->dma_last = UINT64_MAX;
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
	if (!d)
		return;
	free(d->ents);
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

int vfk_device_open_pci(const char *bdf, unsigned flags,
			const struct vfk_client_opts *opts, struct vfk_device **out)
{
	extern const struct vfk_transport_ops vfk_kernel_ops;
	struct vfk_device *d;
	int rc;

	if (!bdf || !out || (flags & ~(VFK_PCI_OPEN_TYPE1 | VFK_PCI_OPEN_IOMMUFD |
					VFK_PCI_OPEN_BIND)))
		return -EINVAL;
	if ((flags & VFK_PCI_OPEN_TYPE1) && (flags & VFK_PCI_OPEN_IOMMUFD))
		return -EINVAL;
	rc = vfk_device_alloc(&vfk_kernel_ops, opts, &d);
	if (rc)
		return rc;
	rc = vfk_kernel_attach(d, bdf, flags);
	if (rc) {
		vfk_device_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int vfk_device_kernel_info(struct vfk_device *d, struct vfk_kernel_info *out)
{
	if (!d || !out)
		return -EINVAL;
	if (d->ops->version < 2 || !d->ops->kernel_info) {
		memset(out, 0, sizeof(*out));
		out->group = -1;
		out->device_fd = -1;
		return -ENOTSUP;
	}
	return d->ops->kernel_info(d, out);
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

struct cap_walk {
	struct vfk_device *d;
	struct region_cache *rc;
	bool has_sparse;
};

static int on_cap(void *arg, uint16_t id, uint16_t version, const uint8_t *body,
		  size_t len)
{
	struct cap_walk *cw = arg;
	struct region_cache *rc = cw->rc;
	const uint8_t *areas;
	uint32_t n;
	int err;

	(void)version;
	switch (id) {
	case VFK_REGION_CAP_SPARSE_MMAP:
		if (cw->has_sparse)
			return -EPROTO;
		err = vfk_decode_sparse(body, len, rc->info.size, &n, &areas);
		if (err)
			return -EPROTO;
		if (n > CLIENT_MAX_AREAS)
			return -EPROTO;
		rc->info.nr_areas = 0;
		for (uint32_t i = 0; i < n; i++) {
			struct vfk_sparse_area_wire a;

			memcpy(&a, areas + i * sizeof(a), sizeof(a));
			if (!a.size)
				continue; /* empty areas map nothing */
			rc->areas[rc->info.nr_areas].offset = a.offset;
			rc->areas[rc->info.nr_areas].size = a.size;
			rc->info.nr_areas++;
		}
		cw->has_sparse = true;
		break;
	case VFK_REGION_CAP_TYPE:
		if (len < sizeof(struct vfk_region_type_wire))
			return -EPROTO;
		memcpy(&rc->info.type, body, 4);
		memcpy(&rc->info.subtype, body + 4, 4);
		rc->info.has_type = true;
		break;
	case VFK_REGION_CAP_MSIX_MAPPABLE:
		rc->info.msix_mappable = true;
		break;
	case VFK_REGION_CAP_VFK_LAYOUT: {
		struct vfk_region_layout_wire l;

		if (len < sizeof(l))
			return -EPROTO;
		memcpy(&l, body, sizeof(l));
		if (!l.page_size || (l.page_size & (l.page_size - 1)) ||
		    l.in_page_offset != l.fd_offset % l.page_size)
			return -EPROTO;
		rc->info.has_layout = true;
		rc->info.fd_offset = l.fd_offset;
		rc->info.page_size = l.page_size;
		rc->info.in_page_offset = l.in_page_offset;
		rc->info.layout_flags = l.flags;
		break;
	}
	case VFK_REGION_CAP_VFK_ATTRS: {
		struct vfk_region_attrs_wire a;

		if (len < sizeof(a))
			return -EPROTO;
		memcpy(&a, body, sizeof(a));
		if (a.backed_size > rc->info.size)
			return -EPROTO;
		rc->info.has_attrs = true;
		rc->info.attrs = a.flags;
		rc->info.backed_size = a.backed_size;
		break;
	}
	default:
		vfk_client_log(cw->d, VFK_LOG_DEBUG, "region %u: unknown capability %u",
			       rc->info.index, id);
		break;
	}
	return 0;
}

int vfk_region_parse_caps(struct vfk_device *d, struct region_cache *rc,
			  const void *info, size_t len, uint32_t cap_offset,
			  bool *has_sparse)
{
	struct cap_walk cw = { d, rc, false };
	size_t base = sizeof(struct vfk_region_info_wire);

	*has_sparse = false;
	if (cap_offset < base || cap_offset >= len)
		return -EPROTO;
	if (vfk_caps_walk(info, len, base, cap_offset, on_cap, &cw))
		return -EPROTO;
	*has_sparse = cw.has_sparse;
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
		/* A range past 2^64 would make an mmap of its areas alias the
		 * start of the fd: refused for every transport. */
		if (rc->info.size && rc->info.offset + rc->info.size - 1 < rc->info.offset) {
			vfk_client_log(d, VFK_LOG_ERR, "region %u: offset %#llx + size %#llx wraps",
				       index, (unsigned long long)rc->info.offset,
				       (unsigned long long)rc->info.size);
			if (rc->map_fd >= 0)
				close(rc->map_fd);
			rc->map_fd = -1;
			memset(&rc->info, 0, sizeof(rc->info));
			return -EPROTO;
		}
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

void vfk_region_set_areas(struct vfk_device *d, struct region_cache *rc, bool can_map,
			  bool has_sparse)
{
	size_t page = page_size();

	if (!can_map) {
		rc->info.nr_areas = 0;
		rc->info.mappable = false;
		return;
	}
	if (!has_sparse) {
		rc->areas[0].offset = 0;
		rc->areas[0].size = rc->info.size;
		rc->info.nr_areas = 1;
	}
	/* mmap needs page-aligned file offsets. */
	for (unsigned i = 0; i < rc->info.nr_areas; i++) {
		if ((rc->info.offset + rc->areas[i].offset) % page) {
			vfk_client_log(d, VFK_LOG_WARN, "region %u: area %u not page-aligned, not mapped",
				       rc->info.index, i);
			rc->info.nr_areas = 0;
			break;
		}
	}
	rc->info.mappable = rc->info.nr_areas > 0;
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
	err = SYS(d, mmap, NULL, len, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, (void **)&b);
	if (err)
		return err;
	for (unsigned i = 0; i < rc->info.nr_areas; i++) {
		const struct vfk_area *a = &rc->areas[i];
		size_t alen = ((size_t)a->size + page - 1) & ~(page - 1);
		void *p;

		err = SYS(d, mmap, b + a->offset, alen, prot, MAP_SHARED | MAP_FIXED,
			  rc->map_fd, rc->info.offset + a->offset, &p);
		if (err) {
			SYS(d, munmap, b, len);
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
		SYS(d, munmap, rc->map_base, rc->map_len);
		rc->map_base = NULL;
		rc->map_len = 0;
	}
}

int vfk_region_fd(struct vfk_device *d, uint32_t index)
{
	struct region_cache *rc;
	int err = region_cached(d, index, &rc);

	if (err)
		return err;
	return rc->map_fd >= 0 ? rc->map_fd : -ENODEV;
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
	err = d->ops->get_irq_info(d, index, out);
	if (err)
		return err;
	/* What PCI allows: one INTx line, 32 MSI and 2048 MSI-X vectors, one
	 * ERR and one REQ; a transport's larger count is refused. */
	if (index < VFK_PCI_NUM_IRQS) {
		static const uint32_t pci_max[VFK_PCI_NUM_IRQS] = { 1, 32, 2048, 1, 1 };

		if (out->count > pci_max[index]) {
			vfk_client_log(d, VFK_LOG_ERR, "IRQ index %u: %u vectors, more than PCI allows",
				       index, out->count);
			return -EPROTO;
		}
	}
	return 0;
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

/* ---- the mappings made through this handle ---- */

/* Index of the first entry that ends at or after `iova`. */
static size_t ent_first_ending(const struct vfk_device *d, uint64_t iova)
{
	size_t lo = 0, hi = d->nents;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct dma_ent *e = &d->ents[mid];

		if (e->iova + (e->size - 1) < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int ent_insert(struct vfk_device *d, const struct dma_ent *e)
{
	size_t i;

	if (d->nents == d->capents) {
		size_t cap = d->capents ? d->capents * 2 : 16;
		struct dma_ent *n = realloc(d->ents, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->ents = n;
		d->capents = cap;
	}
	i = ent_first_ending(d, e->iova);
	memmove(&d->ents[i + 1], &d->ents[i], (d->nents - i) * sizeof(*e));
	d->ents[i] = *e;
	d->ents[i].seq = d->next_seq++;
	d->nents++;
	return 0;
}

/* Forget the entries inside [iova, iova+size), or all. */
static void ent_remove_range(struct vfk_device *d, uint64_t iova, uint64_t size,
			     bool all)
{
	size_t k = 0;

	for (size_t i = 0; i < d->nents; i++) {
		const struct dma_ent *e = &d->ents[i];

		if (all || (e->iova >= iova && e->iova + (e->size - 1) <= iova + (size - 1)))
			continue;
		d->ents[k++] = *e;
	}
	d->nents = k;
}

/* Map through the transport and remember it. */
static int map_and_track(struct vfk_device *d, const struct vfk_dma_mapping *m,
			 uintptr_t vaddr)
{
	struct dma_ent e = { m->iova, m->size, vaddr, m->prot, vaddr ? 1 : 0, 0 };
	int rc = d->ops->dma_map(d, m);

	if (rc)
		return rc;
	rc = ent_insert(d, &e);
	if (rc)
		d->ops->dma_unmap(d, m->iova, m->size, false);
	return rc;
}

/* A mapping the caller may ask for: not empty, not wrapping, a known
 * protection, and memory to reach by address or by fd. */
static bool mapping_valid(const struct vfk_dma_mapping *m)
{
	return m->size && m->iova + m->size - 1 >= m->iova && m->prot &&
	       !(m->prot & ~(VFK_DMA_READ | VFK_DMA_WRITE)) && (m->vaddr || m->fd >= 0);
}

int vfk_device_dma_map(struct vfk_device *d, const struct vfk_dma_mapping *m)
{
	if (!m || !mapping_valid(m))
		return -EINVAL;
	return map_and_track(d, m, 0);
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
		if (!mapping_valid(&m[i]))
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
		rc = map_and_track(d, &cur, 0);
		if (!rc) {
			/* The array doubles as the undo list: slot `sent` is
			 * behind `i`, already consumed. */
			sorted[sent++] = cur;
			if (i < n)
				cur = sorted[i];
		}
	}
	if (rc) {
		for (unsigned k = 0; k < sent; k++) {
			d->ops->dma_unmap(d, sorted[k].iova, sorted[k].size, false);
			ent_remove_range(d, sorted[k].iova, sorted[k].size, false);
		}
		free(sorted);
		return rc;
	}
	free(sorted);
	return (int)sent;
}

int vfk_device_dma_unmap(struct vfk_device *d, uint64_t iova, uint64_t size)
{
	int rc;

	if (size == 0 || iova + size - 1 < iova)
		return -EINVAL;
	rc = d->ops->dma_unmap(d, iova, size, false);
	if (!rc)
		ent_remove_range(d, iova, size, false);
	return rc;
}

int vfk_device_dma_unmap_all(struct vfk_device *d)
{
	int rc = d->ops->dma_unmap(d, 0, 0, true);

	if (!rc)
		ent_remove_range(d, 0, 0, true);
	return rc;
}

/* ---- IOVA allocation ---- */

static int cmp_range(const void *a, const void *b)
{
	const struct vfk_iova_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int iova_load(struct vfk_device *d)
{
	unsigned n = 0;
	uint64_t pgs = 0;
	int rc;

	if (d->iova_valid)
		return 0;
	if (d->ops->version >= 2 && d->ops->iova_ranges) {
		rc = d->ops->iova_ranges(d, d->ranges, CLIENT_MAX_IOVA_RANGES, &n, &pgs);
		if (rc)
			return rc;
		if (n > CLIENT_MAX_IOVA_RANGES) {
			vfk_client_log(d, VFK_LOG_WARN, "%u IOVA ranges, using the first %u",
				       n, CLIENT_MAX_IOVA_RANGES);
			n = CLIENT_MAX_IOVA_RANGES;
		}
	} else {
		/* A transport without IOMMU restrictions (vfio-user): every
		 * IOVA but 0, so that vfk_device_dma_limit() can keep a
		 * narrow device's buffers under its mask. */
		d->ranges[0].start = 0;
		d->ranges[0].last = UINT64_MAX;
		n = 1;
	}
	/* The CPU maps whole host pages, so no IOMMU page below that. */
	pgs &= ~((uint64_t)page_size() - 1);
	if (!pgs)
		pgs = page_size();
	qsort(d->ranges, n, sizeof(d->ranges[0]), cmp_range);
	d->nr_ranges = n;
	d->pgsizes = pgs;
	d->pgsize = pgs & (~pgs + 1);
	d->iova_valid = true;
	return 0;
}

int vfk_device_iova_ranges(struct vfk_device *d, struct vfk_iova_range *out,
			   unsigned max)
{
	int rc = iova_load(d);

	if (rc)
		return rc;
	for (unsigned i = 0; i < max && i < d->nr_ranges; i++)
		out[i] = d->ranges[i];
	return (int)d->nr_ranges;
}

uint64_t vfk_device_iova_pgsize(struct vfk_device *d)
{
	return iova_load(d) ? page_size() : d->pgsize;
}

int vfk_device_dma_limit(struct vfk_device *d, uint64_t last)
{
	d->dma_last = last;
	return 0;
}

/* Smallest x >= from with x % align == phase (align a power of two), or
 * false on overflow. */
static bool align_phase(uint64_t from, uint64_t align, uint64_t phase, uint64_t *x)
{
	uint64_t base = from & ~(align - 1), c = base + phase;

	if (c < base)
		return false;
	if (c < from) {
		if (c + align < c)
			return false;
		c += align;
	}
	*x = c;
	return true;
}

/* First fit of `size` bytes at `phase` modulo `align` in the allowed ranges,
 * below the limit, outside every mapping, never at IOVA 0 (which a device
 * could take for "no address"). */
static int iova_alloc(struct vfk_device *d, uint64_t size, uint64_t align,
		      uint64_t phase, uint64_t *out)
{
	for (unsigned r = 0; r < d->nr_ranges; r++) {
		uint64_t last = d->ranges[r].last < d->dma_last ? d->ranges[r].last
							       : d->dma_last;
		uint64_t cur = d->ranges[r].start ? d->ranges[r].start : d->pgsize;

		while (cur <= last) {
			uint64_t c;
			size_t i;

			if (!align_phase(cur, align, phase, &c) || c > last ||
			    size - 1 > last - c)
				break;
			i = ent_first_ending(d, c);
			if (i < d->nents && d->ents[i].iova <= c + (size - 1)) {
				uint64_t next = d->ents[i].iova + d->ents[i].size;

				if (next <= c)
					break; /* the entry reaches the top */
				cur = next;
				continue;
			}
			*out = c;
			return 0;
		}
	}
	return -ENOSPC;
}

/* The oldest mapping made by address that contains [va, va+size). */
static struct dma_ent *ent_find_vaddr(struct vfk_device *d, uintptr_t va, size_t size)
{
	struct dma_ent *best = NULL;

	for (size_t i = 0; i < d->nents; i++) {
		struct dma_ent *e = &d->ents[i];

		if (!e->vaddr || va < e->vaddr || va - e->vaddr > e->size ||
		    size > e->size - (va - e->vaddr))
			continue;
		if (!best || e->seq < best->seq)
			best = e;
	}
	return best;
}

int vfk_device_dma_map_vaddr(struct vfk_device *d, void *vaddr, size_t size,
			     uint32_t prot, uint64_t *iova)
{
	uintptr_t va = (uintptr_t)vaddr, start, end;
	struct vfk_dma_mapping m;
	struct dma_ent *e;
	uint64_t len, align, big = 0, a;
	int rc;

	if (!vaddr || !size || !iova || va + size - 1 < va)
		return -EINVAL;
	if (!prot || (prot & ~(VFK_DMA_READ | VFK_DMA_WRITE)))
		return -EINVAL;
	rc = iova_load(d);
	if (rc)
		return rc;
	e = ent_find_vaddr(d, va, size);
	if (e) {
		if ((e->prot & prot) != prot)
			return -EACCES;
		e->refs++;
		*iova = e->iova + (va - e->vaddr);
		return 0;
	}
	align = d->pgsize;
	start = va & ~(uintptr_t)(align - 1);
	end = va + size - 1;
	if (end + align < end)
		return -EINVAL;
	end = (end + align) & ~(uintptr_t)(align - 1);
	len = end - start;
	/* The largest IOMMU page not above the length (at most 1 GiB). */
	for (a = align; a && a <= len && a <= (1ull << 30); a <<= 1)
		if (d->pgsizes & a)
			big = a;
	if (big < align)
		big = align;
	rc = iova_alloc(d, len, big, start & (big - 1), &m.iova);
	if (rc == -ENOSPC && big > align)
		rc = iova_alloc(d, len, align, 0, &m.iova);
	if (rc) {
		vfk_client_log(d, VFK_LOG_WARN, "no IOVA room for %llu bytes",
			       (unsigned long long)len);
		return rc;
	}
	m.size = len;
	m.vaddr = (void *)start;
	m.fd = -1;
	m.fd_offset = 0;
	m.prot = prot;
	rc = map_and_track(d, &m, start);
	if (rc)
		return rc;
	*iova = m.iova + (va - start);
	return 0;
}

int vfk_device_dma_unmap_vaddr(struct vfk_device *d, void *vaddr, size_t size)
{
	struct dma_ent *e;
	uint64_t iova, len;
	int rc;

	if (!vaddr || !size)
		return -EINVAL;
	e = ent_find_vaddr(d, (uintptr_t)vaddr, size);
	if (!e)
		return -ENOENT;
	if (--e->refs)
		return 0;
	iova = e->iova;
	len = e->size;
	rc = d->ops->dma_unmap(d, iova, len, false);
	if (rc) {
		e->refs++;
		return rc;
	}
	ent_remove_range(d, iova, len, false);
	return 0;
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
