/* SPDX-License-Identifier: MIT */
/*
 * devmem: device memory exposed through emulated BARs, the design of
 * Linux's nvgrace-gpu variant driver.
 *
 * BAR0: 4 KiB trapped registers (0x0 id "VFKM", 0x8 usemem length,
 *   0x10 resmem length).
 * BAR2/3: "resmem", a non-cached carve-out: DEVMEM_RESMEM_LEN bytes of a
 *   memfd in a 64-bit prefetchable BAR rounded up to a power of two;
 *   write-combining mappings are declared safe, cacheable ones are not.
 * BAR4/5: "usemem", cacheable device memory: DEVMEM_USEMEM_LEN bytes of the
 *   backing file (or a memfd), the same way; cacheable mappings are safe.
 * In both, the mmap area covers the whole pages of real memory; bytes
 * between the real end and the BAR size read all-ones and ignore writes.
 */
#ifndef VFK_DEVMEM_H
#define VFK_DEVMEM_H

#include "vfiokit/server.h"

#define DEVMEM_VENDOR 0x1234
#define DEVMEM_DEVICE 0xdf03
#define DEVMEM_MAGIC 0x4d4b4656u /* "VFKM" */
/* Lengths that are not powers of two, nor page multiples. */
#define DEVMEM_USEMEM_LEN (6u << 20)
#define DEVMEM_RESMEM_LEN ((3u << 19) + 100u)

struct devmem_opts {
	const char *backing; /* file for usemem (grown to its length), or NULL */
	size_t page_size;    /* host page size to assume; 0: the real one */
	struct vfk_dev_policy policy; /* device-wide choices (server.h) */
};

/* Create a devmem device, not yet served (`o` NULL: memfd-backed). */
int devmem_create(const struct devmem_opts *o, struct vfk_dev **out);
/* Destroy it (after its server). */
void devmem_destroy(struct vfk_dev *dev);

#endif
