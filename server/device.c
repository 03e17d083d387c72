/* SPDX-License-Identifier: MIT */
/*
 * Device description: shared memory, identity, BARs, ROM, realize, and the
 * mmap-area computation (which BAR pages a client may map).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/pci_regs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- shared memory ---- */

static size_t host_page(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

static int shm_wrap_at(int fd, uint64_t file_offset, size_t size, bool borrow,
		       struct vfk_shm **out)
{
	struct vfk_shm *shm = calloc(1, sizeof(*shm));

	if (!shm)
		return -ENOMEM;
	shm->borrowed = borrow;
	shm->file_offset = file_offset;
	shm->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			(off_t)file_offset);
	if (shm->ptr == MAP_FAILED) {
		int err = -errno;

		free(shm);
		return err;
	}
	shm->fd = fd;
	shm->size = size;
	atomic_init(&shm->refs, 1);
	*out = shm;
	return 0;
}

static int shm_wrap(int fd, size_t size, struct vfk_shm **out)
{
	return shm_wrap_at(fd, 0, size, false, out);
}

int vfk_shm_from_fd_range(int fd, uint64_t file_offset, size_t size,
			  bool borrow, struct vfk_shm **out)
{
	if (fd < 0 || size == 0 || file_offset % host_page())
		return -EINVAL;
	return shm_wrap_at(fd, file_offset, size, borrow, out);
}

int vfk_shm_create(size_t size, const char *name, struct vfk_shm **out)
{
	size_t page = host_page();
	int fd, rc;

	if (size == 0 || size > SIZE_MAX - page)
		return -EINVAL;
	size = (size + page - 1) & ~(page - 1);
	fd = memfd_create(name ? name : "vfiokit-shm",
			  MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		goto fail;
	}
	/* A client that maps it can neither shrink it under us (SIGBUS) nor
	 * grow it; the seal set itself is then frozen. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = shm_wrap(fd, size, out);
	if (rc)
		goto fail;
	return 0;
fail:
	close(fd);
	return rc;
}

int vfk_shm_from_fd(int fd, size_t size, struct vfk_shm **out)
{
	struct stat st;

	if (fd < 0 || size == 0)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Mapping past the end of a file or a block device would SIGBUS. */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < size)
		return -EINVAL;
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;

		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
			return -errno;
		if (bytes < size)
			return -EINVAL;
	}
	return shm_wrap(fd, size, out);
}

void *vfk_shm_ptr(const struct vfk_shm *shm)
{
	return shm->ptr;
}

size_t vfk_shm_size(const struct vfk_shm *shm)
{
	return shm->size;
}

static void shm_get(struct vfk_shm *shm)
{
	atomic_fetch_add(&shm->refs, 1);
}

void vfk_shm_put(struct vfk_shm *shm)
{
	if (!shm || atomic_fetch_sub(&shm->refs, 1) != 1)
		return;
	munmap(shm->ptr, shm->size);
	if (!shm->borrowed)
		close(shm->fd);
	free(shm);
}

/* ---- device ---- */

int vfk_dev_create(const struct vfk_dev_ops *ops, void *user,
		   struct vfk_dev **out)
{
	static const struct vfk_dev_ops no_ops = { .version = VFK_DEV_OPS_VERSION };
	struct vfk_dev *dev;
	int rc;

	if (ops && ops->version < 1)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->ops = ops ? ops : &no_ops;
	dev->user = user;
	dev->page_size = host_page();
	dev->intx_pin = 1;
	dev->irq_active = -1;
	dev->intx_unmask_fd = -1;
	dev->dma_mask_bits = 64;
	dev->dma_limit = UINT64_MAX;
	dev->pool_size = 1u << 20;
	pthread_mutex_init(&dev->irq_lock, NULL);
	pthread_mutex_init(&dev->pool_lock, NULL);
	vfk_cfg_init_header(dev);
	rc = vfk_dma_init(dev, VFK_DEFAULT_MAX_DMA_MAPS);
	if (rc) {
		pthread_mutex_destroy(&dev->irq_lock);
		pthread_mutex_destroy(&dev->pool_lock);
		free(dev);
		return rc;
	}
	*out = dev;
	return 0;
}

