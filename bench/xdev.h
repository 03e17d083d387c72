/* SPDX-License-Identifier: MIT */
/*
 * xlate-bench: a device model that exists only to time DMA translation
 * inside a real server process, against the DMA table that real DMA_MAP
 * messages built.  The client describes the window layout it mapped, picks
 * an operation and an access pattern, and writes GO; the register write
 * runs the loop before it is answered and leaves picoseconds per operation
 * in RESULT.
 *
 *   BAR0  4 KiB, 32-bit memory, trapped; 4- and 8-byte aligned accesses.
 */
#ifndef VFK_BENCH_XDEV_H
#define VFK_BENCH_XDEV_H

#include <stdint.h>

#include "vfiokit/server.h"

#define XDEV_VENDOR 0x1234
#define XDEV_DEVICE 0xdf7f
#define XDEV_MAGIC 0x48434e42u /* "BNCH" */

#define XDEV_REG_ID 0x00     /* RO u32 */
#define XDEV_REG_BASE 0x08   /* RW u64: IOVA of window 0 */
#define XDEV_REG_STRIDE 0x10 /* RW u64: from one window start to the next */
#define XDEV_REG_NWIN 0x18   /* RW u32: windows mapped */
#define XDEV_REG_WSIZE 0x1c  /* RW u32: bytes per window (>= 4096) */
#define XDEV_REG_ITERS 0x20  /* RW u32: operations to time */
#define XDEV_REG_MODE 0x24   /* RW u32: op | pattern << 8 */
#define XDEV_REG_GO 0x28     /* WO u32: 1 runs the loop */
#define XDEV_REG_RESULT 0x30 /* RO u64: picoseconds per operation */
#define XDEV_REG_ERRORS 0x38 /* RO u32: operations that failed */
#define XDEV_REG_SINK 0x40   /* RO u64: checksum of what was read */

/* Operations. */
#define XDEV_OP_LOOP 0      /* fetch the IOVA only: the loop's own cost */
#define XDEV_OP_TRANSLATE 1 /* vfk_dma_translate(iova, 8, READ, 1 piece) */
#define XDEV_OP_READ8 2     /* vfk_dma_read of 8 bytes */

/* Access patterns over the windows. */
#define XDEV_PAT_RANDOM 0 /* a random window, a random 8-byte slot in it */
#define XDEV_PAT_SEQWIN 1 /* window 0, 1, 2, ...: a new window every time */
#define XDEV_PAT_SEQ64 2  /* 64-byte steps: a new window every 64 accesses */

/* Operations per table pass; ITERS may be larger (the table repeats). */
#define XDEV_TABLE (1u << 20)

int xdev_create(struct vfk_dev **out);
void xdev_destroy(struct vfk_dev *dev);

#endif
