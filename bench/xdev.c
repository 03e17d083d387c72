/* SPDX-License-Identifier: MIT */
/*
 * The translation-timing model (see xdev.h) and the client-side helper
 * that drives it.
 *
 * The loop runs inside the GO register write, on the server thread: that
 * is where a device model translates in the common case, and it keeps the
 * timed section free of anything but the table lookups.  The IOVAs are
 * computed into a table before the clock starts, so the random pattern
 * costs the same to generate as the sequential ones; the LOOP operation
 * measures that remaining overhead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "xdev.h"

struct xdev {
	uint64_t base, stride;
	uint32_t nwin, wsize, iters, mode, errors;
	uint64_t result_ps, sink;
	uint64_t *tab; /* XDEV_TABLE IOVAs, allocated once at creation */
};

static struct xdev *xd(struct vfk_dev *dev)
{
	return vfk_dev_user(dev);
}

/* splitmix64: fixed seed, so every run times the same addresses. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_table(struct xdev *x, unsigned pattern)
{
	uint64_t seed = 0x5eed;
	uint32_t slots = x->wsize / 8, per64 = x->wsize / 64;

	for (uint32_t k = 0; k < XDEV_TABLE; k++) {
		uint64_t w, off;

		switch (pattern) {
		case XDEV_PAT_SEQWIN:
			w = k % x->nwin;
			off = 0;
			break;
		case XDEV_PAT_SEQ64:
			w = (k / per64) % x->nwin;
			off = (uint64_t)(k % per64) * 64;
			break;
		default: {
			uint64_t r = next_rand(&seed);

			w = (r >> 32) % x->nwin;
			off = ((r & 0xffffffffu) % slots) * 8;
			break;
		}
		}
		x->tab[k] = x->base + w * x->stride + off;
	}
}

static int run(struct vfk_dev *dev)
{
	struct xdev *x = xd(dev);
	const uint64_t *tab = x->tab;
	const uint32_t mask = XDEV_TABLE - 1;
	unsigned op = x->mode & 0xff, pattern = (x->mode >> 8) & 0xff;
	uint64_t sink = 0, t0, t1;
	uint32_t errors = 0;

	if (!x->nwin || x->wsize < 4096 || x->wsize % 64 || !x->iters ||
	    x->stride < x->wsize || op > XDEV_OP_READ8 || pattern > XDEV_PAT_SEQ64)
		return -EINVAL;
	fill_table(x, pattern);

	t0 = now_ns();
	switch (op) {
	case XDEV_OP_LOOP:
		for (uint32_t k = 0; k < x->iters; k++) {
			sink += tab[k & mask];
			/* keep it one scalar step per operation, like the others */
			__asm__ volatile("" : "+r"(sink));
		}
		break;
	case XDEV_OP_TRANSLATE:
		for (uint32_t k = 0; k < x->iters; k++) {
			struct vfk_sg sg;

			if (vfk_dma_translate(dev, tab[k & mask], 8, VFK_PROT_READ, &sg, 1) != 1)
				errors++;
			else
				sink += (uintptr_t)sg.host;
		}
		break;
	case XDEV_OP_READ8:
		for (uint32_t k = 0; k < x->iters; k++) {
			uint64_t v;

			if (vfk_dma_read(dev, tab[k & mask], &v, 8))
				errors++;
			else
				sink += v;
		}
		break;
	}
	t1 = now_ns();
	x->result_ps = (t1 - t0) * 1000 / x->iters;
	x->errors = errors;
	x->sink = sink;
	return 0;
}

static uint64_t reg_get(struct xdev *x, uint64_t off)
{
	switch (off) {
	case XDEV_REG_ID:
		return XDEV_MAGIC;
	case XDEV_REG_BASE:
		return x->base;
	case XDEV_REG_STRIDE:
		return x->stride;
	case XDEV_REG_NWIN:
		return x->nwin | ((uint64_t)x->wsize << 32);
	case XDEV_REG_ITERS:
		return x->iters | ((uint64_t)x->mode << 32);
	case XDEV_REG_RESULT:
		return x->result_ps;
	case XDEV_REG_ERRORS:
		return x->errors;
	case XDEV_REG_SINK:
		return x->sink;
	}
	return 0;
}

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		    uint32_t count)
{
	uint64_t v;

	if (bar != 0 || (count != 4 && count != 8) || off % count)
		return -EINVAL;
	v = reg_get(xd(dev), off & ~7ull);
	if (count == 4) {
		uint32_t v32 = (uint32_t)(v >> (8 * (off & 4)));

		memcpy(buf, &v32, 4);
	} else {
		memcpy(buf, &v, 8);
	}
	return 0;
}

