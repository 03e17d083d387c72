/* SPDX-License-Identifier: MIT */
/*
 * The server's DMA table with real memfds: overlap and cut rules,
 * translation across windows, protection, the checks on the fds a client
 * sends, that 65,535 windows of one memfd cost one mapping, and the
 * streaming API's checks, bounce buffers and coherency hooks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

#define MEM_SIZE (1u << 20)

struct fixture {
	struct vfk_dev *dev;
	int memfd;
	uint8_t *mem;
	int unmaps;
};

static struct fixture fx;

static void on_unmap(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	(void)dev;
	(void)w;
	fx.unmaps++;
}

static const struct vfk_dev_ops ops = { .version = 1, .dma_unmap = on_unmap };

static int setup(void **state)
{
	assert_int_equal(vfk_dev_create(&ops, NULL, &fx.dev), 0);
	fx.memfd = memfd_create("t", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fx.memfd, MEM_SIZE), 0);
	fx.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fx.memfd, 0);
	assert_true(fx.mem != MAP_FAILED);
	fx.unmaps = 0;
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vfk_dev_destroy(fx.dev);
	munmap(fx.mem, MEM_SIZE);
	close(fx.memfd);
	return 0;
}

static const uint32_t RW = VFK_PROT_READ | VFK_PROT_WRITE;

static void test_add_remove(void **state)
{
	struct vfk_dev *d = fx.dev;

	(void)state;
	assert_int_equal(vfk_dma_add(d, 0x10000, 0x1000, RW, fx.memfd, 0), 0);
	assert_int_equal(vfk_dma_add(d, 0x11000, 0x1000, RW, fx.memfd, 0x1000), 0);
	assert_int_equal(vfk_dma_add(d, 0x10800, 0x100, RW, fx.memfd, 0), -EEXIST);
	assert_int_equal(vfk_dma_add(d, 0xf000, 0x1001, RW, -1, 0), -EEXIST);
	assert_int_equal(vfk_dma_add(d, 0x11fff, 0x10, RW, -1, 0), -EEXIST);
	assert_int_equal(vfk_dma_add(d, 0xf000, 0x1000, RW, -1, 0), 0); /* adjacent is fine */
	assert_int_equal(vfk_dma_count(d), 3);
	/* Cutting a window is refused; covering whole ones removes them all. */
	assert_int_equal(vfk_dma_remove(d, 0x10000, 0x800), -EINVAL);
	assert_int_equal(vfk_dma_remove(d, 0x10800, 0x1000), -EINVAL);
	/* Covering no window removes nothing and succeeds (type1's answer). */
	assert_int_equal(vfk_dma_remove(d, 0x20000, 0x1000), 0);
	assert_int_equal(fx.unmaps, 0);
	assert_int_equal(vfk_dma_count(d), 3);
	assert_int_equal(vfk_dma_remove(d, 0x10000, 0x2000), 0);
	assert_int_equal(fx.unmaps, 2);
	assert_int_equal(vfk_dma_count(d), 1);
	vfk_dma_remove_all(d);
	assert_int_equal(vfk_dma_count(d), 0);
	/* The very top of the IOVA space. */
	assert_int_equal(vfk_dma_add(d, UINT64_MAX - 0xfff, 0x1000, RW, fx.memfd, 0), 0);
	assert_int_equal(vfk_dma_remove(d, UINT64_MAX - 0xfff, 0x1000), 0);
}

