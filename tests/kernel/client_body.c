/* SPDX-License-Identifier: MIT */
/* The shared client test body; see client_body.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client_body.h"

struct ctx {
	body_report_fn report;
	void *arg;
	int failed;
	const char *tp;
};

static bool check(struct ctx *c, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool check(struct ctx *c, bool ok, const char *fmt, ...)
{
	char what[200];
	int n;
	va_list ap;

	n = snprintf(what, sizeof(what), "%s: ", c->tp);
	va_start(ap, fmt);
	vsnprintf(what + n, sizeof(what) - (size_t)n, fmt, ap);
	va_end(ap);
	if (!ok)
		c->failed++;
	c->report(c->arg, ok, what);
	return ok;
}

static void body_config(struct ctx *c, struct vfk_device *dev, const struct body_expect *e)
{
	uint16_t ids[2] = { 0, 0 }, cmd = 0, cmd2 = 0, lo = 0, hi = 0;
	uint32_t dw = 0;
	int rc;

	rc = vfk_device_config_read(dev, 0, ids, 4);
	check(c, rc == 0, "config read of the ids (%s)", vfk_strerror(rc));
	if (e->vendor)
		check(c, ids[0] == e->vendor && ids[1] == e->device,
		      "ids %04x:%04x (want %04x:%04x)", ids[0], ids[1], e->vendor, e->device);
	rc = vfk_device_config_read(dev, 0, &dw, 4);
	rc |= vfk_device_config_read(dev, 0, &lo, 2);
	rc |= vfk_device_config_read(dev, 2, &hi, 2);
	check(c, rc == 0 && dw == ((uint32_t)hi << 16 | lo),
	      "a 4-byte config read equals two 2-byte reads");
	rc = vfk_device_config_read(dev, 4, &cmd, 2);
	cmd |= 0x3; /* I/O and Memory Space Enable, for the BAR accesses below */
	rc |= vfk_device_config_write(dev, 4, &cmd, 2);
	rc |= vfk_device_config_read(dev, 4, &cmd2, 2);
	check(c, rc == 0 && (cmd2 & 0x2), "command register: memory enable sticks (%#x)",
	      cmd2);
}

/* Where the MSI-X table and PBA are: vfio-pci answers all-ones to reads of
 * the table by pread, while a mapping (MSIX_MAPPABLE) shows the real one,
 * so the comparison below keeps away from both. */
struct msix_loc {
	int table_bar, pba_bar;
	uint64_t table_off, table_end, pba_off, pba_end;
};

static void find_msix(struct vfk_device *dev, struct msix_loc *m)
{
	uint8_t cfg[256];
	unsigned off, guard = 0;

	memset(m, 0, sizeof(*m));
	m->table_bar = m->pba_bar = -1;
	if (vfk_device_config_read(dev, 0, cfg, sizeof(cfg)) || !(cfg[6] & 0x10))
		return;
	for (off = cfg[0x34] & ~3u; off >= 0x40 && off < 0xfc && guard++ < 48;
	     off = cfg[off + 1] & ~3u) {
		if (cfg[off] == 0x11) {
			unsigned n = ((cfg[off + 2] | cfg[off + 3] << 8) & 0x7ff) + 1;
			uint32_t t, p;

			memcpy(&t, cfg + off + 4, 4);
			memcpy(&p, cfg + off + 8, 4);
			m->table_bar = (int)(t & 7);
			m->table_off = t & ~7u;
			m->table_end = m->table_off + 16ull * n;
			m->pba_bar = (int)(p & 7);
			m->pba_off = p & ~7u;
			m->pba_end = m->pba_off + 8ull * ((n + 63) / 64);
			return;
		}
	}
}

/* The first 4 bytes of an area outside the MSI-X structures, or false. */
static bool pick_offset(const struct msix_loc *m, uint32_t bar, const struct vfk_region_info *ri,
			uint64_t *out)
{
	unsigned n = ri->mappable ? ri->nr_areas : 1;

	for (unsigned a = 0; a < n; a++) {
		uint64_t o = ri->mappable ? ri->areas[a].offset : 0;
		uint64_t end = ri->mappable ? o + ri->areas[a].size : ri->size;

		for (; o + 4 <= end; o += 4) {
			if ((int)bar == m->table_bar && o + 4 > m->table_off && o < m->table_end)
				continue;
			if ((int)bar == m->pba_bar && o + 4 > m->pba_off && o < m->pba_end)
				continue;
			*out = o;
			return true;
		}
	}
	return false;
}

