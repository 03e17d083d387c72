/* SPDX-License-Identifier: MIT */
/*
 * A small driver for dma-test on top of the client library: what the demo,
 * the tests and the benchmark use to program a copy and wait for it.
 */
#ifndef VFK_DMA_TEST_DRIVER_H
#define VFK_DMA_TEST_DRIVER_H

#include <stdint.h>

#include "vfiokit/client.h"

int dma_test_read32(struct vfk_device *dev, uint32_t reg, uint32_t *val);
int dma_test_write32(struct vfk_device *dev, uint32_t reg, uint32_t val);
int dma_test_write64(struct vfk_device *dev, uint32_t reg, uint64_t val);

/* Set Memory Space, I/O Space and Bus Master Enable in the command register. */
int dma_test_enable(struct vfk_device *dev);

/* Program SRC/DST/LEN/CTRL and ring the doorbell. */
int dma_test_start(struct vfk_device *dev, uint64_t src, uint64_t dst,
		   uint32_t len, uint32_t ctrl);

/*
 * Wait up to timeout_ms for eventfd `efd` to fire, answering the server's
 * DMA requests meanwhile (vfk_device_dispatch()).  0 when it fired,
 * -ETIMEDOUT, or the error of the connection.
 */
int dma_test_wait_irq(struct vfk_device *dev, int efd, int timeout_ms);

/* Poll STATUS until BUSY clears (answering DMA requests meanwhile); the
 * final STATUS goes to *status.  For copies without an interrupt. */
int dma_test_wait_idle(struct vfk_device *dev, int timeout_ms, uint32_t *status);

#endif
