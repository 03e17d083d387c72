/* SPDX-License-Identifier: MIT */
/*
 * The passthrough model: see passthrough.h.
 *
 * What it refuses, and why:
 *   - a function whose IOMMU group holds other devices: the client's DMA
 *     windows would reach them too, and they cannot be served here;
 *   - bridges and other non-type-0 headers: their windows and secondary
 *     buses have no meaning behind a vfio-user socket;
 *   - PCI Express ports (root, switch ports): the same;
 *   - DMA windows without an fd: the kernel IOMMU maps memory of this
 *     process, and such a window has none (the client must share its
 *     memory, e.g. QEMU with share=on).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include "passthrough.h"

#define MAX_TRAPS 66

struct pt {
	struct vfk_device *kd;
	struct vfk_dev *dev;
	vfk_log_fn log;
	void *log_user;
	uint8_t cfg[4096];
	size_t cfg_size;
	struct vfk_shm *shm[6];
	struct vfk_range traps[6][MAX_TRAPS];
	int kernel_index;      /* IRQ index enabled in the kernel, or -1 */
	unsigned kernel_nvec;  /* vectors it was enabled with */
	unsigned nvec[5];      /* vectors of each index (the model's) */
	bool express;
};

static void pt_log(struct pt *p, enum vfk_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pt_log(struct pt *p, enum vfk_log_level level, const char *fmt, ...)
{
	char line[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Once serving, the server's log; before, the creator's. */
	if (p->dev && vfk_dev_server(p->dev))
		vfk_dev_log(p->dev, level, "passthrough: %s", line);
	else if (p->log)
		p->log(p->log_user, level, line);
}

static uint16_t rd16(const uint8_t *c, unsigned o)
{
	return (uint16_t)(c[o] | c[o + 1] << 8);
}

static uint32_t rd32(const uint8_t *c, unsigned o)
{
	return (uint32_t)rd16(c, o) | (uint32_t)rd16(c, o + 2) << 16;
}

/* ---- callbacks ---- */

static int pt_bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		       uint32_t count)
{
	struct pt *p = vfk_dev_user(dev);

	/* The handle has no mapping of its own, so this is one pread of the
	 * client's width: device registers see the access the client made. */
	return vfk_region_read(p->kd, bar, off, buf, count);
}

static int pt_bar_write(struct vfk_dev *dev, unsigned bar, uint64_t off,
			const void *buf, uint32_t count)
{
	struct pt *p = vfk_dev_user(dev);

	return vfk_region_write(p->kd, bar, off, buf, count);
}

/* The kernel's command register follows the model's: decoding and bus
 * mastering must be on in the real device for the client's accesses and
 * DMA to work (vfio-pci passes these bits through). */
static void sync_command(struct pt *p)
{
	uint16_t cmd = (uint16_t)vfk_config_read(p->dev, PCI_COMMAND, 2);
	int rc = vfk_device_config_write(p->kd, PCI_COMMAND, &cmd, 2);

	if (rc)
		pt_log(p, VFK_LOG_WARN, "command register %#x not forwarded: %s", cmd,
		       vfk_strerror(rc));
}

static void pt_config_written(struct vfk_dev *dev, uint32_t off, uint32_t count)
{
	struct pt *p = vfk_dev_user(dev);

	if (off < PCI_COMMAND + 2 && off + count > PCI_COMMAND)
		sync_command(p);
}

static int kernel_irq_off(struct pt *p)
{
	int rc = 0;

	if (p->kernel_index >= 0)
		rc = vfk_device_irq_disable(p->kd, (uint32_t)p->kernel_index);
	if (rc)
		pt_log(p, VFK_LOG_WARN, "disabling IRQ index %d: %s", p->kernel_index,
		       vfk_strerror(rc));
	p->kernel_index = -1;
	p->kernel_nvec = 0;
	return rc;
}

/* Make the kernel signal the client's eventfds for what the client set up. */
static void sync_irqs(struct pt *p)
{
	int active = vfk_irq_active(p->dev), fds[2048];
	unsigned n = 0, count;
	int rc;

	if (active < 0 || active > VFK_PCI_MSIX) {
		kernel_irq_off(p);
		return;
	}
	count = p->nvec[active];
	if (count > 2048)
		count = 2048;
	for (unsigned v = 0; v < count; v++) {
		fds[v] = vfk_irq_eventfd(p->dev, (unsigned)active, v);
		if (fds[v] >= 0)
			n = v + 1;
	}
	if (!n) {
		kernel_irq_off(p);
		return;
	}
	/* vfio-pci cannot grow an enabled MSI/MSI-X block without dynamic
	 * MSI-X, nor switch types: start over then. */
	if (p->kernel_index != active || p->kernel_nvec < n)
		kernel_irq_off(p);
	else
		n = p->kernel_nvec;
	rc = vfk_device_irq_set_eventfds(p->kd, (uint32_t)active, 0, n, fds);
	if (rc) {
		pt_log(p, VFK_LOG_ERR, "IRQ index %d: kernel SET_IRQS of %u vectors: %s", active,
		       n, vfk_strerror(rc));
		return;
	}
	p->kernel_index = active;
	p->kernel_nvec = n;
	if (active == VFK_PCI_INTX) {
		/* The kernel masks INTx when it fires; the client's unmask
		 * arrives here as a change of the set-up. */
		vfk_device_irq_mask(p->kd, VFK_PCI_INTX, 0, 1, false);
	}
}

static void pt_irq_changed(struct vfk_dev *dev, unsigned index)
{
	struct pt *p = vfk_dev_user(dev);

	(void)index;
	sync_irqs(p);
}

static int pt_reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	struct pt *p = vfk_dev_user(dev);
	int rc = vfk_device_reset(p->kd);

	if (rc)
		pt_log(p, VFK_LOG_WARN, "kernel reset (%s): %s",
		       kind == VFK_RESET_FLR ? "FLR" : "DEVICE_RESET", vfk_strerror(rc));
	/* The model's config space is back at power-on; so must the real
	 * device's command register be. */
	sync_command(p);
	return rc;
}