static void test_translate_and_copy(void **state)
{
	struct vfk_dev *d = fx.dev;
	struct vfk_sg sg[4];
	uint8_t buf[0x2000];

	(void)state;
	/* Two adjacent windows at different file offsets, one read-only. */
	assert_int_equal(vfk_dma_add(d, 0x100000, 0x1000, RW, fx.memfd, 0x8000), 0);
	assert_int_equal(vfk_dma_add(d, 0x101000, 0x1000, VFK_PROT_READ, fx.memfd, 0x2000), 0);
	assert_int_equal(vfk_dma_translate(d, 0x100ff0, 0x20, VFK_PROT_READ, sg, 4), 2);
	assert_int_equal(sg[0].len, 0x10);
	/* The table maps the file itself: check the bytes, not addresses. */
	fx.mem[0x8ff0] = 0x5c;
	fx.mem[0x2000] = 0x6d;
	assert_int_equal(*(uint8_t *)sg[0].host, 0x5c);
	assert_int_equal(*(uint8_t *)sg[1].host, 0x6d);
	assert_int_equal(vfk_dma_translate(d, 0x100ff0, 0x20, VFK_PROT_WRITE, sg, 4), -EACCES);
	assert_int_equal(vfk_dma_translate(d, 0x100ff0, 0x20, VFK_PROT_READ, sg, 1), -ENOSPC);
	assert_int_equal(vfk_dma_translate(d, 0x101ff0, 0x20, VFK_PROT_READ, sg, 4), -EFAULT);
	assert_int_equal(vfk_dma_translate(d, 0xfffff, 2, VFK_PROT_READ, sg, 4), -EFAULT);

	memset(fx.mem + 0x8000, 0xa1, 0x1000);
	memset(fx.mem + 0x2000, 0xb2, 0x1000);
	assert_int_equal(vfk_dma_read(d, 0x100000, buf, 0x2000), 0);
	assert_int_equal(buf[0xfff], 0xa1);
	assert_int_equal(buf[0x1000], 0xb2);
	/* A write that would touch the read-only window changes nothing. */
	memset(buf, 0x33, sizeof(buf));
	assert_int_equal(vfk_dma_write(d, 0x100800, buf, 0x1000), -EACCES);
	assert_int_equal(fx.mem[0x8800], 0xa1);
	assert_int_equal(vfk_dma_write(d, 0x100800, buf, 0x800), 0);
	assert_int_equal(fx.mem[0x8800], 0x33);
	/* A window without fd needs the client: no server here. */
	assert_int_equal(vfk_dma_add(d, 0x200000, 0x1000, RW, -1, 0), 0);
	assert_int_equal(vfk_dma_read(d, 0x200000, buf, 16), -EDEADLK);
}

/* Windows mapped page by page, as QEMU does behind a guest IOMMU: those
 * that continue each other in the file come out as one piece; a walk of
 * any length goes `max` pieces at a time. */
static void test_translate_coalesces(void **state)
{
	struct vfk_dev *d = fx.dev;
	struct vfk_sg sg[4];

	(void)state;
	/* IOVA pages 0..3 over file pages 4, 5, 6 (contiguous) and 9. */
	for (unsigned k = 0; k < 3; k++)
		assert_int_equal(vfk_dma_add(d, 0x300000 + k * 0x1000, 0x1000, RW, fx.memfd,
					     0x4000 + k * 0x1000), 0);
	assert_int_equal(vfk_dma_add(d, 0x303000, 0x1000, RW, fx.memfd, 0x9000), 0);
	/* Two windows without fd after them: one piece with no host. */
	assert_int_equal(vfk_dma_add(d, 0x304000, 0x1000, RW, -1, 0), 0);
	assert_int_equal(vfk_dma_add(d, 0x305000, 0x1000, RW, -1, 0), 0);
	assert_int_equal(vfk_dma_translate(d, 0x300010, 0x3ff0, VFK_PROT_READ, sg, 1), -ENOSPC);
	assert_int_equal(vfk_dma_translate(d, 0x300010, 0x2ff0, VFK_PROT_READ, sg, 1), 1);
	assert_int_equal(sg[0].iova, 0x300010);
	assert_int_equal(sg[0].len, 0x2ff0);
	fx.mem[0x4010] = 0x71;
	fx.mem[0x6fff] = 0x72;
	assert_int_equal(((uint8_t *)sg[0].host)[0], 0x71);
	assert_int_equal(((uint8_t *)sg[0].host)[0x2fef], 0x72);
	assert_int_equal(vfk_dma_translate(d, 0x300000, 0x6000, VFK_PROT_READ, sg, 4), 3);
	assert_int_equal(sg[1].iova, 0x303000);
	assert_int_equal(sg[1].len, 0x1000);
	assert_null(sg[2].host);
	assert_int_equal(sg[2].len, 0x2000);
	/* The prefix walk: one piece at a time over the whole range. */
	assert_int_equal(vfk_dma_translate_prefix(d, 0x300000, 0x6000, VFK_PROT_READ, sg, 1), 1);
	assert_int_equal(sg[0].len, 0x3000);
	assert_int_equal(vfk_dma_translate_prefix(d, 0x303000, 0x3000, VFK_PROT_READ, sg, 1), 1);
	assert_int_equal(sg[0].len, 0x1000);
	assert_int_equal(vfk_dma_translate_prefix(d, 0x300000, 0x6000, VFK_PROT_READ, sg, 4), 3);
	/* Errors of the walked part only; a hole ends it. */
	assert_int_equal(vfk_dma_translate_prefix(d, 0x300000, 0x7000, VFK_PROT_READ, sg, 4),
			 -EFAULT);
	assert_int_equal(vfk_dma_translate_prefix(d, 0x300000, 0x7000, VFK_PROT_READ, sg, 2), 2);
	assert_int_equal(vfk_dma_translate_prefix(d, 0x300000, 0x1000, VFK_PROT_READ, sg, 0),
			 -EINVAL);
	/* A window without fd, then one with: never one piece (found by
	 * fuzz_server: the merge test did arithmetic on the NULL host). */
	assert_int_equal(vfk_dma_add(d, 0x2ff000, 0x1000, RW, -1, 0), 0);
	assert_int_equal(vfk_dma_translate(d, 0x2ff000, 0x2000, VFK_PROT_READ, sg, 4), 2);
	assert_null(sg[0].host);
	assert_non_null(sg[1].host);
	vfk_dma_remove_all(d);
}

