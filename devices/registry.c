/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "registry.h"
#include "devmem/devmem.h"
#include "dma-test/dma_test.h"
#include "nvme/nvme.h"
#include "passthrough/passthrough.h"
#include "subpage/subpage.h"

static int dma_test_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct dma_test_opts d = { .page_size = o->page_size, .policy = o->policy };

	return dma_test_create(&d, out);
}

static int subpage_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct subpage_opts s = { .page_size = o->page_size, .policy = o->policy };

	return subpage_create(&s, out);
}

static int devmem_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct devmem_opts d = { .backing = o->backing, .page_size = o->page_size,
				 .policy = o->policy };

	return devmem_create(&d, out);
}

static int nvme_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct nvme_opts n = { .backing = o->backing, .ram_size = o->size,
			       .page_size = o->page_size, .policy = o->policy,
			       .poll_us = o->poll_us_set ? o->poll_us : NVME_DEFAULT_POLL_US,
			       .trap_doorbells = o->trap_doorbells };

	return nvme_create(&n, out);
}

static int passthrough_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct passthrough_opts p = { .device = o->device, .open_flags = o->open_flags,
				      .log = o->log, .log_user = o->log_user };

	if (!o->device) {
		if (o->log)
			o->log(o->log_user, VFK_LOG_ERR,
			       "passthrough needs --device with a PCI address");
		return -EINVAL;
	}
	return passthrough_create(&p, out);
}

static const struct vfk_model models[] = {
	{ "dma-test", "memcpy engine with MSI-X/MSI/INTx and every BAR flavour",
	  VFK_OPT_DEVICE_WIDE | VFK_OPT_MSIX, dma_test_new, dma_test_destroy },
	{ "subpage", "sub-page BARs and an MSI-X table sharing a page (64K-page layouts)",
	  VFK_OPT_DEVICE_WIDE | VFK_OPT_MSIX, subpage_new, subpage_destroy },
	{ "devmem", "device memory in emulated prefetchable BARs (nvgrace-gpu style)",
	  VFK_OPT_DEVICE_WIDE | VFK_OPT_BACKING, devmem_new, devmem_destroy },
	/* No --revoke-on-disable: its I/O thread reads the doorbell page
	 * itself, which the contents swap would fill with all-ones. */
	{ "nvme", "NVMe 1.4 controller: --backing FILE/BLOCKDEV or a memory namespace (--size)",
	  (VFK_OPT_DEVICE_WIDE & ~VFK_OPT_REVOKE) | VFK_OPT_MSIX | VFK_OPT_BACKING | VFK_OPT_SIZE |
		  VFK_OPT_POLL_US | VFK_OPT_TRAP_DOORBELLS,
	  nvme_new, nvme_destroy },
	/* The kernel decides the rest of a passed-through device. */
	{ "passthrough", "a kernel VFIO device (vfio-pci) re-exported: --device BDF",
	  VFK_OPT_DEVICE, passthrough_new, passthrough_destroy },
};

const struct vfk_model *vfk_model_find(const char *name)
{
	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
		if (!strcmp(models[i].name, name))
			return &models[i];
	return NULL;
}

const struct vfk_model *vfk_model_at(size_t i)
{
	return i < sizeof(models) / sizeof(models[0]) ? &models[i] : NULL;
}