static int pt_dma_map(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	struct pt *p = vfk_dev_user(dev);
	struct vfk_dma_mapping m = { .iova = w->iova, .size = w->size, .vaddr = w->host,
				     .fd = -1 };
	int rc;

	if (!w->host) {
		pt_log(p, VFK_LOG_WARN,
		       "DMA window %#llx+%#llx refused: it has no fd, and the kernel IOMMU can only map memory this process has mapped (share the memory, e.g. QEMU share=on)",
		       (unsigned long long)w->iova, (unsigned long long)w->size);
		return -EPERM;
	}
	if (w->prot & VFK_PROT_READ)
		m.prot |= VFK_DMA_READ;
	if (w->prot & VFK_PROT_WRITE)
		m.prot |= VFK_DMA_WRITE;
	rc = vfk_device_dma_map(p->kd, &m);
	if (rc)
		pt_log(p, VFK_LOG_WARN, "DMA window %#llx+%#llx: kernel map failed: %s",
		       (unsigned long long)w->iova, (unsigned long long)w->size,
		       vfk_strerror(rc));
	return rc;
}

static void pt_dma_unmap(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	struct pt *p = vfk_dev_user(dev);
	int rc;

	if (!w->host)
		return; /* never mapped */
	rc = vfk_device_dma_unmap(p->kd, w->iova, w->size);
	if (rc)
		pt_log(p, VFK_LOG_ERR, "DMA window %#llx+%#llx: kernel unmap failed: %s",
		       (unsigned long long)w->iova, (unsigned long long)w->size,
		       vfk_strerror(rc));
}

static void pt_detach(struct vfk_dev *dev)
{
	struct pt *p = vfk_dev_user(dev);

	kernel_irq_off(p);
	vfk_device_dma_unmap_all(p->kd);
	/* The next client finds the device as a new one would. */
	vfk_device_reset(p->kd);
	sync_command(p);
}

static const struct vfk_dev_ops pt_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "passthrough",
	.bar_read = pt_bar_read,
	.bar_write = pt_bar_write,
	.config_written = pt_config_written,
	.reset = pt_reset,
	.dma_map = pt_dma_map,
	.dma_unmap = pt_dma_unmap,
	.detach = pt_detach,
	.irq_changed = pt_irq_changed,
};

