/* SPDX-License-Identifier: MIT */
/*
 * Region accesses (REGION_READ/WRITE) and region descriptions
 * (DEVICE_GET_REGION_INFO).  Region indexes are Linux's: BAR0-5, ROM,
 * config, VGA.
 */
#include <errno.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "internal.h"

uint32_t vfk_num_regions(struct vfk_dev *dev)
{
	(void)dev;
	return VFK_PCI_NUM_REGIONS;
}

/* What serves a byte of a BAR. */
enum seg_kind { SEG_SHM, SEG_TRAP, SEG_MSIX_TABLE, SEG_MSIX_PBA, SEG_PAD };

/* Kind of byte `off` of BAR `bar`, and where that kind ends (exclusive). */
static enum seg_kind classify(struct vfk_dev *dev, unsigned bar, uint64_t off,
			      uint64_t *end)
{
	const struct bar_state *b = &dev->bars[bar];
	uint64_t lim = b->size;

	if (dev->msix_nvec) {
		uint64_t t0 = dev->msix_table_off, t1 = t0 + (uint64_t)dev->msix_nvec * 16;
		uint64_t p0 = dev->msix_pba_off,
			 p1 = p0 + ((dev->msix_nvec + 63) / 64) * 8;

		if (bar == dev->msix_table_bar) {
			if (off >= t0 && off < t1) {
				*end = t1;
				return SEG_MSIX_TABLE;
			}
			if (off < t0 && t0 < lim)
				lim = t0;
		}
		if (bar == dev->msix_pba_bar) {
			if (off >= p0 && off < p1) {
				*end = p1;
				return SEG_MSIX_PBA;
			}
			if (off < p0 && p0 < lim)
				lim = p0;
		}
	}
	for (unsigned i = 0; i < b->nr_trapped; i++) {
		const struct vfk_range *r = &b->trapped[i];

		if (off >= r->offset && off - r->offset < r->size) {
			uint64_t e = r->offset + r->size;

			*end = e < lim ? e : lim;
			return SEG_TRAP;
		}
		if (off < r->offset && r->offset < lim)
			lim = r->offset;
	}
	if (b->msix_only) {
		*end = lim; /* between or after the relocated table and PBA */
		return SEG_PAD;
	}
	if (b->shm && off >= b->backed_size) {
		*end = lim; /* past the device memory: padding up to the BAR size */
		return SEG_PAD;
	}
	if (b->shm && b->backed_size < lim)
		lim = b->backed_size;
	*end = lim;
	return b->shm && !(b->flags & VFK_BAR_CALLBACK_ACCESS) ? SEG_SHM : SEG_TRAP;
}

static int bar_access(struct vfk_dev *dev, bool write, unsigned bar,
		      uint64_t off, uint8_t *buf, uint32_t count)
{
	const struct bar_state *b = &dev->bars[bar];
	uint64_t end = off + count;
	int rc = 0;

	if (!b->present)
		return -EINVAL;
	if (off >= b->size || count > b->size - off)
		return -EINVAL;
	if ((b->flags & VFK_BAR_IO) ? !vfk_dev_io_enabled(dev)
				    : !vfk_dev_memory_enabled(dev)) {
		/* Decoding is off.  vfio-pci fails such accesses with EIO;
		 * hardware on many platforms reads all-ones instead. */
		if (dev->disabled_access == VFK_DISABLED_ALL_ONES ||
		    (b->flags & VFK_BAR_DISABLED_ONES)) {
			if (!write)
				memset(buf, 0xff, count);
			return 0;
		}
		return -EIO;
	}
	while (off < end && !rc) {
		uint64_t seg_end;
		enum seg_kind k = classify(dev, bar, off, &seg_end);
		uint32_t n = (uint32_t)((seg_end < end ? seg_end : end) - off);

		switch (k) {
		case SEG_SHM: {
			uint8_t *mem = (uint8_t *)b->shm->ptr + b->shm_offset + off;

			if (write)
				memcpy(mem, buf, n);
			else
				memcpy(buf, mem, n);
			break;
		}
		case SEG_PAD:
			/* nvgrace-gpu's rule: all-ones, writes dropped. */
			if (!write)
				memset(buf, 0xff, n);
			break;
		case SEG_MSIX_TABLE:
			rc = vfk_msix_access(dev, write, false, off - dev->msix_table_off,
					     buf, n);
			break;
		case SEG_MSIX_PBA:
			rc = vfk_msix_access(dev, write, true, off - dev->msix_pba_off,
					     buf, n);
			break;
		case SEG_TRAP:
			dev->in_region_cb = true;
			if (write)
				rc = dev->ops->bar_write ?
					     dev->ops->bar_write(dev, bar, off, buf, n) : 0;
			else {
				/* The buffer is the reply scratch, reused from
				 * message to message: a model that fills only
				 * its registers' bytes must not hand the client
				 * fragments of an earlier reply. */
				memset(buf, 0, n);
				if (dev->ops->bar_read)
					rc = dev->ops->bar_read(dev, bar, off, buf, n);
			}
			dev->in_region_cb = false;
			if (rc > 0)
				rc = -EIO; /* the contract is 0 or -errno */
			break;
		}
		buf += n;
		off += n;
	}
	return rc;
}

