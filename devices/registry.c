/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "registry.h"
#include "devmem/devmem.h"
#include "dma-test/dma_test.h"
#include "subpage/subpage.h"

static int dma_test_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct dma_test_opts d = { .page_size = o->page_size,
				   .disabled_access = o->disabled_access,
				   .dma_mask_bits = o->dma_mask_bits };

	return dma_test_create(&d, out);
}

static int subpage_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct subpage_opts s = { .page_size = o->page_size,
				  .msix_mappable = o->msix_mappable,
				  .swap_on_disable = o->swap_on_disable,
				  .disabled_access = o->disabled_access };

	return subpage_create(&s, out);
}

static int devmem_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct devmem_opts d = { .backing = o->backing, .page_size = o->page_size,
				 .disabled_access = o->disabled_access };

	return devmem_create(&d, out);
}

static const struct vfk_model models[] = {
	{ "dma-test", "memcpy engine with MSI-X/MSI/INTx and every BAR flavour",
	  dma_test_new, dma_test_destroy },
	{ "subpage", "sub-page BARs and an MSI-X table sharing a page (64K-page layouts)",
	  subpage_new, subpage_destroy },
	{ "devmem", "device memory in emulated prefetchable BARs (nvgrace-gpu style)",
	  devmem_new, devmem_destroy },
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