static void body_regions(struct ctx *c, struct vfk_device *dev, unsigned nregions)
{
	unsigned bars = 0;
	struct msix_loc msix;

	find_msix(dev, &msix);

	for (uint32_t i = 0; i < nregions && i <= VFK_PCI_CONFIG; i++) {
		struct vfk_region_info ri;
		uint32_t before = 0, after = 0;
		uint64_t off = 0;
		void *base = NULL;
		int rc = vfk_region_get_info(dev, i, &ri);

		if (!check(c, rc == 0, "region %u info (%s)", i, vfk_strerror(rc)))
			continue;
		if (!ri.size)
			continue;
		if (i <= VFK_PCI_BAR5)
			bars++;
		check(c, ri.flags & VFK_REGION_FLAG_READ, "region %u readable", i);
		if (ri.size < 4 || i == VFK_PCI_CONFIG)
			continue;
		if (!pick_offset(&msix, i, &ri, &off))
			continue;
		rc = vfk_region_read(dev, i, off, &before, 4);
		check(c, rc == 0, "region %u: 4-byte read at %#llx (%s)", i,
		      (unsigned long long)off, vfk_strerror(rc));
		if (!ri.mappable)
			continue;
		rc = vfk_region_map(dev, i, &base);
		if (!check(c, rc == 0, "region %u: mmap of %u area(s) (%s)", i, ri.nr_areas,
			   vfk_strerror(rc)))
			continue;
		after = *(volatile uint32_t *)((uint8_t *)base + off);
		check(c, after == before,
		      "region %u: the mapping shows what a read showed (%#x, %#x)", i, before,
		      after);
		rc = vfk_region_read(dev, i, off, &after, 4);
		check(c, rc == 0 && after == before, "region %u: a read through the mapping", i);
		vfk_region_unmap(dev, i);
	}
	check(c, bars > 0, "the device has %u BAR(s)", bars);
}