int vfk_dev_region_access(struct vfk_dev *dev, bool write, uint32_t region,
		      uint64_t off, void *buf, uint32_t count)
{
	int rc;

	if (region <= VFK_PCI_BAR5)
		return bar_access(dev, write, region, off, buf, count);
	switch (region) {
	case VFK_PCI_ROM:
		if (!dev->rom || off >= dev->rom_size || count > dev->rom_size - off)
			return -EINVAL;
		if (write)
			return -EINVAL; /* vfio-pci: the ROM is read-only */
		/* Bytes past the image read as all-ones, like an erased ROM. */
		memset(buf, 0xff, count);
		if (off < dev->rom_len) {
			uint64_t n = dev->rom_len - off < count ? dev->rom_len - off : count;

			memcpy(buf, dev->rom + off, n);
		}
		return 0;
	case VFK_PCI_CONFIG:
		dev->in_region_cb = true;
		rc = vfk_cfg_access(dev, write, off, buf, count);
		dev->in_region_cb = false;
		return rc;
	default:
		return -EINVAL;
	}
}

/* The facts of one region, before encoding. */
struct region_desc {
	uint32_t flags;
	uint64_t size;
	uint64_t offset;
	int fd;
	const struct vfk_range *areas;
	unsigned nr_areas;
	const struct bar_state *bar; /* for the vfiokit capabilities */
	bool msix_mappable;
};

static int describe(struct vfk_dev *dev, uint32_t index, struct region_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (index <= VFK_PCI_BAR5) {
		const struct bar_state *b = &dev->bars[index];

		if (!b->present)
			return 0; /* absent BAR, or upper half of a 64-bit one */
		d->bar = b;
		d->size = b->size;
		d->flags = VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE;
		d->msix_mappable = dev->msix_layout == VFK_MSIX_MAPPABLE && dev->msix_nvec &&
				   index == dev->msix_table_bar && b->nr_areas;
		if (b->nr_areas) {
			d->flags |= VFK_REGION_FLAG_MMAP;
			d->fd = b->shm->fd;
			d->offset = b->shm->file_offset + b->shm_offset;
			/* One area spanning the BAR needs no sparse list. */
			if (!(b->nr_areas == 1 && b->areas[0].offset == 0 &&
			      b->areas[0].size == b->size)) {
				d->areas = b->areas;
				d->nr_areas = b->nr_areas;
			}
		}
		return 0;
	}
	switch (index) {
	case VFK_PCI_ROM:
		if (dev->rom) {
			d->size = dev->rom_size;
			d->flags = VFK_REGION_FLAG_READ;
		}
		return 0;
	case VFK_PCI_CONFIG:
		d->size = dev->cfg_size;
		d->flags = VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE;
		return 0;
	case VFK_PCI_VGA:
		return 0;
	}
	return -EINVAL;
}

/*
 * Encode the GET_REGION_INFO reply payload into `out`.  If the client's
 * argsz is too small for the capability chain, the reply is the bare
 * structure with argsz set to the size needed and neither the CAPS flag
 * nor an fd: QEMU rejects a CAPS flag whose cap_offset is 0 (what Linux
 * answers), and retries with the size it is told.  Returns the payload
 * length, or a negative errno.
 */