static void test_bad_fds(void **state)
{
	struct vfk_dev *d = fx.dev;
	int p[2], ro;
	char path[] = "/tmp/vfk-dma-ro.XXXXXX";

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(vfk_dma_add(d, 0, 0x1000, RW, p[0], 0), -EINVAL);
	close(p[0]);
	close(p[1]);
	/* Past the end of the file: touching it would SIGBUS the server. */
	assert_int_equal(vfk_dma_add(d, 0, 0x1000, RW, fx.memfd, MEM_SIZE - 0x800), -EINVAL);
	/* Read-only fd: mapping for read works, for write is refused. */
	ro = mkstemp(path);
	assert_true(ro >= 0);
	assert_int_equal(ftruncate(ro, 0x2000), 0);
	close(ro);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	unlink(path);
	assert_int_equal(vfk_dma_add(d, 0, 0x1000, RW, ro, 0), -EACCES);
	assert_int_equal(vfk_dma_add(d, 0, 0x1000, VFK_PROT_READ, ro, 0), 0);
	close(ro);
}

/* Mappings of the test memfd (named "t") in this process. */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:t "))
			n++;
	if (f)
		fclose(f);
	return n;
}

static void test_many_windows_one_mapping(void **state)
{
	struct vfk_dev *d = fx.dev;
	int before = count_maps(), after;
	struct vfk_sg sg;

	(void)state;
	/* 65,535 windows of 16 bytes in one memfd: more than vm.max_map_count
	 * if each had its own mapping. */
	for (uint32_t i = 0; i < VFK_DEFAULT_MAX_DMA_MAPS; i++)
		assert_int_equal(vfk_dma_add(d, (uint64_t)i << 12, 16, RW, fx.memfd, i * 16u), 0);
	after = count_maps();
	assert_int_equal(after - before, 1);
	assert_int_equal(vfk_dma_add(d, 1ull << 40, 16, RW, fx.memfd, 0), -ENOSPC);
	assert_int_equal(vfk_dma_translate(d, (40000ull << 12) + 4, 4, VFK_PROT_READ, &sg, 1), 1);
	fx.mem[40000 * 16 + 4] = 0x7e;
	assert_int_equal(*(uint8_t *)sg.host, 0x7e);
	vfk_dma_remove_all(d);
	assert_int_equal(fx.unmaps, VFK_DEFAULT_MAX_DMA_MAPS);
	assert_int_equal(count_maps(), before);
}

static int refuse_fdless(struct vfk_dev *dev, const struct vfk_dma_window *w)
{
	(void)dev;
	return w->host ? 0 : -EPERM;
}

/* A model may refuse a window (a passthrough cannot give an IOMMU a
 * window without fd): the map fails and the table is as before. */
