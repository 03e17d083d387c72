/* SPDX-License-Identifier: MIT */
/*
 * Capability chain builder: standard capabilities from 0x40 up, extended
 * ones from 0x100, each with the register layout and write permissions of
 * the PCI and PCI Express specifications.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "internal.h"

/* Reserve `len` bytes for a standard capability and link it. */
static int std_cap_alloc(struct vfk_dev *dev, uint8_t id, unsigned len,
			 uint16_t *off_out)
{
	uint16_t off = (uint16_t)((dev->std_cap_next + 3) & ~3u);

	if (dev->realized)
		return -EBUSY;
	if (len < 2 || off + len > PCI_CFG_SPACE_SIZE)
		return -ENOSPC;
	if (dev->std_cap_last)
		dev->cfg[dev->std_cap_last + PCI_CAP_LIST_NEXT] = (uint8_t)off;
	else
		dev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
	memset(dev->cfg + off, 0, len);
	memset(dev->wmask + off, 0, len);
	memset(dev->w1c + off, 0, len);
	dev->cfg[off + PCI_CAP_LIST_ID] = id;
	dev->std_cap_last = off;
	dev->std_cap_next = (uint16_t)(off + len);
	*off_out = off;
	return 0;
}

static void wm16(struct vfk_dev *dev, uint32_t off, uint16_t wm)
{
	put16(dev->wmask + off, wm);
}

static void wm32(struct vfk_dev *dev, uint32_t off, uint32_t wm)
{
	put32(dev->wmask + off, wm);
}

/* ---- Power management ---- */

static void pm_written(struct vfk_dev *dev, uint32_t off, uint32_t len,
		       const uint8_t *old)
{
	uint32_t csr = dev->pm_off + PCI_PM_CTRL;
	uint16_t v = cfg_get16(dev, csr);

	(void)off;
	(void)len;
	(void)old;
	/* D1 and D2 are not supported: hardware ignores such a write. */
	if ((v & PCI_PM_CTRL_STATE_MASK) == 1 || (v & PCI_PM_CTRL_STATE_MASK) == 2) {
		uint16_t prev = (uint16_t)(old[csr] | (old[csr + 1] << 8));

		if (off > csr || off + len <= csr)
			prev = v; /* the state byte was not written */
		put16(dev->cfg + csr, (uint16_t)((v & ~PCI_PM_CTRL_STATE_MASK) |
						 (prev & PCI_PM_CTRL_STATE_MASK)));
	}
	/* D3hot turns decoding off, D0 back on (with the command register). */
	vfk_dev_sync_decode(dev);
}

int vfk_pci_add_pm(struct vfk_dev *dev)
{
	uint16_t off;
	int rc;

	if (dev->pm_off)
		return -EEXIST;
	rc = std_cap_alloc(dev, PCI_CAP_ID_PM, PCI_PM_SIZEOF, &off);
	if (rc)
		return rc;
	put16(dev->cfg + off + PCI_PM_PMC, 3 /* PM 1.2 */);
	/* NoSoftRst: leaving D3hot keeps state, so a guest need not restore. */
	put16(dev->cfg + off + PCI_PM_CTRL, PCI_PM_CTRL_NO_SOFT_RESET);
	wm16(dev, off + PCI_PM_CTRL, PCI_PM_CTRL_STATE_MASK);
	dev->pm_off = off;
	return vfk_cfg_add_hook(dev, (uint16_t)(off + PCI_PM_CTRL), 2, pm_written);
}

/* ---- MSI ---- */

static void msi_written(struct vfk_dev *dev, uint32_t off, uint32_t len,
			const uint8_t *old)
{
	(void)off;
	(void)len;
	(void)old;
	vfk_msi_config_written(dev);
}

