/* SPDX-License-Identifier: MIT */
/*
 * Allocation failures, as SQLite's fault injection does them: the test is
 * linked with -Wl,--wrap for the allocator, and a whole session (server
 * and client in one process: device, server, connection, region and IRQ
 * info, DMA windows with and without fd, a copy that needs DMA messages,
 * an interrupt, unmap, close, destroy) runs once for every allocation it
 * makes, with that one allocation failing; then the same for the NVMe
 * model (a memory namespace, its I/O thread, and the userspace driver
 * writing and reading back a pattern).  Each run must end cleanly:
 * an error or a success, never a crash or a hang, and nothing leaked (the
 * sanitizer build checks leaks and double frees at exit).  The runs end
 * when a session makes no more allocations than the countdown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dma_test.h"
#include "driver.h"
#include "nvme.h"
#include "nvme_drv.h"
#include "vfiokit/vfiokit.h"

/* ---- the wrapped allocator ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);

/* Allocations left before the one that fails; negative: none fails. */
static atomic_long countdown = -1;
static atomic_bool injected;

static atomic_long calls; /* allocations seen, for the report */

static bool fail_now(void)
{
	atomic_fetch_add(&calls, 1);
	if (atomic_load(&countdown) < 0)
		return false;
	if (atomic_fetch_sub(&countdown, 1) != 0)
		return false;
	atomic_store(&injected, true);
	return true;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return fail_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
	return fail_now() ? ENOMEM : __real_posix_memalign(p, a, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	return fail_now() ? NULL : __real_aligned_alloc(a, n);
}

/* ---- the session ---- */

static void *serve(void *arg)
{
	(void)vfk_server_run(arg);
	return NULL;
}

/* `dev` served on a thread over a socketpair, and a client of it. */
struct loop {
	struct vfk_server *srv;
	pthread_t thread;
	bool running;
	struct vfk_device *d;
};

/* Every step may fail; loop_close() undoes what was made either way. */
static int loop_open(struct loop *l, struct vfk_dev *dev, const struct vfk_server_opts *so)
{
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION, .timeout_ms = 1000 };
	int sv[2];

	memset(l, 0, sizeof(*l));
	if (vfk_server_create(dev, so, &l->srv))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -1;
	if (vfk_server_adopt_fd(l->srv, sv[1])) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pthread_create(&l->thread, NULL, serve, l->srv)) {
		close(sv[0]);
		return -1;
	}
	l->running = true;
	if (vfk_device_open_fd(sv[0], &co, &l->d)) {
		close(sv[0]); /* a failed open leaves it ours */
		l->d = NULL;
		return -1;
	}
	return 0;
}

static void loop_close(struct loop *l)
{
	if (l->d)
		vfk_device_close(l->d);
	if (l->running) {
		vfk_server_stop(l->srv);
		pthread_join(l->thread, NULL);
	}
	if (l->srv)
		vfk_server_destroy(l->srv);
}

/* One session; every step may fail, and what was made is undone.  True
 * if it got through the copy. */
