/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "registry.h"
#include "dma-test/dma_test.h"

static int dma_test_new(const struct vfk_model_opts *o, struct vfk_dev **out)
{
	struct dma_test_opts d = { .page_size = o->page_size,
				   .disabled_access = o->disabled_access };

	return dma_test_create(&d, out);
}

static const struct vfk_model models[] = {
	{ "dma-test", "memcpy engine with MSI-X/MSI/INTx and every BAR flavour",
	  dma_test_new, dma_test_destroy },
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
