/* SPDX-License-Identifier: MIT */
/*
 * nvme: an NVM Express 1.4 controller with one namespace, backed by a file
 * or block device through io_uring (O_DIRECT where the backing allows it),
 * or by memory.
 *
 * BAR0 holds the registers (trapped), a page of doorbells the client may
 * map, and the MSI-X table and PBA (emulated by the library); see
 * nvme_spec.h for the layout.  A polling thread per controller reads the
 * doorbells (and the shadow doorbells of Doorbell Buffer Config) from
 * memory, so in steady state a doorbell costs no vfio-user message.  It
 * spins for a while after the last work, then sleeps with exponential
 * backoff up to 1 ms.  With trapped doorbells (`trap_doorbells`, or a host
 * page larger than 4 KiB, where the doorbell page cannot be mapped) a
 * doorbell write wakes the thread at once, and a host that uses shadow
 * doorbells is told through EventIdx to write the register only when the
 * thread sleeps.
 *
 * DMA needs guest memory the server can map (DMA_MAP with an fd): the I/O
 * thread does not use DMA_READ/DMA_WRITE messages, which only the server
 * thread may send.
 */
#ifndef VFK_NVME_H
#define VFK_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vfiokit/server.h"
#include "nvme_spec.h"

#define NVME_DEFAULT_RAM_SIZE (256ull << 20)
#define NVME_DEFAULT_POLL_US 200

struct nvme_opts {
	const char *backing;   /* file or block device; NULL: memory */
	uint64_t ram_size;     /* bytes of the memory namespace; 0: default */
	size_t page_size;      /* host page size to assume; 0: the real one */
	struct vfk_dev_policy policy; /* device-wide choices (server.h) */
	unsigned poll_us;      /* busy-poll window after the last work (0: go
				* to sleep at once; UINT32_MAX: never sleep) */
	bool trap_doorbells;   /* doorbells by message: event-driven wake-ups */
};

/* Create an nvme device, not yet served (`o` NULL: memory namespace of the
 * default size): opens the backing and starts the I/O thread. */
int nvme_create(const struct nvme_opts *o, struct vfk_dev **out);
/* After vfk_server_destroy(): stops the I/O thread and frees everything. */
void nvme_destroy(struct vfk_dev *dev);

#endif