int vfk_dev_region_info(struct vfk_dev *dev, uint32_t index, uint32_t argsz,
		    uint8_t *out, size_t out_cap, int *fd)
{
	struct vfk_region_info_wire ri;
	struct vfk_caps_builder cb;
	struct region_desc d;
	int rc;

	*fd = -1;
	if (index >= vfk_num_regions(dev))
		return -EINVAL;
	rc = describe(dev, index, &d);
	if (rc)
		return rc;
	if (out_cap < sizeof(ri))
		return -ENOSPC;
	vfk_caps_init(&cb, out, out_cap, sizeof(ri));
	if (d.nr_areas) {
		uint8_t body[8 + MAX_AREAS * sizeof(struct vfk_sparse_area_wire)];
		uint32_t n = d.nr_areas, zero = 0;

		memcpy(body, &n, 4);
		memcpy(body + 4, &zero, 4);
		for (unsigned i = 0; i < d.nr_areas; i++) {
			struct vfk_sparse_area_wire a = { d.areas[i].offset,
							  d.areas[i].size };

			memcpy(body + 8 + i * sizeof(a), &a, sizeof(a));
		}
		vfk_caps_add(&cb, VFK_REGION_CAP_SPARSE_MMAP, 1, body,
			     8 + d.nr_areas * sizeof(struct vfk_sparse_area_wire));
	}
	if (d.msix_mappable)
		vfk_caps_add(&cb, VFK_REGION_CAP_MSIX_MAPPABLE, 1, NULL, 0);
	if (d.bar && d.bar->shm) {
		struct vfk_region_layout_wire l = {
			.fd_offset = d.bar->shm->file_offset + d.bar->shm_offset,
			.page_size = (uint32_t)dev->page_size,
			.in_page_offset = (uint32_t)(d.bar->shm_offset % dev->page_size),
		};

		if (d.bar->size < dev->page_size)
			l.flags |= VFK_LAYOUT_SUBPAGE;
		if (vfk_dev_bar_exclusive(dev, index))
			l.flags |= VFK_LAYOUT_EXCLUSIVE;
		vfk_caps_add(&cb, VFK_REGION_CAP_VFK_LAYOUT, 1, &l, sizeof(l));
	}
	if (d.bar) {
		struct vfk_region_attrs_wire a = { 0 };

		if (d.bar->flags & VFK_BAR_PREFETCH)
			a.flags |= VFK_ATTR_PREFETCHABLE;
		if (d.bar->map_attrs & VFK_MAP_WC)
			a.flags |= VFK_ATTR_MAP_WC;
		if (d.bar->map_attrs & VFK_MAP_CACHED)
			a.flags |= VFK_ATTR_MAP_CACHED;
		if (dev->disabled_access == VFK_DISABLED_ALL_ONES ||
		    (d.bar->flags & VFK_BAR_DISABLED_ONES))
			a.flags |= VFK_ATTR_DISABLED_ONES;
		if (d.bar->flags & VFK_BAR_SWAP_ON_DISABLE)
			a.flags |= VFK_ATTR_MAP_REVOKE;
		a.backed_size = d.bar->shm ? d.bar->backed_size : 0;
		vfk_caps_add(&cb, VFK_REGION_CAP_VFK_ATTRS, 1, &a, sizeof(a));
	}
	if (cb.err && cb.err != -ENOSPC)
		return cb.err;

	memset(&ri, 0, sizeof(ri));
	ri.index = index;
	ri.size = d.size;
	ri.offset = d.offset;
	ri.flags = d.flags;
	ri.argsz = (uint32_t)cb.len;
	if (argsz >= cb.len && !cb.err) {
		if (cb.len > sizeof(ri)) {
			ri.flags |= VFK_REGION_FLAG_CAPS;
			ri.cap_offset = sizeof(ri);
		}
		memcpy(out, &ri, sizeof(ri));
		*fd = d.fd;
		return (int)cb.len;
	}
	memcpy(out, &ri, sizeof(ri));
	return sizeof(ri);
}
