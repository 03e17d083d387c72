/* SPDX-License-Identifier: MIT */
/*
 * subpage: BAR layouts from the large-page threads, for seeing which BARs a
 * client may map at 4K, 16K and 64K host pages.
 *
 * BAR0..BAR2: 256-byte memory BARs at offsets 0x0000, 0x1000 and 0x2000 of
 *   one 16 KiB aperture (shared memory), like the functions of the
 *   multi-function USB controller in the 2012 powernv thread.  With 4K
 *   pages each BAR's page is its own and can be mapped (whole); with 64K
 *   pages all three share one page and stay trapped.
 * BAR3: 256 bytes at 0x3100 of the same aperture: not page-aligned, never
 *   mappable; its in-page offset (0x100) is reported.
 * BAR4: 8 KiB of registers (shared memory) with the 4-vector MSI-X table at
 *   0x1000 and the PBA at 0x1800.  In the default MSI-X layout (Linux's
 *   VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) BAR4 is offered whole at every page
 *   size; in the trapped layout (vfio-pci before 4.16) only the register
 *   page with 4K pages, and nothing with 64K pages, where the table's page
 *   is the whole BAR.  Every BAR slot is taken, so MSI-X relocation is
 *   refused (-ENOSPC).
 * BAR5: 4 KiB of trapped registers: 0x0 id, 0x4 scratch.
 */
#ifndef VFK_SUBPAGE_H
#define VFK_SUBPAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "vfiokit/server.h"

#define SUBPAGE_VENDOR 0x1234
#define SUBPAGE_DEVICE 0xdf02
#define SUBPAGE_BAR3_OFFSET 0x3100
#define SUBPAGE_APERTURE 0x4000

struct subpage_opts {
	size_t page_size;     /* host page size to assume; 0: the real one */
	struct vfk_dev_policy policy; /* device-wide choices (server.h) */
};

/* Create a subpage device, not yet served (`o` NULL: all defaults). */
int subpage_create(const struct subpage_opts *o, struct vfk_dev **out);
/* Destroy it (after its server). */
void subpage_destroy(struct vfk_dev *dev);

#endif