static void test_model_refuses(void **state)
{
	static const struct vfk_dev_ops refusing = { .version = 1,
						     .dma_map = refuse_fdless,
						     .dma_unmap = on_unmap };
	struct vfk_dev *d;
	struct vfk_sg sg;

	(void)state;
	assert_int_equal(vfk_dev_create(&refusing, NULL, &d), 0);
	assert_int_equal(vfk_dma_add(d, 0x1000, 0x1000, RW, fx.memfd, 0), 0);
	assert_int_equal(vfk_dma_add(d, 0x3000, 0x1000, RW, -1, 0), -EPERM);
	assert_int_equal(vfk_dma_count(d), 1);
	assert_int_equal(vfk_dma_translate(d, 0x3000, 1, VFK_PROT_READ, &sg, 1), -EFAULT);
	assert_int_equal(vfk_dma_translate(d, 0x1000, 1, VFK_PROT_READ, &sg, 1), 1);
	assert_int_equal(vfk_dma_add(d, 0x3000, 0x1000, RW, fx.memfd, 0x1000), 0);
	vfk_dev_destroy(d);
}

/* Random maps and unmaps, every lookup checked against a plain list. */
static void test_random_against_model(void **state)
{
	enum { SLOTS = 6000 };
	static bool mapped[SLOTS];
	struct vfk_dev *d = fx.dev;
	uint32_t seed = 12345;
	struct vfk_sg sg;

	(void)state;
	memset(mapped, 0, sizeof(mapped));
	/* Slot i is the window [i * 0x3000, +0x1000 + (i % 3) * 0x800). */
	for (int round = 0; round < 40000; round++) {
		unsigned i;
		uint64_t iova, size;

		seed = seed * 1664525u + 1013904223u;
		i = (seed >> 8) % SLOTS;
		iova = (uint64_t)i * 0x3000;
		size = 0x1000 + (i % 3) * 0x800;
		if (!mapped[i]) {
			assert_int_equal(vfk_dma_add(d, iova, size, RW, -1, 0), 0);
			mapped[i] = true;
		} else if (seed & 0x80000000u) {
			assert_int_equal(vfk_dma_remove(d, iova, size), 0);
			mapped[i] = false;
		}
		/* Probe an address: inside slot j's window, or in a gap. */
		seed = seed * 1664525u + 1013904223u;
		{
			unsigned j = (seed >> 8) % SLOTS;
			uint64_t off = (seed & 0xff) * 0x30; /* 0 .. 0x2fd0 */
			uint64_t jsize = 0x1000 + (j % 3) * 0x800;
			bool inside = mapped[j] && off < jsize;
			int n = vfk_dma_translate(d, (uint64_t)j * 0x3000 + off, 1,
						  VFK_PROT_READ, &sg, 1);

			assert_int_equal(n, inside ? 1 : -EFAULT);
		}
	}
}

struct coh_log {
	unsigned writebacks, invalidates;
	void *last_addr;
	size_t last_len;
};

static void coh_writeback(void *user, void *addr, size_t len)
{
	struct coh_log *l = user;

	l->writebacks++;
	l->last_addr = addr;
	l->last_len = len;
}

static void coh_invalidate(void *user, void *addr, size_t len)
{
	struct coh_log *l = user;

	l->invalidates++;
	l->last_addr = addr;
	l->last_len = len;
}

/* Streaming mappings: the whole range is checked however many windows it
 * crosses, a range whose windows are apart in the server is bounced, a
 * FROM_DEVICE bounce buffer starts with the client's bytes (or zeros
 * where it may not read them: no earlier data leaks to the client), the
 * coherency hooks run at the sync points on the buffer the engine uses,
 * and nothing past the DMA mask is reached, bounced or not. */