void vfk_dev_destroy(struct vfk_dev *dev)
{
	if (!dev)
		return;
	vfk_dma_fini(dev);
	vfk_irq_fini(dev);
	vfk_pool_fini(dev);
	for (unsigned i = 0; i < MAX_BARS; i++) {
		vfk_shm_put(dev->bars[i].shm);
		free(dev->bars[i].saved);
	}
	free(dev->rom);
	free(dev->msix_table);
	free(dev->msix_pba);
	pthread_mutex_destroy(&dev->irq_lock);
	pthread_mutex_destroy(&dev->pool_lock);
	free(dev);
}

void *vfk_dev_user(const struct vfk_dev *dev)
{
	return dev->user;
}

struct vfk_server *vfk_dev_server(const struct vfk_dev *dev)
{
	return dev->srv;
}

void vfk_dev_log(struct vfk_dev *dev, enum vfk_log_level level,
		 const char *fmt, ...)
{
	va_list ap;

	if (!dev->srv)
		return;
	va_start(ap, fmt);
	vfk_server_logv(dev->srv, level, fmt, ap);
	va_end(ap);
}

int vfk_pci_set_id(struct vfk_dev *dev, const struct vfk_pci_id *id)
{
	if (dev->realized)
		return -EBUSY;
	if (!id || id->class_code > 0xffffff || id->vendor == 0xffff)
		return -EINVAL;
	dev->id = *id;
	return 0;
}

int vfk_pci_set_intx_pin(struct vfk_dev *dev, unsigned pin)
{
	if (dev->realized)
		return -EBUSY;
	if (pin > 4)
		return -EINVAL;
	dev->intx_pin = pin;
	return 0;
}