static void body_irqs(struct ctx *c, struct vfk_device *dev, const struct body_expect *e,
		      unsigned nirqs)
{
	int index = -1, fds[2] = { -1, -1 };
	struct vfk_irq_info ii;
	unsigned n;
	int rc;

	for (unsigned i = 0; i < nirqs && i < 5; i++) {
		rc = vfk_device_irq_info(dev, i, &ii);
		/* vfio-pci has ERR only on PCI Express devices, and says
		 * EINVAL for it elsewhere. */
		check(c, rc == 0 || (i >= VFK_PCI_ERR && rc == -EINVAL),
		      "IRQ index %u info (%s)", i, vfk_strerror(rc));
	}
	if (!vfk_device_irq_info(dev, VFK_PCI_MSIX, &ii) && ii.count)
		index = VFK_PCI_MSIX;
	else if (!vfk_device_irq_info(dev, VFK_PCI_MSI, &ii) && ii.count)
		index = VFK_PCI_MSI;
	if (index < 0) {
		check(c, !e->irq_required, "the device has MSI or MSI-X");
		return;
	}
	check(c, ii.flags & VFK_IRQ_INFO_EVENTFD, "%s takes eventfds",
	      index == VFK_PCI_MSIX ? "MSI-X" : "MSI");
	n = ii.count < 2 ? ii.count : 2;
	for (unsigned i = 0; i < n; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = vfk_device_irq_set_eventfds(dev, (uint32_t)index, 0, n, fds);
	check(c, rc == 0, "%s: %u eventfd(s) bound (%s)",
	      index == VFK_PCI_MSIX ? "MSI-X" : "MSI", n, vfk_strerror(rc));
	rc = vfk_device_irq_disable(dev, (uint32_t)index);
	check(c, rc == 0, "%s disabled again (%s)", index == VFK_PCI_MSIX ? "MSI-X" : "MSI",
	      vfk_strerror(rc));
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static bool in_ranges(const struct vfk_iova_range *r, int n, uint64_t iova, uint64_t len)
{
	for (int i = 0; i < n; i++)
		if (iova >= r[i].start && iova <= r[i].last && len - 1 <= r[i].last - iova)
			return true;
	return false;
}

static void body_dma(struct ctx *c, struct vfk_device *dev)
{
	struct vfk_iova_range r[16];
	uint64_t pg = vfk_device_iova_pgsize(dev), a = 0, b = 0, x = 0, fixed;
	int n = vfk_device_iova_ranges(dev, r, 16), rc;
	uint8_t *buf = NULL, *buf2 = NULL;

	check(c, n >= 1, "IOVA ranges reported (%d)", n);
	check(c, pg >= 4096 && !(pg & (pg - 1)), "IOMMU page size %#llx", (unsigned long long)pg);
	if (n < 1 || pg < 4096 || (pg & (pg - 1)) || pg > (1u << 20))
		return;
	if (n > 16)
		n = 16;
	if (posix_memalign((void **)&buf, pg, 4 * pg) || posix_memalign((void **)&buf2, pg, 4 * pg)) {
		check(c, false, "buffers for DMA");
		free(buf);
		return;
	}
	memset(buf, 0x5a, 4 * pg);
	memset(buf2, 0xa5, 4 * pg);
	rc = vfk_device_dma_map_vaddr(dev, buf, 2 * pg, VFK_DMA_READ | VFK_DMA_WRITE, &a);
	check(c, rc == 0 && in_ranges(r, n, a, 2 * pg) && !(a % pg),
	      "DMA map by address: IOVA %#llx inside the reported ranges (%s)",
	      (unsigned long long)a, vfk_strerror(rc));
	rc = vfk_device_dma_map_vaddr(dev, buf + pg + 8, 16, VFK_DMA_READ, &b);
	check(c, rc == 0 && b == a + pg + 8, "a contained range reuses the mapping (%#llx)",
	      (unsigned long long)b);
	rc = vfk_device_dma_unmap_vaddr(dev, buf + pg + 8, 16);
	check(c, rc == 0, "first unmap drops a reference (%s)", vfk_strerror(rc));
	rc = vfk_device_dma_map_vaddr(dev, buf2, 4 * pg, VFK_DMA_WRITE, &x);
	check(c, rc == 0 && (x + 4 * pg <= a || x >= a + 2 * pg),
	      "a second buffer gets an IOVA of its own (%#llx)", (unsigned long long)x);
	rc = vfk_device_dma_unmap_vaddr(dev, buf, 2 * pg);
	check(c, rc == 0, "last unmap unmaps (%s)", vfk_strerror(rc));
	rc = vfk_device_dma_unmap_vaddr(dev, buf, 2 * pg);
	check(c, rc == -ENOENT, "a third unmap finds nothing (%s)", vfk_strerror(rc));

	/* An IOVA of our own choosing, 2 MiB-aligned inside the last range. */
	fixed = (r[n - 1].start + (1ull << 21)) & ~((1ull << 21) - 1);
	if (fixed > r[n - 1].last || r[n - 1].last - fixed < 2 * pg) {
		fixed = (r[0].start + pg) & ~(pg - 1);
	}
	{
		struct vfk_dma_mapping m = { .iova = fixed, .size = 2 * pg, .vaddr = buf,
					     .fd = -1, .prot = VFK_DMA_READ | VFK_DMA_WRITE };

		rc = vfk_device_dma_map(dev, &m);
		check(c, rc == 0, "DMA map at a chosen IOVA %#llx (%s)",
		      (unsigned long long)fixed, vfk_strerror(rc));
		rc = vfk_device_dma_unmap(dev, fixed, 2 * pg);
		check(c, rc == 0, "DMA unmap at that IOVA (%s)", vfk_strerror(rc));
	}
	rc = vfk_device_dma_unmap_all(dev);
	check(c, rc == 0, "DMA unmap of everything (%s)", vfk_strerror(rc));
	rc = vfk_device_dma_unmap_vaddr(dev, buf2, 4 * pg);
	check(c, rc == -ENOENT, "unmap-all dropped the mapping by address too");
	free(buf);
	free(buf2);
}

int client_body_run(struct vfk_device *dev, const struct body_expect *e,
		    body_report_fn report, void *arg)
{
	struct ctx c = { report, arg, 0, vfk_device_transport(dev) };
	struct vfk_device_info di;
	int rc;

	rc = vfk_device_get_info(dev, &di);
	if (!check(&c, rc == 0 && (di.flags & VFK_DEVICE_FLAGS_PCI) && di.num_regions >= 9 &&
			       di.num_irqs >= 5,
		   "device info: PCI, %u regions, %u IRQ types", di.num_regions, di.num_irqs))
		return c.failed;
	body_config(&c, dev, e);
	body_regions(&c, dev, di.num_regions);
	body_irqs(&c, dev, e, di.num_irqs);
	body_dma(&c, dev);
	if (di.flags & VFK_DEVICE_FLAGS_RESET) {
		uint16_t vendor = 0;

		rc = vfk_device_reset(dev);
		check(&c, rc == 0, "device reset (%s)", vfk_strerror(rc));
		rc = vfk_device_config_read(dev, 0, &vendor, 2);
		check(&c, rc == 0 && (!e->vendor || vendor == e->vendor),
		      "config still answers after the reset");
	} else {
		check(&c, vfk_device_reset(dev) != 0, "no reset offered, and none done");
	}
	return c.failed;
}