static void test_streaming(void **state)
{
	static const struct vfk_dma_coherency_ops coh = {
		.version = 1, .writeback = coh_writeback, .invalidate = coh_invalidate
	};
	struct vfk_dev *d = fx.dev;
	struct coh_log log = { 0 };
	struct vfk_dma_buf b;
	uint64_t hi = 1ull << 33, past = 1ull << 34; /* within, past a 34-bit mask */
	uint8_t byte;
	struct vfk_sg sg;

	(void)state;
	assert_int_equal(vfk_dev_set_dma_mask(d, 34), 0);
	assert_int_equal(vfk_pool_init(d), 0);
	assert_int_equal(vfk_dev_set_dma_coherency(d, &coh, &log), 0);
	/* Past the mask: a master abort, though the client mapped it. */
	assert_int_equal(vfk_dma_add(d, past, 0x1000, RW, fx.memfd, 0), 0);
	assert_int_equal(vfk_dma_map_buf(d, past, 0x100, VFK_DMA_TO_DEVICE, &b), -EFAULT);
	assert_int_equal(vfk_dma_read(d, past, &byte, 1), -EFAULT);
	assert_int_equal(vfk_dma_write(d, past, &byte, 1), -EFAULT);
	assert_int_equal(vfk_dma_translate(d, past, 1, VFK_PROT_READ, &sg, 1), -EFAULT);
	assert_int_equal(vfk_dma_translate(d, past - 1, 2, VFK_PROT_READ, &sg, 1), -EFAULT);
	/* Four windows: the first two swapped in the file (apart in the
	 * server, so bounced), the fourth read-only. */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(vfk_dma_add(d, hi + i * 0x1000, 0x1000, RW, fx.memfd,
					     i < 2 ? (1 - i) * 0x1000 : i * 0x1000), 0);
	assert_int_equal(vfk_dma_add(d, hi + 0x3000, 0x1000, VFK_PROT_READ, fx.memfd, 0x3000), 0);
	memset(&b, 0x11, sizeof(b));
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x4000, VFK_DMA_FROM_DEVICE, &b), -EACCES);
	assert_int_equal(b.len, 0x1111111111111111ull); /* untouched on failure */
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x4001, VFK_DMA_TO_DEVICE, &b), -EFAULT);

	/* Leave data in the pool, then map FROM_DEVICE over the same slot. */
	memset(fx.mem, 0xee, 0x2000);
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x2000, VFK_DMA_TO_DEVICE, &b), 0);
	assert_true(b.bounced);
	assert_int_equal(((uint8_t *)b.host)[0x1fff], 0xee);
	assert_int_equal(vfk_dma_sync_for_device(d, &b), 0);
	assert_int_equal(log.writebacks, 1);
	assert_ptr_equal(log.last_addr, b.host);
	assert_int_equal(log.last_len, 0x2000);
	assert_int_equal(vfk_dma_unmap_buf(d, &b), 0);
	assert_int_equal(log.invalidates, 0); /* TO_DEVICE: nothing to read back */

	memset(fx.mem, 0x55, 0x2000);
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x2000, VFK_DMA_FROM_DEVICE, &b), 0);
	assert_true(b.bounced);
	memset(b.host, 0xab, 0x10); /* the engine writes only 16 bytes */
	assert_int_equal(vfk_dma_sync_for_cpu(d, &b), 0);
	assert_int_equal(log.invalidates, 1);
	assert_ptr_equal(log.last_addr, b.host);
	assert_int_equal(fx.mem[0x100f], 0xab); /* IOVA hi is file offset 0x1000 */
	/* The rest is the client's own, not the 0xee left in the pool. */
	assert_int_equal(fx.mem[0x1010], 0x55);
	assert_int_equal(fx.mem[0xfff], 0x55);
	assert_int_equal(vfk_dma_unmap_buf(d, &b), 0);
	assert_int_equal(log.invalidates, 2); /* unmap syncs FROM_DEVICE */
	assert_null(b.host);

	/* Write-only windows cannot be read first: the buffer is zeroed. */
	assert_int_equal(vfk_dma_add(d, hi + 0x10000, 0x1000, VFK_PROT_WRITE, fx.memfd, 0x9000), 0);
	assert_int_equal(vfk_dma_add(d, hi + 0x11000, 0x1000, VFK_PROT_WRITE, fx.memfd, 0x8000), 0);
	memset(fx.mem + 0x8000, 0x66, 0x2000);
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x2000, VFK_DMA_TO_DEVICE, &b), 0);
	assert_int_equal(vfk_dma_unmap_buf(d, &b), 0); /* pool slot 0 holds 0x55 */
	assert_int_equal(vfk_dma_map_buf(d, hi + 0x10000, 0x2000, VFK_DMA_FROM_DEVICE, &b), 0);
	assert_true(b.bounced);
	assert_int_equal(vfk_dma_unmap_buf(d, &b), 0);
	assert_int_equal(fx.mem[0x8000], 0);
	assert_int_equal(fx.mem[0x9fff], 0);
	/* One window: the engine works on client memory, no bounce. */
	assert_int_equal(vfk_dma_map_buf(d, hi + 0x2000, 0x1000, VFK_DMA_FROM_DEVICE, &b), 0);
	assert_false(b.bounced);
	((uint8_t *)b.host)[7] = 0x3c; /* the client's own page (file 0x2000) */
	assert_int_equal(fx.mem[0x2007], 0x3c);
	/* Still valid while its window stays, whatever else goes ... */
	assert_int_equal(vfk_dma_remove(d, hi + 0x10000, 0x2000), 0);
	assert_int_equal(vfk_dma_buf_check(d, &b), 0);
	/* ... and not once its own window went (the engine must stop). */
	assert_int_equal(vfk_dma_remove(d, hi + 0x2000, 0x1000), 0);
	assert_int_equal(vfk_dma_buf_check(d, &b), -EFAULT);
	vfk_dma_release_buf(d, &b);
	assert_null(b.host);
	/* A bounced buffer is the pool's: always valid; released without a
	 * copy back, nothing reaches the client. */
	memset(fx.mem, 0x12, 0x2000);
	assert_int_equal(vfk_dma_map_buf(d, hi, 0x2000, VFK_DMA_FROM_DEVICE, &b), 0);
	assert_true(b.bounced);
	memset(b.host, 0x99, 0x2000);
	assert_int_equal(vfk_dma_remove(d, hi + 0x3000, 0x1000), 0);
	assert_int_equal(vfk_dma_buf_check(d, &b), 0);
	vfk_dma_release_buf(d, &b);
	assert_int_equal(fx.mem[0], 0x12);
	assert_int_equal(fx.mem[0x1fff], 0x12);
}