int vfk_dev_set_page_size(struct vfk_dev *dev, size_t page_size)
{
	if (dev->realized)
		return -EBUSY;
	if (page_size != 4096 && page_size != 16384 && page_size != 65536)
		return -EINVAL;
	if (page_size < host_page())
		return -EINVAL; /* cannot map finer than the real page */
	dev->page_size = page_size;
	return 0;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int vfk_dev_set_bar(struct vfk_dev *dev, unsigned bar,
		    const struct vfk_bar_desc *d)
{
	struct bar_state *b;
	bool is64, io;

	if (dev->realized)
		return -EBUSY;
	if (bar >= MAX_BARS || !d)
		return -EINVAL;
	if (d->flags & ~(VFK_BAR_MEM64 | VFK_BAR_IO | VFK_BAR_PREFETCH |
			 VFK_BAR_SWAP_ON_DISABLE | VFK_BAR_CALLBACK_ACCESS |
			 VFK_BAR_DISABLED_ONES))
		return -EINVAL;
	if (d->map_attrs & ~(VFK_MAP_WC | VFK_MAP_CACHED))
		return -EINVAL;
	io = d->flags & VFK_BAR_IO;
	is64 = d->flags & VFK_BAR_MEM64;
	if (io && (d->flags & (VFK_BAR_MEM64 | VFK_BAR_PREFETCH)))
		return -EINVAL;
	if (!is_pow2(d->size))
		return -EINVAL;
	if (io ? (d->size < 4 || d->size > 256) : d->size < 16)
		return -EINVAL;
	if (!is64 && !io && d->size > (1ull << 31))
		return -EINVAL;
	if (is64 && bar == MAX_BARS - 1)
		return -EINVAL;
	if (dev->bars[bar].present || dev->bars[bar].upper ||
	    (is64 && (dev->bars[bar + 1].present || dev->bars[bar + 1].upper)))
		return -EEXIST;
	if (d->nr_trapped > MAX_TRAPPED - 2)
		return -E2BIG;
	for (unsigned i = 0; i < d->nr_trapped; i++) {
		const struct vfk_range *r = &d->trapped[i];

		if (r->size == 0 || r->offset >= d->size ||
		    r->size > d->size - r->offset)
			return -EINVAL;
	}
	if (d->backed_size > d->size || (d->backed_size && !d->shm))
		return -EINVAL;
	if ((d->flags & VFK_BAR_SWAP_ON_DISABLE) && !d->shm)
		return -EINVAL;
	if (d->shm) {
		uint64_t need = d->backed_size ? d->backed_size : d->size;

		if (io)
			return -EINVAL; /* I/O space cannot be mapped */
		if (d->shm_offset > d->shm->size || need > d->shm->size - d->shm_offset)
			return -EINVAL;
	}
	b = &dev->bars[bar];
	memset(b, 0, sizeof(*b));
	b->present = true;
	b->size = d->size;
	b->flags = d->flags;
	if (d->shm) {
		shm_get(d->shm);
		b->shm = d->shm;
		b->shm_offset = d->shm_offset;
		b->backed_size = d->backed_size ? d->backed_size : d->size;
	}
	b->map_attrs = d->map_attrs;
	if (d->nr_trapped)
		memcpy(b->trapped, d->trapped, d->nr_trapped * sizeof(*d->trapped));
	b->nr_trapped = d->nr_trapped;
	if (is64)
		dev->bars[bar + 1].upper = true;
	return 0;
}

int vfk_dev_set_rom(struct vfk_dev *dev, const void *image, size_t len)
{
	size_t size = 2048;

	if (dev->realized)
		return -EBUSY;
	if (!image || len == 0 || len > (16u << 20))
		return -EINVAL;
	while (size < len)
		size <<= 1;
	free(dev->rom);
	dev->rom = malloc(len);
	if (!dev->rom)
		return -ENOMEM;
	memcpy(dev->rom, image, len);
	dev->rom_len = len;
	dev->rom_size = size;
	return 0;
}

int vfk_dev_set_memory_bar(struct vfk_dev *dev, unsigned bar,
			   struct vfk_shm *shm, uint64_t offset, uint64_t length,
			   uint32_t map_attrs)
{
	uint64_t size = 16;

	if (!shm || length == 0 || length > (1ull << 62))
		return -EINVAL;
	while (size < length)
		size <<= 1;
	return vfk_dev_set_bar(dev, bar, &(struct vfk_bar_desc){
		.size = size, .flags = VFK_BAR_MEM64 | VFK_BAR_PREFETCH | VFK_BAR_DISABLED_ONES,
		.shm = shm, .shm_offset = offset, .backed_size = length,
		.map_attrs = map_attrs });
}

int vfk_dev_set_msix_layout(struct vfk_dev *dev, enum vfk_msix_layout layout)
{
	if (dev->realized)
		return -EBUSY;
	if (layout != VFK_MSIX_MAPPABLE && layout != VFK_MSIX_TRAPPED &&
	    layout != VFK_MSIX_RELOCATED)
		return -EINVAL;
	dev->msix_layout = layout;
	return 0;
}

int vfk_dev_set_policy(struct vfk_dev *dev, const struct vfk_dev_policy *p)
{
	unsigned bits = p->dma_mask_bits ? p->dma_mask_bits : 64;

	if (dev->realized)
		return -EBUSY;
	if ((p->disabled_access != VFK_DISABLED_EIO &&
	     p->disabled_access != VFK_DISABLED_ALL_ONES) ||
	    (p->msix != VFK_MSIX_MAPPABLE && p->msix != VFK_MSIX_TRAPPED &&
	     p->msix != VFK_MSIX_RELOCATED) ||
	    bits < 32 || bits > 64)
		return -EINVAL;
	dev->disabled_access = p->disabled_access;
	dev->msix_layout = p->msix;
	dev->revoke_on_disable = p->revoke_on_disable;
	return vfk_dev_set_dma_mask(dev, bits);
}

/*
 * MSI-X relocation: the table at 0 and the PBA after it, page-aligned, in
 * the first free BAR slot, a 32-bit memory BAR of at least a page that
 * the library serves alone (QEMU's x-msix-relocation lays it out the same
 * way).  The capability's BIR and offsets follow.
 */
static int msix_relocate(struct vfk_dev *dev)
{
	uint64_t tlen = (uint64_t)dev->msix_nvec * 16, plen = ((dev->msix_nvec + 63) / 64) * 8;
	uint64_t pba = (tlen + 4095) & ~4095ull, size = dev->page_size;
	unsigned bar;

	for (bar = 0; bar < MAX_BARS; bar++)
		if (!dev->bars[bar].present && !dev->bars[bar].upper)
			break;
	if (bar == MAX_BARS)
		return -ENOSPC;
	while (size < pba + plen)
		size <<= 1;
	memset(&dev->bars[bar], 0, sizeof(dev->bars[bar]));
	dev->bars[bar].present = true;
	dev->bars[bar].msix_only = true;
	dev->bars[bar].size = size;
	dev->bars[bar].flags = VFK_BAR_MEM32;
	dev->msix_table_bar = dev->msix_pba_bar = bar;
	dev->msix_table_off = 0;
	dev->msix_pba_off = (uint32_t)pba;
	put32(dev->cfg + dev->msix_off + PCI_MSIX_TABLE, bar);
	put32(dev->cfg + dev->msix_off + PCI_MSIX_PBA, (uint32_t)pba | bar);
	return 0; /* the BAR register is written with the others at realize */
}

void *vfk_bar_mem(struct vfk_dev *dev, unsigned bar)
{
	struct bar_state *b;

	if (bar >= MAX_BARS || !dev->bars[bar].present || !dev->bars[bar].shm)
		return NULL;
	b = &dev->bars[bar];
	return b->swapped ? b->saved : (uint8_t *)b->shm->ptr + b->shm_offset;
}

/*
 * Apply Memory Space Enable to SWAP_ON_DISABLE BARs: on disable, keep the
 * contents aside and leave all-ones where a client's mapping looks; on
 * enable, put them back, which also discards what the client wrote there
 * in between.
 */
void vfk_dev_sync_decode(struct vfk_dev *dev)
{
	bool on = vfk_dev_memory_enabled(dev);

	for (unsigned i = 0; i < MAX_BARS; i++) {
		struct bar_state *b = &dev->bars[i];
		uint8_t *mem;

		if (!b->present || !(b->flags & VFK_BAR_SWAP_ON_DISABLE) ||
		    b->swapped == !on)
			continue;
		mem = (uint8_t *)b->shm->ptr + b->shm_offset;
		if (on) {
			memcpy(mem, b->saved, b->backed_size);
		} else {
			memcpy(b->saved, mem, b->backed_size);
			memset(mem, 0xff, b->backed_size);
		}
		b->swapped = !on;
	}
}

/* ---- mmap areas ---- */

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Does another BAR's backing overlap shm bytes [start, start+len)? */
static bool shared_with_other_bar(struct vfk_dev *dev, unsigned self,
				  uint64_t start, uint64_t len)
{
	const struct bar_state *me = &dev->bars[self];

	for (unsigned i = 0; i < MAX_BARS; i++) {
		const struct bar_state *o = &dev->bars[i];

		if (i == self || !o->present || o->shm != me->shm)
			continue;
		if (ranges_overlap(start, len, o->shm_offset, o->size))
			return true;
	}
	return false;
}

/* No other BAR's backing in any page BAR `i` touches (and it has shm). */
bool vfk_dev_bar_exclusive(struct vfk_dev *dev, unsigned i)
{
	const struct bar_state *b = &dev->bars[i];
	uint64_t page = dev->page_size;
	uint64_t start = b->shm_offset & ~(page - 1);
	uint64_t end = (b->shm_offset + b->size + page - 1) & ~(page - 1);

	return b->shm && !shared_with_other_bar(dev, i, start, end - start);
}

static bool page_trapped(const struct bar_state *b, uint64_t off, uint64_t len)
{
	for (unsigned i = 0; i < b->nr_trapped; i++)
		if (ranges_overlap(off, len, b->trapped[i].offset,
				   b->trapped[i].size))
			return true;
	return false;
}

static int cmp_range(const void *a, const void *b)
{
	const struct vfk_range *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * A page of BAR `i` may be mapped when: the BAR has shared memory and starts
 * on a page boundary in it; the page holds no trapped byte (model ranges,
 * MSI-X table, PBA); the shm holds the whole page; and no other BAR's
 * backing lies in the page (a client mapping the page would reach it).
 * A BAR smaller than a page is thus mappable only when its page is
 * exclusively its own; its one area is the BAR's size, and a client maps
 * the whole page around it, as with Linux vfio-pci's sub-page BARs.
 */
int vfk_dev_compute_areas(struct vfk_dev *dev)
{
	size_t page = dev->page_size;

	for (unsigned i = 0; i < MAX_BARS; i++) {
		struct bar_state *b = &dev->bars[i];
		uint64_t npages, run_start = 0;
		bool in_run = false;

		b->nr_areas = 0;
		if (!b->present)
			continue;
		qsort(b->trapped, b->nr_trapped, sizeof(b->trapped[0]), cmp_range);
		if (!b->shm || (b->flags & VFK_BAR_IO) || b->shm_offset % page)
			continue;
		npages = (b->size + page - 1) / page;
		for (uint64_t p = 0; p <= npages; p++) {
			uint64_t off = p * page;
			bool ok = false;

			if (p < npages) {
				uint64_t in_bar = b->size - off < page ? b->size - off : page;

				/* A page that is not all backed memory would show
				 * the client bytes that must read as all-ones. */
				ok = (b->backed_size >= b->size ||
				      off + page <= b->backed_size) &&
				     !page_trapped(b, off, in_bar) &&
				     b->shm_offset + off + page <= b->shm->size &&
				     !shared_with_other_bar(dev, i, b->shm_offset + off,
							    page);
			}
			if (ok && !in_run) {
				run_start = off;
				in_run = true;
			} else if (!ok && in_run) {
				uint64_t end = off > b->size ? b->size : off;

				in_run = false;
				if (b->nr_areas == MAX_AREAS) {
					vfk_dev_log(dev, VFK_LOG_WARN,
						    "BAR%u: more than %u mmap areas, "
						    "the rest stays trapped", i, MAX_AREAS);
					break;
				}
				b->areas[b->nr_areas].offset = run_start;
				b->areas[b->nr_areas].size = end - run_start;
				b->nr_areas++;
			}
		}
	}
	return 0;
}

int vfk_dev_realize(struct vfk_dev *dev)
{
	int rc;

	if (dev->realized)
		return 0;
	if (dev->msix_nvec) {
		struct bar_state *tb = &dev->bars[dev->msix_table_bar];
		struct bar_state *pb = &dev->bars[dev->msix_pba_bar];
		uint64_t tlen = (uint64_t)dev->msix_nvec * 16;
		uint64_t plen = ((dev->msix_nvec + 63) / 64) * 8;

		if (!tb->present || !pb->present || (tb->flags & VFK_BAR_IO) ||
		    (pb->flags & VFK_BAR_IO))
			return -EINVAL;
		if (dev->msix_table_off + tlen > tb->size ||
		    dev->msix_pba_off + plen > pb->size)
			return -EINVAL;
		if (dev->msix_table_bar == dev->msix_pba_bar &&
		    ranges_overlap(dev->msix_table_off, tlen, dev->msix_pba_off, plen))
			return -EINVAL;
		if (tb->nr_trapped >= MAX_TRAPPED || pb->nr_trapped >= MAX_TRAPPED)
			return -E2BIG;
		if (dev->msix_layout == VFK_MSIX_RELOCATED && (rc = msix_relocate(dev)))
			return rc;
		/* Hidden from mappings in the trapped layout; served by the
		 * library in every layout. */
		if (dev->msix_layout == VFK_MSIX_TRAPPED) {
			tb->trapped[tb->nr_trapped].offset = dev->msix_table_off;
			tb->trapped[tb->nr_trapped++].size = tlen;
			pb->trapped[pb->nr_trapped].offset = dev->msix_pba_off;
			pb->trapped[pb->nr_trapped++].size = plen;
		}
	}
	for (unsigned i = 0; i < MAX_BARS; i++) {
		struct bar_state *b = &dev->bars[i];

		if (dev->revoke_on_disable && b->present && b->shm && !(b->flags & VFK_BAR_IO))
			b->flags |= VFK_BAR_SWAP_ON_DISABLE;
		if (b->present && (b->flags & VFK_BAR_SWAP_ON_DISABLE)) {
			b->saved = malloc(b->backed_size);
			if (!b->saved)
				return -ENOMEM;
		}
	}
	rc = vfk_dev_compute_areas(dev);
	if (rc)
		return rc;
	rc = vfk_irq_init(dev);
	if (rc)
		return rc;
	rc = vfk_pool_init(dev);
	if (rc)
		return rc;
	vfk_cfg_finish_header(dev);
	memcpy(dev->cfg_reset, dev->cfg, sizeof(dev->cfg));
	dev->realized = true;
	vfk_dev_sync_decode(dev); /* decoding starts off */
	return 0;
}

/* Power-on state of everything the device shows: config space, MSI-X table
 * and pending bits, INTx line, MSI pending bits. */
void vfk_dev_reset_state(struct vfk_dev *dev)
{
	memcpy(dev->cfg, dev->cfg_reset, sizeof(dev->cfg));
	vfk_dev_sync_decode(dev);
	vfk_irq_reset(dev);
}

unsigned vfk_dev_reset_count(const struct vfk_dev *dev)
{
	return dev->reset_count;
}

int vfk_dev_do_reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	dev->reset_count++;
	vfk_dev_reset_state(dev);
	vfk_dev_log(dev, VFK_LOG_INFO, "device reset (%s)",
		    kind == VFK_RESET_FLR ? "FLR" : kind == VFK_RESET_RELEASE ? "client left"
									: "client");
	return dev->ops->reset ? dev->ops->reset(dev, kind) : 0;
}

int vfk_dev_set_disabled_access(struct vfk_dev *dev,
				enum vfk_disabled_access policy)
{
	if (policy != VFK_DISABLED_EIO && policy != VFK_DISABLED_ALL_ONES)
		return -EINVAL;
	dev->disabled_access = policy;
	return 0;
}

uint64_t vfk_reg_merge(uint64_t old, uint64_t reg, unsigned width,
		       uint64_t off, const void *buf, uint32_t count)
{
	const uint8_t *b = buf;

	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		if (o >= reg && o < reg + width) {
			unsigned sh = (unsigned)(8 * (o - reg));

			old = (old & ~(0xffull << sh)) | ((uint64_t)b[i] << sh);
		}
	}
	return old;
}

void vfk_reg_fill(void *buf, uint64_t off, uint32_t count, uint64_t reg,
		  unsigned width, uint64_t value)
{
	uint8_t *b = buf;

	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		if (o >= reg && o < reg + width)
			b[i] = (uint8_t)(value >> (8 * (o - reg)));
	}
}