int vfk_pci_add_msi(struct vfk_dev *dev, unsigned nvec, uint32_t flags)
{
	bool is64 = flags & VFK_MSI_64BIT, mask = flags & VFK_MSI_MASKABLE;
	unsigned len = 10 + (is64 ? 4 : 0) + (mask ? 10 : 0);
	uint16_t off, ctrl = 0;
	unsigned log2n = 0;
	int rc;

	if (dev->msi_off)
		return -EEXIST;
	if (flags & ~(VFK_MSI_64BIT | VFK_MSI_MASKABLE))
		return -EINVAL;
	if (nvec == 0 || nvec > 32 || (nvec & (nvec - 1)))
		return -EINVAL;
	while ((1u << log2n) < nvec)
		log2n++;
	rc = std_cap_alloc(dev, PCI_CAP_ID_MSI, len, &off);
	if (rc)
		return rc;
	ctrl = (uint16_t)(log2n << 1);
	if (is64)
		ctrl |= PCI_MSI_FLAGS_64BIT;
	if (mask)
		ctrl |= PCI_MSI_FLAGS_MASKBIT;
	put16(dev->cfg + off + PCI_MSI_FLAGS, ctrl);
	wm16(dev, off + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	wm32(dev, off + PCI_MSI_ADDRESS_LO, 0xfffffffcu);
	if (is64) {
		wm32(dev, off + PCI_MSI_ADDRESS_HI, 0xffffffffu);
		wm16(dev, off + PCI_MSI_DATA_64, 0xffff);
	} else {
		wm16(dev, off + PCI_MSI_DATA_32, 0xffff);
	}
	if (mask)
		wm32(dev, off + (is64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32),
		     nvec == 32 ? 0xffffffffu : (1u << nvec) - 1);
	dev->msi_off = off;
	dev->msi_nvec = nvec;
	dev->msi_flags = flags;
	return vfk_cfg_add_hook(dev, off, (uint16_t)len, msi_written);
}

/* ---- MSI-X ---- */

static void msix_written(struct vfk_dev *dev, uint32_t off, uint32_t len,
			 const uint8_t *old)
{
	(void)off;
	(void)len;
	(void)old;
	vfk_msix_control_written(dev);
}

int vfk_pci_add_msix(struct vfk_dev *dev, unsigned nvec, unsigned table_bar,
		     uint32_t table_offset, unsigned pba_bar,
		     uint32_t pba_offset)
{
	uint16_t off;
	int rc;

	if (dev->msix_off)
		return -EEXIST;
	if (nvec == 0 || nvec > 2048 || table_bar >= MAX_BARS ||
	    pba_bar >= MAX_BARS || (table_offset & 7) || (pba_offset & 7))
		return -EINVAL;
	rc = std_cap_alloc(dev, PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF, &off);
	if (rc)
		return rc;
	dev->msix_table = calloc(nvec, PCI_MSIX_ENTRY_SIZE);
	dev->msix_pba = calloc((nvec + 63) / 64, sizeof(uint64_t));
	if (!dev->msix_table || !dev->msix_pba) {
		free(dev->msix_table);
		free(dev->msix_pba);
		dev->msix_table = NULL;
		dev->msix_pba = NULL;
		return -ENOMEM;
	}
	put16(dev->cfg + off + PCI_MSIX_FLAGS, (uint16_t)(nvec - 1));
	/* Function Mask is the client's; Enable follows SET_IRQS, as in
	 * vfio-pci, where MSI-X is only ever enabled through the ioctl. */
	wm16(dev, off + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_MASKALL);
	put32(dev->cfg + off + PCI_MSIX_TABLE, table_offset | table_bar);
	put32(dev->cfg + off + PCI_MSIX_PBA, pba_offset | pba_bar);
	dev->msix_off = off;
	dev->msix_nvec = nvec;
	dev->msix_table_bar = table_bar;
	dev->msix_table_off = table_offset;
	dev->msix_pba_bar = pba_bar;
	dev->msix_pba_off = pba_offset;
	return vfk_cfg_add_hook(dev, (uint16_t)(off + PCI_MSIX_FLAGS), 2,
				msix_written);
}

/* ---- PCI Express ---- */

static void exp_written(struct vfk_dev *dev, uint32_t off, uint32_t len,
			const uint8_t *old)
{
	uint32_t ctl = dev->pcie_off + PCI_EXP_DEVCTL;
	uint16_t v = cfg_get16(dev, ctl);

	(void)old;
	if (off >= ctl + 2 || off + len <= ctl)
		return;
	if (v & PCI_EXP_DEVCTL_BCR_FLR) {
		/* "Initiate FLR" always reads 0; the reset runs once the
		 * write is complete. */
		put16(dev->cfg + ctl, (uint16_t)(v & ~PCI_EXP_DEVCTL_BCR_FLR));
		if (dev->pcie_flags & VFK_PCIE_FLR)
			dev->flr_requested = true;
	}
}

int vfk_pci_add_express(struct vfk_dev *dev, enum vfk_pcie_type type,
			uint32_t flags)
{
	uint32_t devcap = 1 /* 256-byte payload */ | PCI_EXP_DEVCAP_RBER;
	uint16_t off, devctl_wm;
	int rc;

	if (dev->pcie_off)
		return -EEXIST;
	if (flags & ~VFK_PCIE_FLR)
		return -EINVAL;
	if (type != VFK_PCIE_ENDPOINT && type != VFK_PCIE_LEGACY_ENDPOINT &&
	    type != VFK_PCIE_RC_INTEGRATED)
		return -EINVAL;
	rc = std_cap_alloc(dev, PCI_CAP_ID_EXP, PCI_CAP_EXP_ENDPOINT_SIZEOF_V2, &off);
	if (rc)
		return rc;
	if (flags & VFK_PCIE_FLR)
		devcap |= PCI_EXP_DEVCAP_FLR;
	put16(dev->cfg + off + PCI_EXP_FLAGS, (uint16_t)(2 | (type << 4)));
	put32(dev->cfg + off + PCI_EXP_DEVCAP, devcap);
	/* Reset values of a typical endpoint: relaxed ordering, no snoop,
	 * 512-byte read requests. */
	put16(dev->cfg + off + PCI_EXP_DEVCTL,
	      PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | 0x2000);
	devctl_wm = PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE |
		    PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE |
		    PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD |
		    PCI_EXP_DEVCTL_EXT_TAG | PCI_EXP_DEVCTL_AUX_PME |
		    PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ;
	if (flags & VFK_PCIE_FLR)
		devctl_wm |= PCI_EXP_DEVCTL_BCR_FLR;
	wm16(dev, off + PCI_EXP_DEVCTL, devctl_wm);
	put16(dev->w1c + off + PCI_EXP_DEVSTA, 0x000f);
	if (type != VFK_PCIE_RC_INTEGRATED) {
		/* One lane at 2.5 GT/s: honest for an emulated device. */
		put32(dev->cfg + off + PCI_EXP_LNKCAP, 0x11);
		put16(dev->cfg + off + PCI_EXP_LNKSTA, 0x11);
		wm16(dev, off + PCI_EXP_LNKCTL, 0x0043);
		put32(dev->cfg + off + PCI_EXP_LNKCAP2, 0x2);
		put16(dev->cfg + off + PCI_EXP_LNKCTL2, 0x1);
		wm16(dev, off + PCI_EXP_LNKCTL2, 0x000f);
	}
	wm16(dev, off + PCI_EXP_DEVCTL2, 0x001f);
	dev->pcie_off = off;
	dev->pcie_flags = flags;
	dev->cfg_size = CFG_SPACE_SIZE;
	return vfk_cfg_add_hook(dev, (uint16_t)(off + PCI_EXP_DEVCTL), 2,
				exp_written);
}

/* ---- Advanced Features (FLR for conventional PCI) ---- */

static void af_written(struct vfk_dev *dev, uint32_t off, uint32_t len,
		       const uint8_t *old)
{
	uint32_t ctl = dev->af_off + PCI_AF_CTRL;

	(void)old;
	if (off > ctl || off + len <= ctl)
		return;
	if (dev->cfg[ctl] & PCI_AF_CTRL_FLR) {
		dev->cfg[ctl] &= (uint8_t)~PCI_AF_CTRL_FLR; /* reads as 0 */
		dev->flr_requested = true;
	}
}

int vfk_pci_add_af(struct vfk_dev *dev)
{
	uint16_t off;
	int rc;

	if (dev->af_off)
		return -EEXIST;
	rc = std_cap_alloc(dev, PCI_CAP_ID_AF, PCI_CAP_AF_SIZEOF, &off);
	if (rc)
		return rc;
	dev->cfg[off + PCI_AF_LENGTH] = PCI_CAP_AF_SIZEOF;
	/* Transactions Pending (always clear here) and FLR supported. */
	dev->cfg[off + PCI_AF_CAP] = PCI_AF_CAP_TP | PCI_AF_CAP_FLR;
	dev->wmask[off + PCI_AF_CTRL] = PCI_AF_CTRL_FLR;
	dev->af_off = off;
	return vfk_cfg_add_hook(dev, (uint16_t)(off + PCI_AF_CTRL), 1, af_written);
}

/* ---- vendor-specific and extended ---- */

int vfk_pci_add_vendor(struct vfk_dev *dev, const void *data, uint8_t len,
		       uint16_t *offset)
{
	uint16_t off;
	int rc;

	if (len > 250 || (len && !data))
		return -EINVAL;
	rc = std_cap_alloc(dev, PCI_CAP_ID_VNDR, 3u + len, &off);
	if (rc)
		return rc;
	dev->cfg[off + 2] = (uint8_t)(3 + len);
	if (len)
		memcpy(dev->cfg + off + 3, data, len);
	if (offset)
		*offset = off;
	return 0;
}

int vfk_pci_add_ext_cap(struct vfk_dev *dev, uint16_t id, uint8_t version,
			const void *body, uint16_t len, uint16_t *offset)
{
	uint16_t off = (uint16_t)((dev->ext_cap_next + 3) & ~3u);

	if (dev->realized)
		return -EBUSY;
	if (!dev->pcie_off)
		return -EINVAL; /* extended space exists only on PCI Express */
	if (version > 0xf || (len && !body))
		return -EINVAL;
	if (off + 4u + len > CFG_SPACE_SIZE)
		return -ENOSPC;
	if (dev->ext_cap_last) {
		uint32_t h = cfg_get32(dev, dev->ext_cap_last);

		h = (h & 0x000fffffu) | ((uint32_t)off << 20);
		put32(dev->cfg + dev->ext_cap_last, h);
	}
	put32(dev->cfg + off, (uint32_t)id | ((uint32_t)version << 16));
	if (len)
		memcpy(dev->cfg + off + 4, body, len);
	dev->ext_cap_last = off;
	dev->ext_cap_next = (uint16_t)(off + 4 + len);
	if (offset)
		*offset = off;
	return 0;
}