/* A client shrinks a file under its window.  A guarded copy fails with
 * EFAULT; a model's own access through a host pointer reads zeros (the
 * guard's zero page) instead of killing the process, and the next
 * dispatch marks the file vanished, so every later DMA to it fails. */
static void test_vanished_memory(void **state)
{
	struct vfk_dev *d = fx.dev;
	int mfd = memfd_create("shrunk", MFD_CLOEXEC);
	struct vfk_sg sg;
	uint8_t buf[16];
	volatile uint8_t *p;

	(void)state;
	vfk_dma_guard_reinstall(); /* cmocka installs its own before each test */
	assert_int_equal(ftruncate(mfd, 0x2000), 0);
	assert_int_equal(vfk_dma_add(d, 0x500000, 0x1000, RW, mfd, 0), 0);
	assert_int_equal(vfk_dma_add(d, 0x501000, 0x1000, RW, mfd, 0x1000), 0);
	assert_int_equal(vfk_dma_translate(d, 0x501000, 16, VFK_PROT_READ, &sg, 1), 1);
	p = sg.host;
	assert_int_equal(ftruncate(mfd, 0x1000), 0); /* the second page goes */
	assert_int_equal(vfk_dma_read(d, 0x500000, buf, 16), 0); /* still there */
	assert_int_equal(vfk_dma_read(d, 0x501000, buf, 16), -EFAULT);
	assert_int_equal(vfk_dma_memcpy(buf, sg.host, 16), -EFAULT);
	/* An unguarded access survives, and reads zeros. */
	assert_int_equal(p[3], 0);
	vfk_dma_note_faults(d);
	/* Now the whole file's mapping is marked: even its live page. */
	assert_int_equal(vfk_dma_translate(d, 0x500000, 16, VFK_PROT_READ, &sg, 1), -EFAULT);
	assert_int_equal(vfk_dma_write(d, 0x500000, buf, 16), -EFAULT);
	/* A new window of the file gets a new mapping, which works. */
	assert_int_equal(vfk_dma_remove(d, 0x500000, 0x2000), 0);
	assert_int_equal(vfk_dma_add(d, 0x500000, 0x1000, RW, mfd, 0), 0);
	assert_int_equal(vfk_dma_write(d, 0x500000, buf, 16), 0);
	vfk_dma_remove_all(d);
	close(mfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_translate_and_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_translate_coalesces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_windows_one_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_against_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished_memory, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
