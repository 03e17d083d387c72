/* SPDX-License-Identifier: MIT */
/*
 * Config space: a virtual copy with per-byte writable and write-1-to-clear
 * masks, fully emulated BAR sizing, and write hooks for capabilities with
 * side effects.  The model follows Linux's vfio_pci_config.c in what a
 * client may change; unlike Linux there is no hardware behind the virtual
 * copy, so every bit is "virtualized".
 */
#include <errno.h>
#include <string.h>

#include <linux/pci_regs.h>

#include <stdatomic.h>

#include "internal.h"

void vfk_cfg_init_header(struct vfk_dev *dev)
{
	memset(dev->cfg, 0, sizeof(dev->cfg));
	memset(dev->wmask, 0, sizeof(dev->wmask));
	memset(dev->w1c, 0, sizeof(dev->w1c));
	dev->cfg_size = CFG_LEGACY_SIZE;
	dev->std_cap_next = 0x40;
	dev->ext_cap_next = PCI_CFG_SPACE_SIZE;
}

/* Set `len` bytes of value and masks at `off`; NULL masks mean read-only. */
void vfk_cfg_set_bytes(struct vfk_dev *dev, uint32_t off, const void *v,
		       unsigned len, const uint8_t *wmask, const uint8_t *w1c)
{
	memcpy(dev->cfg + off, v, len);
	if (wmask)
		memcpy(dev->wmask + off, wmask, len);
	else
		memset(dev->wmask + off, 0, len);
	if (w1c)
		memcpy(dev->w1c + off, w1c, len);
	else
		memset(dev->w1c + off, 0, len);
}

static void set16(struct vfk_dev *dev, uint32_t off, uint16_t v, uint16_t wm,
		  uint16_t w1c)
{
	uint8_t a[2], b[2], c[2];

	put16(a, v);
	put16(b, wm);
	put16(c, w1c);
	vfk_cfg_set_bytes(dev, off, a, 2, b, c);
}

static void set32(struct vfk_dev *dev, uint32_t off, uint32_t v, uint32_t wm)
{
	uint8_t a[4], b[4];

	put32(a, v);
	put32(b, wm);
	vfk_cfg_set_bytes(dev, off, a, 4, b, NULL);
}