static int bar_write(struct vfk_dev *dev, unsigned bar, uint64_t off,
		     const void *buf, uint32_t count)
{
	struct xdev *x = xd(dev);
	uint64_t v = 0;

	if (bar != 0 || (count != 4 && count != 8) || off % count)
		return -EINVAL;
	memcpy(&v, buf, count);
	switch (off) {
	case XDEV_REG_BASE:
		x->base = v;
		break;
	case XDEV_REG_STRIDE:
		x->stride = v;
		break;
	case XDEV_REG_NWIN:
		x->nwin = (uint32_t)v;
		break;
	case XDEV_REG_WSIZE:
		x->wsize = (uint32_t)v;
		break;
	case XDEV_REG_ITERS:
		x->iters = (uint32_t)v;
		break;
	case XDEV_REG_MODE:
		x->mode = (uint32_t)v;
		break;
	case XDEV_REG_GO:
		if (v == 1)
			return run(dev);
		break;
	}
	return 0;
}

static const struct vfk_dev_ops xdev_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "xlate-bench",
	.bar_read = bar_read,
	.bar_write = bar_write,
};

int xdev_create(struct vfk_dev **out)
{
	static const struct vfk_pci_id id = {
		.vendor = XDEV_VENDOR, .device = XDEV_DEVICE,
		.subsys_vendor = XDEV_VENDOR, .subsys_device = 0x0001,
		.class_code = 0xff0000, .revision = 1,
	};
	struct vfk_dev *dev = NULL;
	struct xdev *x = calloc(1, sizeof(*x));
	int rc = -ENOMEM;

	if (!x)
		return -ENOMEM;
	x->tab = malloc(XDEV_TABLE * sizeof(uint64_t));
	if (!x->tab)
		goto fail;
	rc = vfk_dev_create(&xdev_ops, x, &dev);
	if (rc)
		goto fail;
	if ((rc = vfk_pci_set_id(dev, &id)) ||
	    (rc = vfk_dev_set_bar(dev, 0, &(struct vfk_bar_desc){ .size = 4096 })) ||
	    (rc = vfk_dev_realize(dev)))
		goto fail;
	*out = dev;
	return 0;
fail:
	vfk_dev_destroy(dev);
	free(x->tab);
	free(x);
	return rc;
}

void xdev_destroy(struct vfk_dev *dev)
{
	struct xdev *x;

	if (!dev)
		return;
	x = xd(dev);
	vfk_dev_destroy(dev);
	free(x->tab);
	free(x);
}

/* ---- client side ---- */

static int wr32(struct vfk_device *dev, uint32_t reg, uint32_t v)
{
	return vfk_region_write(dev, 0, reg, &v, 4);
}

static int wr64(struct vfk_device *dev, uint32_t reg, uint64_t v)
{
	return vfk_region_write(dev, 0, reg, &v, 8);
}

int xlate_run(struct vfk_device *dev, unsigned nwin, unsigned iters,
	      unsigned op, unsigned pattern, uint64_t *ps, uint32_t *errors)
{
	uint64_t sink;
	int rc;

	if ((rc = wr64(dev, XDEV_REG_BASE, map_layout.base)) ||
	    (rc = wr64(dev, XDEV_REG_STRIDE, map_layout.stride)) ||
	    (rc = wr32(dev, XDEV_REG_NWIN, nwin)) ||
	    (rc = wr32(dev, XDEV_REG_WSIZE, map_layout.size)) ||
	    (rc = wr32(dev, XDEV_REG_ITERS, iters)) ||
	    (rc = wr32(dev, XDEV_REG_MODE, op | pattern << 8)) ||
	    (rc = wr32(dev, XDEV_REG_GO, 1)) ||
	    (rc = vfk_region_read(dev, 0, XDEV_REG_RESULT, ps, 8)) ||
	    (rc = vfk_region_read(dev, 0, XDEV_REG_ERRORS, errors, 4)) ||
	    (rc = vfk_region_read(dev, 0, XDEV_REG_SINK, &sink, 8)))
		return rc;
	return 0;
}
