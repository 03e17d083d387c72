/* SPDX-License-Identifier: MIT */
/* subpage device model: see subpage.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "subpage.h"

struct subpage {
	struct vfk_shm *aperture, *regs;
	uint32_t scratch;
};

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		    uint32_t count)
{
	struct subpage *s = vfk_dev_user(dev);
	uint64_t v = 0x5355425000000000ull | s->scratch; /* "SUBP" in the top half */
	uint8_t *b = buf;

	if (bar != 5)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		/* 0x0: id (upper word of v), 0x4: scratch. */
		b[i] = o < 4 ? (uint8_t)(v >> (32 + 8 * o))
			     : o < 8 ? (uint8_t)(s->scratch >> (8 * (o - 4))) : 0;
	}
	return 0;
}

static int bar_write(struct vfk_dev *dev, unsigned bar, uint64_t off,
		     const void *buf, uint32_t count)
{
	struct subpage *s = vfk_dev_user(dev);
	const uint8_t *b = buf;

	if (bar != 5)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++)
		if (off + i >= 4 && off + i < 8) {
			unsigned sh = (unsigned)(8 * (off + i - 4));

			s->scratch = (s->scratch & ~(0xffu << sh)) | ((uint32_t)b[i] << sh);
		}
	return 0;
}

static int reset(struct vfk_dev *dev, enum vfk_reset_kind kind)
{
	struct subpage *s = vfk_dev_user(dev);

	(void)kind;
	s->scratch = 0;
	return 0;
}

static const struct vfk_dev_ops subpage_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "subpage",
	.bar_read = bar_read,
	.bar_write = bar_write,
	.reset = reset,
};

int subpage_create(const struct subpage_opts *o, struct vfk_dev **out)
{
	static const struct vfk_pci_id id = {
		.vendor = SUBPAGE_VENDOR, .device = SUBPAGE_DEVICE,
		.subsys_vendor = SUBPAGE_VENDOR, .subsys_device = 0x0001,
		.class_code = 0x0c0330, /* USB xHCI, as in the thread's example */
		.revision = 1,
	};
	struct subpage_opts defaults = { 0 };
	struct subpage *s;
	struct vfk_dev *dev = NULL;
	int rc;

	if (!o)
		o = &defaults;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if ((rc = vfk_dev_create(&subpage_ops, s, &dev)))
		goto fail;
	if (o->page_size && (rc = vfk_dev_set_page_size(dev, o->page_size)))
		goto fail;
	if ((rc = vfk_pci_set_id(dev, &id)) ||
	    (rc = vfk_dev_set_policy(dev, &o->policy)))
		goto fail;
	/* One aperture holds BAR0-3, as one device's MMIO window on the host
	 * would; a 64K host page then spans all of them. */
	if ((rc = vfk_shm_create(SUBPAGE_APERTURE, "subpage-aperture", &s->aperture)))
		goto fail;
	for (unsigned i = 0; i < 3; i++) {
		rc = vfk_dev_set_bar(dev, i, &(struct vfk_bar_desc){
			.size = 256, .shm = s->aperture, .shm_offset = 0x1000u * i });
		if (rc)
			goto fail;
	}
	rc = vfk_dev_set_bar(dev, 3, &(struct vfk_bar_desc){
		.size = 256, .shm = s->aperture, .shm_offset = SUBPAGE_BAR3_OFFSET });
	if (rc)
		goto fail;
	/* BAR4 gets memory of its own, a page of the assumed size at least,
	 * so the only obstacle to mapping it is the MSI-X table. */
	rc = vfk_shm_create(o->page_size > 0x2000 ? o->page_size : 0x2000, "subpage-bar4",
			    &s->regs);
	if (rc)
		goto fail;
	if ((rc = vfk_dev_set_bar(dev, 4, &(struct vfk_bar_desc){
		     .size = 0x2000, .shm = s->regs })) ||
	    (rc = vfk_dev_set_bar(dev, 5, &(struct vfk_bar_desc){ .size = 4096 })) ||
	    (rc = vfk_pci_add_pm(dev)) ||
	    (rc = vfk_pci_add_msix(dev, 4, 4, 0x1000, 4, 0x1800)) ||
	    (rc = vfk_pci_add_af(dev)) ||
	    (rc = vfk_dev_realize(dev)))
		goto fail;
	*out = dev;
	return 0;
fail:
	vfk_dev_destroy(dev);
	vfk_shm_put(s->aperture);
	vfk_shm_put(s->regs);
	free(s);
	return rc;
}

void subpage_destroy(struct vfk_dev *dev)
{
	struct subpage *s;

	if (!dev)
		return;
	s = vfk_dev_user(dev);
	vfk_dev_destroy(dev);
	vfk_shm_put(s->aperture);
	vfk_shm_put(s->regs);
	free(s);
}