/* The BAR registers' read-only low bits: type and prefetchable. */
static uint32_t bar_type_bits(const struct bar_state *b)
{
	if (b->flags & VFK_BAR_IO)
		return PCI_BASE_ADDRESS_SPACE_IO;
	return ((b->flags & VFK_BAR_MEM64) ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
	       ((b->flags & VFK_BAR_PREFETCH) ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
}

void vfk_cfg_finish_header(struct vfk_dev *dev)
{
	uint16_t status = 0;
	bool has_io = false, has_mem = dev->rom != NULL;

	set16(dev, PCI_VENDOR_ID, dev->id.vendor, 0, 0);
	set16(dev, PCI_DEVICE_ID, dev->id.device, 0, 0);
	dev->cfg[PCI_REVISION_ID] = dev->id.revision;
	dev->cfg[PCI_CLASS_PROG] = (uint8_t)dev->id.class_code;
	dev->cfg[PCI_CLASS_DEVICE] = (uint8_t)(dev->id.class_code >> 8);
	dev->cfg[PCI_CLASS_DEVICE + 1] = (uint8_t)(dev->id.class_code >> 16);
	dev->cfg[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	set16(dev, PCI_SUBSYSTEM_VENDOR_ID, dev->id.subsys_vendor, 0, 0);
	set16(dev, PCI_SUBSYSTEM_ID, dev->id.subsys_device, 0, 0);

	for (unsigned i = 0; i < MAX_BARS; i++) {
		const struct bar_state *b = &dev->bars[i];
		uint32_t reg = PCI_BASE_ADDRESS_0 + 4 * i;

		if (!b->present)
			continue;
		if (b->flags & VFK_BAR_IO) {
			has_io = true;
			set32(dev, reg, bar_type_bits(b),
			      (uint32_t)~(b->size - 1) & PCI_BASE_ADDRESS_IO_MASK);
			continue;
		}
		has_mem = true;
		set32(dev, reg, bar_type_bits(b),
		      (uint32_t)~(b->size - 1) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK);
		if (b->flags & VFK_BAR_MEM64)
			set32(dev, reg + 4, 0, (uint32_t)(~(b->size - 1) >> 32));
	}
	if (dev->rom)
		set32(dev, PCI_ROM_ADDRESS, 0,
		      ((uint32_t)~(dev->rom_size - 1) & PCI_ROM_ADDRESS_MASK) |
			      PCI_ROM_ADDRESS_ENABLE);

	/* Command: decode enables, bus master, parity/SERR response and
	 * INTx disable are the client's; the rest is hard-wired to 0. */
	set16(dev, PCI_COMMAND, 0,
	      (has_io ? PCI_COMMAND_IO : 0) | (has_mem ? PCI_COMMAND_MEMORY : 0) |
		      PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
		      (dev->intx_pin ? PCI_COMMAND_INTX_DISABLE : 0),
	      0);
	if (dev->std_cap_last)
		status |= PCI_STATUS_CAP_LIST;
	/* Error bits are write-1-to-clear, as in hardware. */
	set16(dev, PCI_STATUS, status, 0,
	      PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
		      PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT |
		      PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY);
	dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	dev->wmask[PCI_LATENCY_TIMER] = 0xff;
	dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
	dev->cfg[PCI_INTERRUPT_PIN] = (uint8_t)dev->intx_pin;
	if (dev->pcie_off)
		dev->cfg_size = CFG_SPACE_SIZE;
}

int vfk_cfg_add_hook(struct vfk_dev *dev, uint16_t start, uint16_t len,
		     void (*write)(struct vfk_dev *, uint32_t, uint32_t,
				   const uint8_t *))
{
	if (dev->nr_hooks == MAX_CFG_HOOKS)
		return -ENOSPC;
	dev->hooks[dev->nr_hooks].start = start;
	dev->hooks[dev->nr_hooks].end = (uint16_t)(start + len);
	dev->hooks[dev->nr_hooks].write = write;
	dev->nr_hooks++;
	return 0;
}

int vfk_cfg_access(struct vfk_dev *dev, bool write, uint64_t off, void *buf,
		   uint32_t count)
{
	uint8_t old[CFG_SPACE_SIZE];
	const uint8_t *v = buf;
	uint16_t cmd_before;

	if (off >= dev->cfg_size || count > dev->cfg_size - off)
		return -EFAULT; /* what vfio-pci answers past config space */
	if (!write) {
		memcpy(buf, dev->cfg + off, count);
		if (off <= PCI_STATUS && off + count > PCI_STATUS && atomic_load(&dev->intx_status))
			((uint8_t *)buf)[PCI_STATUS - off] |= PCI_STATUS_INTERRUPT;
		return 0;
	}
	memcpy(old + off, dev->cfg + off, count);
	cmd_before = cfg_get16(dev, PCI_COMMAND);
	for (uint32_t i = 0; i < count; i++) {
		uint32_t o = (uint32_t)off + i;
		uint8_t nv = (uint8_t)((dev->cfg[o] & ~dev->wmask[o]) |
				       (v[i] & dev->wmask[o]));

		nv &= (uint8_t)~(v[i] & dev->w1c[o]);
		dev->cfg[o] = nv;
	}
	if (off < PCI_COMMAND + 2 && off + count > PCI_COMMAND) {
		uint16_t changed = cmd_before ^ cfg_get16(dev, PCI_COMMAND);

		if (changed & PCI_COMMAND_INTX_DISABLE)
			vfk_intx_command_written(dev);
		if (changed & PCI_COMMAND_MEMORY)
			vfk_dev_sync_decode(dev);
	}
	for (unsigned h = 0; h < dev->nr_hooks; h++) {
		const struct cfg_hook *hk = &dev->hooks[h];

		if (off < hk->end && off + count > hk->start)
			hk->write(dev, (uint32_t)off, count, old);
	}
	if (dev->ops->config_written)
		dev->ops->config_written(dev, (uint32_t)off, count);
	if (dev->flr_requested) {
		dev->flr_requested = false;
		return vfk_dev_do_reset(dev, VFK_RESET_FLR);
	}
	return 0;
}

uint32_t vfk_config_read(struct vfk_dev *dev, uint32_t offset, unsigned size)
{
	uint32_t v = 0;

	if ((size != 1 && size != 2 && size != 4) || offset >= CFG_SPACE_SIZE ||
	    size > CFG_SPACE_SIZE - offset)
		return 0xffffffffu;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)dev->cfg[offset + i] << (8 * i);
	if (offset <= PCI_STATUS && offset + size > PCI_STATUS &&
	    atomic_load(&dev->intx_status))
		v |= (uint32_t)PCI_STATUS_INTERRUPT << (8 * (PCI_STATUS - offset));
	return v;
}

int vfk_config_set(struct vfk_dev *dev, uint32_t offset, unsigned size,
		   uint32_t value)
{
	if ((size != 1 && size != 2 && size != 4) || offset >= CFG_SPACE_SIZE ||
	    size > CFG_SPACE_SIZE - offset)
		return -EINVAL;
	for (unsigned i = 0; i < size; i++)
		dev->cfg[offset + i] = (uint8_t)(value >> (8 * i));
	return 0;
}

int vfk_config_set_mask(struct vfk_dev *dev, uint32_t offset, unsigned size,
			uint32_t wmask, uint32_t w1c)
{
	if ((size != 1 && size != 2 && size != 4) || offset >= CFG_SPACE_SIZE ||
	    size > CFG_SPACE_SIZE - offset || (wmask & w1c))
		return -EINVAL;
	if (offset < 0x40)
		return -EPERM; /* the header belongs to the library */
	for (unsigned i = 0; i < size; i++) {
		dev->wmask[offset + i] = (uint8_t)(wmask >> (8 * i));
		dev->w1c[offset + i] = (uint8_t)(w1c >> (8 * i));
	}
	return 0;
}

/* In D3hot a function answers config cycles only: vfio-pci counts memory
 * as disabled there (__vfio_pci_memory_enabled), and so does vfiokit, for
 * I/O too. */
static bool in_d3hot(const struct vfk_dev *dev)
{
	return dev->pm_off &&
	       (cfg_get16(dev, dev->pm_off + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK) == 3;
}

bool vfk_dev_memory_enabled(struct vfk_dev *dev)
{
	return (cfg_get16(dev, PCI_COMMAND) & PCI_COMMAND_MEMORY) && !in_d3hot(dev);
}

bool vfk_dev_io_enabled(struct vfk_dev *dev)
{
	return (cfg_get16(dev, PCI_COMMAND) & PCI_COMMAND_IO) && !in_d3hot(dev);
}

bool vfk_dev_bus_master(struct vfk_dev *dev)
{
	return cfg_get16(dev, PCI_COMMAND) & PCI_COMMAND_MASTER;
}
