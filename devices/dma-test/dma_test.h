/* SPDX-License-Identifier: MIT */
/*
 * dma-test: a memcpy engine for exercising DMA, interrupts and every kind
 * of BAR, in the spirit of the devices Linux's VFIO selftests drive.
 *
 *   BAR0  4 KiB, 32-bit memory, trapped: the registers below.
 *   BAR2  64 KiB, 64-bit memory, shared memory: page 0 and pages 3.. are
 *         plain memory a client may map; the MSI-X table sits at 0x1000
 *         and the PBA at 0x2000, always trapped.
 *   BAR4  256 bytes, 32-bit memory, shared memory alone in its page: a
 *         sub-page BAR, mappable as its whole page.
 *   BAR5  16 bytes of I/O space, trapped: a scratch register and the id.
 *   ROM   a 2 KiB image (no x86 code: firmware leaves it alone).
 *   Capabilities: PM, MSI (1 vector, 64-bit, maskable), MSI-X (4 vectors),
 *   PCI Express endpoint with FLR, vendor-specific; extended: device
 *   serial number.
 *
 * A copy: write SRC, DST, LEN, optionally CTRL (interrupt enable and
 * vector), then 1 to DOORBELL.  The engine works through the streaming DMA
 * API (vfk_dma_map_buf) in 64 KiB pieces, so with a narrow DMA mask the
 * pieces above it go through the bounce pool, which BOUNCED counts.  The device copies LEN bytes from IOVA SRC
 * to IOVA DST through client memory, sets STATUS.DONE (or STATUS.ERROR and
 * ERRNO) and raises its interrupt: MSI-X, else MSI, else INTx, which stays
 * asserted until STATUS.DONE/ERROR are cleared (write 1 to clear).
 */
#ifndef VFK_DMA_TEST_H
#define VFK_DMA_TEST_H

#include <stdint.h>

#include "vfiokit/server.h"

#define DMA_TEST_VENDOR 0x1234 /* the experimental id QEMU's edu also uses */
#define DMA_TEST_DEVICE 0xdf01
#define DMA_TEST_CLASS 0xff0000
#define DMA_TEST_MAGIC 0x444b4656u /* "VFKD" */

/* BAR0 registers (little-endian). */
#define DMA_TEST_REG_ID 0x00       /* RO u32: DMA_TEST_MAGIC */
#define DMA_TEST_REG_VERSION 0x04  /* RO u32: 1 */
#define DMA_TEST_REG_SRC 0x08      /* RW u64: source IOVA */
#define DMA_TEST_REG_DST 0x10      /* RW u64: destination IOVA */
#define DMA_TEST_REG_LEN 0x18      /* RW u32: bytes, up to DMA_TEST_MAX_LEN */
#define DMA_TEST_REG_CTRL 0x1c     /* RW u32: see DMA_TEST_CTRL_* */
#define DMA_TEST_REG_DOORBELL 0x20 /* WO u32: 1 starts a copy */
#define DMA_TEST_REG_STATUS 0x24   /* RW1C u32: see DMA_TEST_STATUS_* */
#define DMA_TEST_REG_ERRNO 0x28    /* RO u32: errno of the last failed copy */
#define DMA_TEST_REG_COUNT 0x2c    /* RO u32: copies completed */
#define DMA_TEST_REG_BOUNCED 0x30  /* RO u32: transfers that needed a bounce
				    * buffer (mask, no fd, window edge) */
#define DMA_TEST_REG_SCRATCH 0x40  /* RW u32 */
/* WO u32: DMA_TEST_INJECT_ERR reports an uncorrectable error
 * (vfk_dev_report_error: ERR, on which QEMU stops the VM).  Apart from
 * the other registers and keyed, so that no stray write trips it. */
#define DMA_TEST_REG_INJECT 0x80
#define DMA_TEST_INJECT_ERR 0x45525221u /* "!RRE" */

#define DMA_TEST_CTRL_IRQ 0x1u        /* raise an interrupt on completion */
#define DMA_TEST_CTRL_VECTOR(v) ((uint32_t)(v) << 8) /* MSI/MSI-X vector */

#define DMA_TEST_STATUS_BUSY 0x1u
#define DMA_TEST_STATUS_DONE 0x2u
#define DMA_TEST_STATUS_ERROR 0x4u

#define DMA_TEST_MAX_LEN (16u << 20)

#define DMA_TEST_BAR2_SIZE 0x10000
#define DMA_TEST_MSIX_TABLE 0x1000
#define DMA_TEST_MSIX_PBA 0x2000
#define DMA_TEST_MSIX_VECTORS 4
#define DMA_TEST_BAR4_SIZE 256
#define DMA_TEST_BAR5_SIZE 16

/* Options of the model. */
struct dma_test_opts {
	size_t page_size; /* host page size to assume; 0: the real one */
	struct vfk_dev_policy policy; /* device-wide choices (server.h) */
};

/* Create a dma-test device (not yet served). */
int dma_test_create(const struct dma_test_opts *opts, struct vfk_dev **out);
/* Destroy it (after its server). */
void dma_test_destroy(struct vfk_dev *dev);

#endif