static bool session(void)
{
	struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION,
				      .reply_timeout_ms = 500 };
	static uint8_t anon[1 << 16];
	struct vfk_dev *dev = NULL;
	struct vfk_device *d;
	struct vfk_region_info ri;
	struct vfk_irq_info ii;
	struct loop l;
	uint8_t *mem = MAP_FAILED;
	int memfd = -1, e = -1;
	bool copied = false;

	if (dma_test_create(NULL, &dev))
		return false;
	if (loop_open(&l, dev, &so))
		goto out;
	d = l.d;
	for (uint32_t i = 0; i < VFK_PCI_NUM_REGIONS; i++)
		(void)vfk_region_get_info(d, i, &ri);
	for (uint32_t i = 0; i < VFK_PCI_NUM_IRQS; i++)
		(void)vfk_device_irq_info(d, i, &ii);
	memfd = memfd_create("af", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, 1 << 16))
		goto out;
	mem = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		goto out;
	memset(mem, 0x5a, 1 << 16);
	e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	{
		int r[4] = {
			dma_test_enable(d),
			vfk_device_irq_set_eventfds(d, VFK_PCI_MSIX, 0, 1, &e),
			vfk_device_dma_map(d, &(struct vfk_dma_mapping){
				0x100000, 1 << 16, mem, memfd, 0, VFK_DMA_READ | VFK_DMA_WRITE }),
			vfk_device_dma_map(d, &(struct vfk_dma_mapping){
				0x200000, 1 << 16, anon, -1, 0, VFK_DMA_READ | VFK_DMA_WRITE }),
		};

		if (r[0] || r[1] || r[2] || r[3])
			goto out;
	}
	/* Into memory without fd: DMA_WRITE messages the client answers. */
	{
		int r1 = dma_test_start(d, 0x100000, 0x200000, 1 << 16, DMA_TEST_CTRL_IRQ);
		int r2 = r1 ? -1 : dma_test_wait_irq(d, e, 2000);

		copied = !r1 && !r2 && memcmp(anon, mem, 1 << 16) == 0;
	}
	(void)vfk_device_dma_unmap_all(d);
	(void)vfk_device_reset(d);
out:
	loop_close(&l);
	dma_test_destroy(dev);
	if (mem != MAP_FAILED)
		munmap(mem, 1 << 16);
	if (memfd >= 0)
		close(memfd);
	if (e >= 0)
		close(e);
	return copied;
}

/* The NVMe session: true if the pattern came back. */
static bool nvme_session(void)
{
	struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION };
	struct nvme_opts no = { .ram_size = 16u << 20 };
	struct nvd_opts dopts = { .qsize = 16, .buf_size = 1u << 16, .timeout_ms = 1000 };
	struct vfk_dev *dev = NULL;
	struct vfk_device *d;
	struct nvd *n = NULL;
	struct loop l;
	bool ok = false;

	if (nvme_create(&no, &dev))
		return false;
	if (loop_open(&l, dev, &so))
		goto out;
	d = l.d;
	if (nvd_open(d, &dopts, &n))
		goto out;
	for (unsigned i = 0; i < 4096; i++)
		n->buf[i] = (uint8_t)(i * 5 + 1);
	if (nvd_rw(n, 1, true, 8, 8, 0, 0))
		goto out;
	memset(n->buf, 0, 4096);
	if (nvd_rw(n, 1, false, 8, 8, 0, 0))
		goto out;
	ok = true;
	for (unsigned i = 0; i < 4096 && ok; i++)
		ok = n->buf[i] == (uint8_t)(i * 5 + 1);
out:
	nvd_close(n);
	loop_close(&l);
	nvme_destroy(dev);
	return ok;
}

/* Run `fn` with the 1st, 2nd, ... allocation failing until a run makes
 * no more allocations than that; returns how many a whole run makes. */
static long each_allocation_fails(bool (*fn)(void))
{
	bool whole = false;
	long n;

	atomic_store(&calls, 0);
	whole = fn();
	printf("# a run without failures: %ld allocations (threads included)\n",
	       atomic_load(&calls));
	for (n = 0; n < 100000; n++) {
		atomic_store(&injected, false);
		atomic_store(&countdown, n);
		whole = fn();
		atomic_store(&countdown, -1);
		if (!atomic_load(&injected))
			break; /* the run made fewer than n + 1 allocations */
	}
	/* The run in which nothing failed went all the way. */
	assert_true(whole);
	return n;
}

static void test_every_allocation_fails_once(void **state)
{
	long n;

	(void)state;
	n = each_allocation_fails(session);
	printf("# dma-test session: %ld allocations; each failed once, in its own run\n", n);
	assert_true(n > 10 && n < 100000);
}

static void test_nvme_every_allocation_fails_once(void **state)
{
	long n;

	(void)state;
	n = each_allocation_fails(nvme_session);
	printf("# nvme session: %ld allocations; each failed once, in its own run\n", n);
	assert_true(n > 10 && n < 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_allocation_fails_once),
		cmocka_unit_test(test_nvme_every_allocation_fails_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