/* ---- building the device ---- */

static int add_bars(struct pt *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	for (unsigned i = 0; i < 6; i++) {
		struct vfk_region_info ri;
		struct vfk_bar_desc bd = { 0 };
		uint32_t reg = rd32(p->cfg, PCI_BASE_ADDRESS_0 + 4 * i);
		int rc = vfk_region_get_info(p->kd, i, &ri);

		if (rc)
			return rc;
		if (!ri.size)
			continue;
		bd.size = ri.size;
		if (reg & PCI_BASE_ADDRESS_SPACE_IO) {
			bd.flags = VFK_BAR_IO;
		} else {
			bd.flags = VFK_BAR_CALLBACK_ACCESS;
			if ((reg & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64)
				bd.flags |= VFK_BAR_MEM64;
			if (reg & PCI_BASE_ADDRESS_MEM_PREFETCH)
				bd.flags |= VFK_BAR_PREFETCH;
		}
		if (ri.mappable && !(bd.flags & VFK_BAR_IO)) {
			size_t len = ((size_t)ri.size + page - 1) & ~(page - 1);
			uint64_t at = 0;
			unsigned nt = 0;

			rc = vfk_region_fd(p->kd, i);
			if (rc >= 0)
				rc = vfk_shm_from_fd_range(rc, ri.offset, len, true, &p->shm[i]);
			if (rc) {
				pt_log(p, VFK_LOG_WARN, "BAR%u: mmap of the kernel's region failed (%s); trapped",
				       i, vfk_strerror(rc));
				p->shm[i] = NULL;
			} else {
				/* What the kernel does not let us map stays trapped. */
				for (unsigned a = 0; a <= ri.nr_areas && nt < MAX_TRAPS; a++) {
					uint64_t end = a < ri.nr_areas ? ri.areas[a].offset : ri.size;

					if (end > at) {
						p->traps[i][nt].offset = at;
						p->traps[i][nt].size = end - at;
						nt++;
					}
					if (a < ri.nr_areas)
						at = ri.areas[a].offset + ri.areas[a].size;
				}
				bd.shm = p->shm[i];
				bd.trapped = p->traps[i];
				bd.nr_trapped = nt;
			}
		}
		rc = vfk_dev_set_bar(p->dev, i, &bd);
		if (rc) {
			pt_log(p, VFK_LOG_ERR, "BAR%u (%#llx bytes, %s): cannot be described: %s", i,
			       (unsigned long long)ri.size,
			       (bd.flags & VFK_BAR_IO) ? "I/O" : "memory", vfk_strerror(rc));
			return rc;
		}
		if (bd.flags & VFK_BAR_MEM64)
			i++;
	}
	return 0;
}

static int add_rom(struct pt *p)
{
	struct vfk_region_info ri;
	uint8_t *img;
	int rc = vfk_region_get_info(p->kd, VFK_PCI_ROM, &ri);

	if (rc || !ri.size)
		return 0;
	if (ri.size > (16u << 20)) {
		pt_log(p, VFK_LOG_WARN, "ROM of %#llx bytes not passed through",
		       (unsigned long long)ri.size);
		return 0;
	}
	img = malloc((size_t)ri.size);
	if (!img)
		return -ENOMEM;
	rc = vfk_region_read(p->kd, VFK_PCI_ROM, 0, img, (size_t)ri.size);
	if (!rc)
		rc = vfk_dev_set_rom(p->dev, img, (size_t)ri.size);
	if (rc)
		pt_log(p, VFK_LOG_WARN, "ROM not passed through: %s", vfk_strerror(rc));
	free(img);
	return 0;
}

static int add_caps(struct pt *p)
{
	unsigned off, guard = 0;
	int rc = 0;

	if (!(rd16(p->cfg, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	for (off = p->cfg[PCI_CAPABILITY_LIST] & ~3u; off >= 0x40 && off < 0xfc && !rc;
	     off = p->cfg[off + 1] & ~3u) {
		uint8_t id = p->cfg[off];

		if (++guard > 48)
			break; /* a looping chain */
		switch (id) {
		case PCI_CAP_ID_PM:
			rc = vfk_pci_add_pm(p->dev);
			break;
		case PCI_CAP_ID_MSI: {
			uint16_t f = rd16(p->cfg, off + PCI_MSI_FLAGS);
			unsigned nvec = 1u << ((f & PCI_MSI_FLAGS_QMASK) >> 1);

			if (nvec > 32)
				nvec = 32;
			rc = vfk_pci_add_msi(p->dev, nvec,
					     ((f & PCI_MSI_FLAGS_64BIT) ? VFK_MSI_64BIT : 0) |
					     ((f & PCI_MSI_FLAGS_MASKBIT) ? VFK_MSI_MASKABLE : 0));
			p->nvec[VFK_PCI_MSI] = nvec;
			break;
		}
		case PCI_CAP_ID_MSIX: {
			uint16_t f = rd16(p->cfg, off + PCI_MSIX_FLAGS);
			uint32_t t = rd32(p->cfg, off + PCI_MSIX_TABLE);
			uint32_t b = rd32(p->cfg, off + PCI_MSIX_PBA);
			unsigned nvec = (f & PCI_MSIX_FLAGS_QSIZE) + 1;

			rc = vfk_pci_add_msix(p->dev, nvec, t & PCI_MSIX_TABLE_BIR,
					      t & PCI_MSIX_TABLE_OFFSET, b & PCI_MSIX_PBA_BIR,
					      b & PCI_MSIX_PBA_OFFSET);
			p->nvec[VFK_PCI_MSIX] = nvec;
			break;
		}
		case PCI_CAP_ID_EXP: {
			unsigned type = (rd16(p->cfg, off + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_TYPE) >> 4;
			uint32_t devcap = rd32(p->cfg, off + PCI_EXP_DEVCAP);

			if (type != VFK_PCIE_ENDPOINT && type != VFK_PCIE_LEGACY_ENDPOINT &&
			    type != VFK_PCIE_RC_INTEGRATED) {
				pt_log(p, VFK_LOG_ERR,
				       "PCI Express port type %u is not an endpoint: ports and bridges cannot be passed through",
				       type);
				return -ENOTSUP;
			}
			rc = vfk_pci_add_express(p->dev, (enum vfk_pcie_type)type,
						 (devcap & PCI_EXP_DEVCAP_FLR) ? VFK_PCIE_FLR : 0);
			p->express = !rc;
			break;
		}
		case PCI_CAP_ID_AF:
			if (p->cfg[off + PCI_AF_CAP] & PCI_AF_CAP_FLR)
				rc = vfk_pci_add_af(p->dev);
			break;
		case PCI_CAP_ID_VNDR: {
			uint8_t len = p->cfg[off + 2];

			if (len > 3 && len - 3u <= 250 && off + len <= 256)
				rc = vfk_pci_add_vendor(p->dev, p->cfg + off + 3,
							(uint8_t)(len - 3), NULL);
			break;
		}
		default:
			pt_log(p, VFK_LOG_INFO, "capability %#x at %#x not passed through", id, off);
			break;
		}
		if (rc)
			pt_log(p, VFK_LOG_ERR, "capability %#x at %#x: %s", id, off, vfk_strerror(rc));
	}
	/* Extended capabilities: only the serial number, which is plain data;
	 * the others (AER, ACS, ...) control the real device's behaviour. */
	if (!rc && p->express && p->cfg_size > 0x100) {
		guard = 0;
		for (off = 0x100; off && off + 4 <= p->cfg_size && !rc && ++guard < 64;) {
			uint32_t h = rd32(p->cfg, off);
			unsigned next = (h >> 20) & 0xffc;

			if (!h || h == 0xffffffff)
				break;
			if ((h & 0xffff) == PCI_EXT_CAP_ID_DSN && off + 12 <= p->cfg_size)
				rc = vfk_pci_add_ext_cap(p->dev, PCI_EXT_CAP_ID_DSN, (h >> 16) & 0xf,
							 p->cfg + off + 4, 8, NULL);
			else
				pt_log(p, VFK_LOG_INFO, "extended capability %#x at %#x not passed through",
				       h & 0xffff, off);
			if (next <= off)
				break;
			off = next;
		}
	}
	return rc;
}

static void pt_free(struct pt *p)
{
	if (p->dev)
		vfk_dev_destroy(p->dev);
	for (unsigned i = 0; i < 6; i++)
		if (p->shm[i])
			vfk_shm_put(p->shm[i]);
	if (p->kd)
		vfk_device_close(p->kd);
	free(p);
}

int passthrough_create(const struct passthrough_opts *o, struct vfk_dev **out)
{
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION };
	struct vfk_region_info cri;
	struct vfk_kernel_info ki;
	struct vfk_pci_id id;
	struct pt *p;
	int rc;

	if (!o || !o->device)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->log = o->log;
	p->log_user = o->log_user;
	p->kernel_index = -1;
	co.log = o->log;
	co.log_user = o->log_user;
	co.sys = o->sys;
	rc = vfk_device_open_pci(o->device, o->open_flags, &co, &p->kd);
	if (rc) {
		pt_log(p, VFK_LOG_ERR, "%s: cannot open through VFIO: %s", o->device,
		       vfk_strerror(rc));
		goto fail;
	}
	rc = vfk_device_kernel_info(p->kd, &ki);
	if (rc)
		goto fail;
	if (ki.group_devices > 1) {
		pt_log(p, VFK_LOG_ERR,
		       "%s: IOMMU group %d holds %u devices; DMA windows of the client would reach all of them, so only a device alone in its group is passed through",
		       o->device, ki.group, ki.group_devices);
		rc = -EBUSY;
		goto fail;
	}
	rc = vfk_region_get_info(p->kd, VFK_PCI_CONFIG, &cri);
	if (rc)
		goto fail;
	p->cfg_size = cri.size < sizeof(p->cfg) ? (size_t)cri.size : sizeof(p->cfg);
	if (p->cfg_size < 64) {
		rc = -EPROTO;
		goto fail;
	}
	for (size_t i = 0; i < p->cfg_size && !rc; i += 4)
		rc = vfk_device_config_read(p->kd, (uint32_t)i, p->cfg + i, 4);
	if (rc)
		goto fail;
	if ((p->cfg[PCI_HEADER_TYPE] & 0x7f) != PCI_HEADER_TYPE_NORMAL) {
		pt_log(p, VFK_LOG_ERR, "%s: header type %u is not a type-0 function: bridges cannot be passed through",
		       o->device, p->cfg[PCI_HEADER_TYPE] & 0x7f);
		rc = -ENOTSUP;
		goto fail;
	}
	rc = vfk_dev_create(&pt_ops, p, &p->dev);
	if (rc)
		goto fail;
	id.vendor = rd16(p->cfg, PCI_VENDOR_ID);
	id.device = rd16(p->cfg, PCI_DEVICE_ID);
	id.subsys_vendor = rd16(p->cfg, PCI_SUBSYSTEM_VENDOR_ID);
	id.subsys_device = rd16(p->cfg, PCI_SUBSYSTEM_ID);
	id.class_code = rd32(p->cfg, PCI_CLASS_REVISION) >> 8;
	id.revision = p->cfg[PCI_REVISION_ID];
	rc = vfk_pci_set_id(p->dev, &id);
	if (!rc)
		rc = vfk_pci_set_intx_pin(p->dev, p->cfg[PCI_INTERRUPT_PIN] <= 4 ?
							 p->cfg[PCI_INTERRUPT_PIN] : 0);
	p->nvec[VFK_PCI_INTX] = p->cfg[PCI_INTERRUPT_PIN] ? 1 : 0;
	if (!rc)
		rc = add_bars(p);
	if (!rc)
		rc = add_rom(p);
	if (!rc)
		rc = add_caps(p);
	if (!rc)
		rc = vfk_dev_realize(p->dev);
	if (rc)
		goto fail;
	pt_log(p, VFK_LOG_INFO, "%s: %04x:%04x class %06x through %s, group %d", o->device,
	       id.vendor, id.device, id.class_code, vfk_device_transport(p->kd), ki.group);
	*out = p->dev;
	return 0;
fail:
	pt_free(p);
	return rc;
}

void passthrough_destroy(struct vfk_dev *dev)
{
	struct pt *p;

	if (!dev)
		return;
	p = vfk_dev_user(dev);
	kernel_irq_off(p);
	pt_free(p);
}
