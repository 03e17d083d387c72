/* SPDX-License-Identifier: MIT */
/*
 * The DMA table: the windows of client memory a device may reach.
 *
 * Windows are kept in an array sorted by IOVA; lookup is a binary search,
 * preceded by a check of the window that answered last (DMA tends to stay
 * in one window).  Insertion shifts the tail of the array, which is cheap
 * for the usual ascending map order.
 *
 * Mappings.  A client sends an fd with every DMA_MAP, often a fresh dup of
 * the same memfd (QEMU does that for each RAM section).  One mmap per
 * window would cost a VMA each and 65,535 windows would exhaust
 * vm.max_map_count (65,530 by default), so windows are mapped through a
 * shared mapping of the whole file, one per (inode, protection); the fd
 * itself is closed as soon as it is mapped.
 *
 * Concurrency.  Device threads translate while the server thread changes
 * the table, so the table has a writer-preferring rwlock, and copies to
 * mapped windows run under the read lock: an unmap waits for them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static size_t real_page(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

/* ---- SIGBUS guard ----
 *
 * A client can shrink a file after the server mapped it for DMA (a memfd
 * without F_SEAL_SHRINK, a plain file); touching the vanished pages raises
 * SIGBUS, wherever the access happens, including in a model holding a
 * host pointer.  So every client-file mapping lives inside one reserved
 * stretch of address space (the arena), and the SIGBUS handler asks only
 * whether the fault is inside it: no table, no limit on the number of
 * files.  Then:
 *   - in a guarded copy (vfk_dma_memcpy, and the library's own copies) the
 *     handler jumps back to the copy, which fails with -EFAULT, as an
 *     IOMMU fault fails a DMA;
 *   - anywhere else it puts a private zero page there so that the access
 *     can retry, and notes the address; the server thread marks the
 *     file's mapping vanished at its next dispatch.
 * Either way the file is marked: every later DMA into it fails with
 * -EFAULT (logged once), never a "success" whose data went nowhere.
 * Faults outside the arena go to the previous handler, or kill as before.
 */
#define ARENA_MAX (1ull << 45)  /* 32 TiB of address space, reserved only */
#define ARENA_MIN (1ull << 34)
#define FAULT_RING 64u

struct arena_range {
	uintptr_t start;
	size_t len;
};

static struct {
	pthread_mutex_t lock;
	uintptr_t base;
	size_t len;
	struct arena_range *free; /* sorted, disjoint, never adjacent */
	size_t nfree, capfree;
} arena = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct arena_range arena_free0[64]; /* the free list until it grows */
static struct sigaction guard_prev;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static size_t guard_page;
static atomic_ulong guard_hits;
/* Addresses of unguarded faults, for the server threads to attribute. */
static _Atomic uintptr_t fault_ring[FAULT_RING];
static atomic_uint fault_head;
/* The innermost guarded copy of this thread, for the handler. */
static __thread sigjmp_buf *volatile guard_env __attribute__((tls_model("initial-exec")));

static bool in_arena(uintptr_t a)
{
	return arena.len && a - arena.base < arena.len;
}

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	if (in_arena(a)) {
		long r;

		atomic_fetch_add(&guard_hits, 1);
		if (guard_env)
			siglongjmp(*guard_env, 1);
		/* mmap through syscall(): the raw call is safe here. */
		r = syscall(SYS_mmap, a & ~(uintptr_t)(guard_page - 1), guard_page,
			    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (r != -1) {
			unsigned i = atomic_fetch_add(&fault_head, 1);

			atomic_store(&fault_ring[i % FAULT_RING], a);
			return;
		}
	}
	if ((guard_prev.sa_flags & SA_SIGINFO) && guard_prev.sa_sigaction) {
		guard_prev.sa_sigaction(sig, si, uc);
	} else if (guard_prev.sa_handler != SIG_DFL && guard_prev.sa_handler != SIG_IGN) {
		guard_prev.sa_handler(sig);
	} else {
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

static void guard_install(void)
{
	struct sigaction sa;
	uint64_t len;
	void *p = MAP_FAILED;

	guard_page = real_page();
	/* As much as the address-space limit allows, halving from 32 TiB. */
	for (len = ARENA_MAX; len >= ARENA_MIN && p == MAP_FAILED; len >>= 1)
		p = mmap(NULL, (size_t)len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return; /* file-backed DMA windows are refused (file_get) */
	/* No allocation here: a failure now would disable the guard for
	 * good (pthread_once does not retry). */
	arena.free = arena_free0;
	arena.capfree = sizeof(arena_free0) / sizeof(arena_free0[0]);
	arena.free[0] = (struct arena_range){ (uintptr_t)p, (size_t)(len << 1) };
	arena.nfree = 1;
	arena.base = (uintptr_t)p;
	arena.len = (size_t)(len << 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = guard_handler;
	/* SA_NODEFER: the handler may leave by siglongjmp without restoring
	 * a signal mask (sigsetjmp(env, 0) saves none). */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &guard_prev);
}

void vfk_dma_guard_reinstall(void)
{
	struct sigaction sa, cur;

	pthread_once(&guard_once, guard_install);
	if (sigaction(SIGBUS, NULL, &cur) || ((cur.sa_flags & SA_SIGINFO) &&
					      cur.sa_sigaction == guard_handler))
		return; /* still ours */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = guard_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &guard_prev);
}

/* First fit of `len` bytes of the arena, or 0. */
static uintptr_t arena_alloc(size_t len)
{
	uintptr_t a = 0;

	pthread_once(&guard_once, guard_install);
	pthread_mutex_lock(&arena.lock);
	for (size_t i = 0; i < arena.nfree; i++) {
		if (arena.free[i].len < len)
			continue;
		a = arena.free[i].start;
		arena.free[i].start += len;
		arena.free[i].len -= len;
		if (!arena.free[i].len) {
			memmove(&arena.free[i], &arena.free[i + 1],
				(arena.nfree - i - 1) * sizeof(arena.free[0]));
			arena.nfree--;
		}
		break;
	}
	pthread_mutex_unlock(&arena.lock);
	return a;
}

/* Give [a, a+len) back: reserved again (never a hole another mapping could
 * take), and into the free list, merged with its neighbours.  A list that
 * cannot grow keeps the range reserved and unused. */
static void arena_free(uintptr_t a, size_t len)
{
	size_t i = 0;

	mmap((void *)a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
	     -1, 0);
	pthread_mutex_lock(&arena.lock);
	while (i < arena.nfree && arena.free[i].start < a)
		i++;
	if (i > 0 && arena.free[i - 1].start + arena.free[i - 1].len == a) {
		arena.free[i - 1].len += len;
		if (i < arena.nfree && a + len == arena.free[i].start) {
			arena.free[i - 1].len += arena.free[i].len;
			memmove(&arena.free[i], &arena.free[i + 1],
				(arena.nfree - i - 1) * sizeof(arena.free[0]));
			arena.nfree--;
		}
	} else if (i < arena.nfree && a + len == arena.free[i].start) {
		arena.free[i].start = a;
		arena.free[i].len += len;
	} else {
		if (arena.nfree == arena.capfree) {
			struct arena_range *n = arena.free == arena_free0 ? NULL : arena.free;

			n = realloc(n, 2 * arena.capfree * sizeof(*n));
			if (!n) {
				pthread_mutex_unlock(&arena.lock);
				return; /* the range stays reserved, unused */
			}
			if (arena.free == arena_free0)
				memcpy(n, arena_free0, sizeof(arena_free0));
			arena.free = n;
			arena.capfree *= 2;
		}
		memmove(&arena.free[i + 1], &arena.free[i], (arena.nfree - i) * sizeof(arena.free[0]));
		arena.free[i] = (struct arena_range){ a, len };
		arena.nfree++;
	}
	pthread_mutex_unlock(&arena.lock);
}

/* The copy behind vfk_dma_memcpy.  `prev` is volatile: the jump back must
 * not find the previous guard in a register the copy clobbered. */
static int guarded_copy(void *dst, const void *src, size_t len)
{
	sigjmp_buf env;
	sigjmp_buf *volatile prev = guard_env;

	if (sigsetjmp(env, 0)) {
		guard_env = prev;
		return -EFAULT;
	}
	guard_env = &env;
	/* The handler reads guard_env: the compiler may not move the copy
	 * out from between the two stores, builtin or not. */
	atomic_signal_fence(memory_order_seq_cst);
	memmove(dst, src, len);
	atomic_signal_fence(memory_order_seq_cst);
	guard_env = prev;
	return 0;
}

int vfk_dma_memcpy(void *dst, const void *src, size_t len)
{
	return guarded_copy(dst, src, len);
}

unsigned long vfk_dma_guard_hits(void)
{
	return atomic_load(&guard_hits);
}

static void file_mark_vanished(struct vfk_dev *dev, struct dma_file *f)
{
	if (!atomic_exchange(&f->vanished, true))
		vfk_dev_log(dev, VFK_LOG_WARN,
			    "client memory vanished under a DMA mapping (the client shrank "
			    "its file): DMA to its %zu bytes fails from now on", f->len);
}

void vfk_dma_note_faults(struct vfk_dev *dev)
{
	struct dma_table *t = &dev->dma;
	unsigned head = atomic_load(&fault_head);

	if (head == t->faults_seen)
		return;
	if (head - t->faults_seen > FAULT_RING)
		t->faults_seen = head - FAULT_RING; /* older ones were overwritten */
	pthread_rwlock_wrlock(&t->lock);
	for (; t->faults_seen != head; t->faults_seen++) {
		uintptr_t a = atomic_load(&fault_ring[t->faults_seen % FAULT_RING]);

		for (struct dma_file *f = t->files; f; f = f->next)
			if (a - (uintptr_t)f->base < f->len)
				file_mark_vanished(dev, f);
	}
	pthread_rwlock_unlock(&t->lock);
}

int vfk_dma_init(struct vfk_dev *dev, uint32_t max)
{
	pthread_rwlockattr_t a;
	int rc;

	/* The arena and the handler come first, not with the first client
	 * file: a process's mappings then look the same before and after. */
	pthread_once(&guard_once, guard_install);
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&dev->dma.lock, &a);
	pthread_rwlockattr_destroy(&a);
	if (rc)
		return -rc;
	dev->dma.max = max;
	return 0;
}

static void file_put(struct dma_table *t, struct dma_file *f)
{
	struct dma_file **pp;

	if (!f || --f->refs)
		return;
	for (pp = &t->files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	arena_free((uintptr_t)f->base, f->len);
	free(f);
}

void vfk_dma_fini(struct vfk_dev *dev)
{
	struct dma_table *t = &dev->dma;

	for (size_t i = 0; i < t->n; i++)
		file_put(t, t->w[i].file);
	free(t->w);
	free(t->starts);
	free(t->summary);
	t->w = NULL;
	t->starts = NULL;
	t->summary = NULL;
	t->n = t->cap = 0;
	pthread_rwlock_destroy(&t->lock);
}

size_t vfk_dma_count(struct vfk_dev *dev)
{
	return dev->dma.n;
}

/* First index in a[0, n) whose value is greater than `key`: a halving
 * loop whose step is a conditional move, not a branch on the data. */
static size_t ub_array(const uint64_t *a, size_t n, uint64_t key)
{
	const uint64_t *base = a;

	if (n == 0)
		return 0;
	while (n > 1) {
		size_t half = n / 2;

		base = base[half] <= key ? base + half : base;
		n -= half;
	}
	return (size_t)(base - a) + (*base <= key);
}

/*
 * Index of the first window whose iova is greater than `iova`.  Two levels:
 * the summary holds every DMA_BLOCK-th start (4,096 entries, 32 KiB, at
 * 65,535 windows: it stays in L1/L2), and picks one block of 16 windows to
 * finish in.  The block's starts (2 cache lines) and its window entries
 * (10 lines) are all requested at once, so a random lookup waits for
 * about one memory access, not one per level of a binary search plus the
 * window after it.
 */
static size_t upper_bound(const struct dma_table *t, uint64_t iova)
{
	size_t b = ub_array(t->summary, t->nsummary, iova);
	size_t first, len;

	if (b == 0)
		return 0; /* below the first window */
	first = (b - 1) * DMA_BLOCK;
	len = t->n - first < DMA_BLOCK ? t->n - first : DMA_BLOCK;
	/* Ask for the block's cache lines all at once: the misses then
	 * overlap instead of following each halving step. */
	for (size_t k = 0; k < len; k += 64 / sizeof(uint64_t))
		__builtin_prefetch(t->starts + first + k);
	for (size_t k = 0; k < len * sizeof(struct dma_win); k += 64)
		__builtin_prefetch((const char *)(t->w + first) + k);
	return first + ub_array(t->starts + first, len, iova);
}

/* Refresh the summary from position `from` on (after an insert/remove). */
static void summary_update(struct dma_table *t, size_t from)
{
	t->nsummary = (t->n + DMA_BLOCK - 1) / DMA_BLOCK;
	for (size_t k = from / DMA_BLOCK; k < t->nsummary; k++)
		t->summary[k] = t->starts[k * DMA_BLOCK];
}

/* The window containing `iova`, or NULL.  Caller holds the lock. */
static struct dma_win *lookup(struct dma_table *t, uint64_t iova, size_t *hint)
{
	size_t i = *hint;

	if (i < t->n && t->w[i].iova <= iova && iova <= t->w[i].last)
		return &t->w[i];
	i = upper_bound(t, iova);
	if (i == 0 || t->w[i - 1].last < iova)
		return NULL;
	*hint = i - 1;
	return &t->w[i - 1];
}

/* Map the file behind `fd` so that [off, off+size) is reachable. */
static int file_get(struct dma_table *t, int fd, uint64_t off, uint64_t size,
		    uint32_t prot, struct dma_file **out, uint8_t **host)
{
	struct stat st;
	struct dma_file *f;
	int acc, mprot;
	uint64_t map_off, map_len;
	uintptr_t addr;
	size_t page = real_page();

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL; /* sockets, pipes, directories: not memory */
	acc = fcntl(fd, F_GETFL);
	if (acc < 0)
		return -errno;
	acc &= O_ACCMODE;
	if (acc == O_WRONLY)
		return -EACCES;
	if ((prot & VFK_DMA_WRITE) && acc != O_RDWR)
		return -EACCES;
	/* Map for what the window allows: a read-only window of a
	 * write-sealed memfd must not ask for a writable mapping. */
	mprot = (prot & VFK_DMA_WRITE) ? PROT_READ | PROT_WRITE : PROT_READ;
	if (S_ISREG(st.st_mode)) {
		/* Touching a page past EOF raises SIGBUS: refuse up front. */
		if (off > (uint64_t)st.st_size || size > (uint64_t)st.st_size - off)
			return -EINVAL;
		map_off = 0;
		map_len = ((uint64_t)st.st_size + page - 1) & ~(uint64_t)(page - 1);
	} else {
		map_off = off & ~(uint64_t)(page - 1);
		map_len = ((off + size + page - 1) & ~(uint64_t)(page - 1)) - map_off;
	}
	for (f = t->files; f; f = f->next) {
		if (f->dev == st.st_dev && f->ino == st.st_ino && !atomic_load(&f->vanished) &&
		    (f->prot & mprot) == mprot &&
		    f->map_off <= off && off - f->map_off <= f->len &&
		    size <= f->len - (off - f->map_off)) {
			f->refs++;
			*out = f;
			*host = f->base + (off - f->map_off);
			return 0;
		}
	}
	if (map_len > SIZE_MAX)
		return -ENOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	/* Inside the arena, so that the SIGBUS guard covers it. */
	addr = arena_alloc((size_t)map_len);
	if (!addr) {
		free(f);
		return -ENOMEM;
	}
	f->base = mmap((void *)addr, (size_t)map_len, mprot, MAP_SHARED | MAP_FIXED, fd,
		       (off_t)map_off);
	if (f->base == MAP_FAILED) {
		int err = errno == ENODEV ? -EINVAL : -errno;

		arena_free(addr, (size_t)map_len);
		free(f);
		return err;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->prot = mprot;
	f->map_off = map_off;
	f->len = (size_t)map_len;
	f->refs = 1;
	f->next = t->files;
	t->files = f;
	*out = f;
	*host = f->base + (off - map_off);
	return 0;
}

int vfk_dma_add(struct vfk_dev *dev, uint64_t iova, uint64_t size,
		uint32_t prot, int fd, uint64_t fd_offset)
{
	struct dma_table *t = &dev->dma;
	struct dma_win w = { .iova = iova, .last = iova + size - 1, .prot = prot };
	size_t i;
	int rc;

	if (size == 0 || w.last < iova)
		return -EINVAL;
	if (t->n >= t->max)
		return -ENOSPC;
	/* Only the server thread changes the table, so it may look at it
	 * without the lock; the write lock guards readers on other threads. */
	i = upper_bound(t, iova);
	if ((i > 0 && t->w[i - 1].last >= iova) || (i < t->n && t->w[i].iova <= w.last))
		return -EEXIST;
	if (fd >= 0) {
		rc = file_get(t, fd, fd_offset, size, prot, &w.file, &w.host);
		if (rc)
			return rc;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct dma_win *nw;
		uint64_t *ns, *sm = NULL;

		pthread_rwlock_wrlock(&t->lock);
		nw = realloc(t->w, cap * sizeof(*nw));
		if (nw)
			t->w = nw;
		ns = nw ? realloc(t->starts, cap * sizeof(*ns)) : NULL;
		if (ns)
			t->starts = ns;
		sm = ns ? realloc(t->summary, (cap / DMA_BLOCK + 1) * sizeof(*sm)) : NULL;
		if (sm) {
			t->summary = sm;
			t->cap = cap;
		}
		pthread_rwlock_unlock(&t->lock);
		if (!sm) {
			file_put(t, w.file);
			return -ENOMEM;
		}
	}
	pthread_rwlock_wrlock(&t->lock);
	memmove(&t->w[i + 1], &t->w[i], (t->n - i) * sizeof(w));
	memmove(&t->starts[i + 1], &t->starts[i], (t->n - i) * sizeof(uint64_t));
	t->w[i] = w;
	t->starts[i] = w.iova;
	t->n++;
	summary_update(t, i);
	pthread_rwlock_unlock(&t->lock);
	if (dev->ops->dma_map) {
		struct vfk_dma_window pub = { iova, size, prot, w.host };

		rc = dev->ops->dma_map(dev, &pub);
		if (rc) {
			/* The model refused it: take the window out again,
			 * without an unmap notification it never accepted. */
			pthread_rwlock_wrlock(&t->lock);
			memmove(&t->w[i], &t->w[i + 1], (t->n - i - 1) * sizeof(w));
			memmove(&t->starts[i], &t->starts[i + 1],
				(t->n - i - 1) * sizeof(uint64_t));
			t->n--;
			summary_update(t, i);
			pthread_rwlock_unlock(&t->lock);
			file_put(t, w.file);
			return rc < 0 ? rc : -EIO;
		}
	}
	return 0;
}

/*
 * Take windows [from, to) out of the table, then tell the model, then drop
 * the mappings.  In that order: once the model's dma_unmap returns, no
 * thread can translate into the window any more (it is gone from the
 * table), and the memory stays mapped until the model has let go.
 */
static void remove_range(struct vfk_dev *dev, size_t from, size_t to)
{
	struct dma_table *t = &dev->dma;
	size_t n = to - from;
	struct dma_win one, *gone = n == 1 ? &one : malloc(n * sizeof(*gone));

	if (!gone) {
		/* No memory for the list: one window at a time, from the
		 * end (each needs no allocation), in the same order. */
		for (size_t k = to; k > from; k--)
			remove_range(dev, k - 1, k);
		return;
	}
	pthread_rwlock_wrlock(&t->lock);
	memcpy(gone, &t->w[from], n * sizeof(*gone));
	memmove(&t->w[from], &t->w[to], (t->n - to) * sizeof(t->w[0]));
	memmove(&t->starts[from], &t->starts[to], (t->n - to) * sizeof(uint64_t));
	t->n -= n;
	summary_update(t, from);
	atomic_fetch_add(&t->gen, 1);
	pthread_rwlock_unlock(&t->lock);
	for (size_t k = 0; k < n; k++) {
		struct vfk_dma_window pub = { gone[k].iova, gone[k].last - gone[k].iova + 1,
					      gone[k].prot, gone[k].host };

		if (dev->ops->dma_unmap)
			dev->ops->dma_unmap(dev, &pub);
	}
	for (size_t k = 0; k < n; k++)
		file_put(t, gone[k].file);
	if (gone != &one)
		free(gone);
}

/*
 * Remove the windows inside [iova, iova+size).  As with Linux's type1v2
 * IOMMU, a range may cover several whole windows but may not cut one:
 * -EINVAL then, and nothing is removed.  A range that covers no window
 * succeeds with nothing removed, as type1 answers: QEMU unmaps ranges it
 * never mapped when it replays a guest IOMMU's address space.
 */
int vfk_dma_remove(struct vfk_dev *dev, uint64_t iova, uint64_t size)
{
	struct dma_table *t = &dev->dma;
	uint64_t last = iova + size - 1;
	size_t from, to;

	if (size == 0 || last < iova)
		return -EINVAL;
	from = upper_bound(t, iova);
	if (from > 0 && t->w[from - 1].iova == iova)
		from--; /* the range starts with this window */
	else if (from > 0 && t->w[from - 1].last >= iova)
		return -EINVAL; /* would cut the window that holds iova */
	to = from;
	while (to < t->n && t->w[to].iova <= last) {
		if (t->w[to].last > last)
			return -EINVAL;
		to++;
	}
	if (to > from)
		remove_range(dev, from, to);
	return 0;
}

void vfk_dma_remove_all(struct vfk_dev *dev)
{
	if (dev->dma.n)
		remove_range(dev, 0, dev->dma.n);
}

/* ---- translation and copies ---- */

static int check_range(struct dma_table *t, uint64_t iova, uint64_t len,
		       uint32_t prot, size_t *hint, bool *has_msg)
{
	uint64_t cur = iova, end = iova + len;

	*has_msg = false;
	while (cur != end) {
		struct dma_win *w = lookup(t, cur, hint);
		uint64_t chunk;

		if (!w)
			return -EFAULT;
		if ((prot & w->prot) != prot)
			return -EACCES;
		if (w->file && atomic_load_explicit(&w->file->vanished, memory_order_relaxed))
			return -EFAULT;
		if (!w->host)
			*has_msg = true;
		chunk = w->last - cur + 1;
		if (chunk == 0 || chunk > end - cur) /* 0: window reaches 2^64 */
			chunk = end - cur;
		cur += chunk;
	}
	return 0;
}

/*
 * The pieces of [iova, iova+len): one per run of windows whose host
 * addresses continue each other (windows of one file at consecutive
 * offsets share one mapping, so a guest IOMMU's page-by-page maps of
 * contiguous guest memory come out as one piece), or of windows without
 * a mapping.  With `partial`, a full `sg` ends the walk with success:
 * the pieces then cover a prefix of the range.
 */
static int translate(struct vfk_dev *dev, uint64_t iova, uint64_t len, uint32_t prot,
		     struct vfk_sg *sg, unsigned max, bool partial)
{
	struct dma_table *t = &dev->dma;
	uint64_t cur = iova, end = iova + len;
	size_t hint = atomic_load_explicit(&t->hint, memory_order_relaxed);
	unsigned n = 0;
	int rc = 0;

	if (len == 0)
		return 0;
	if (end < iova && end != 0)
		return -EFAULT;
	if (prot == 0 || (prot & ~(VFK_PROT_READ | VFK_PROT_WRITE)))
		return -EINVAL;
	if (iova + len - 1 > dev->dma_limit)
		return -EFAULT; /* past the device's address width: a master abort */
	pthread_rwlock_rdlock(&t->lock);
	do {
		struct dma_win *w = lookup(t, cur, &hint);
		uint64_t chunk;
		uint8_t *host;

		if (!w) {
			rc = -EFAULT;
			break;
		}
		if ((prot & w->prot) != prot) {
			rc = -EACCES;
			break;
		}
		if (w->file && atomic_load_explicit(&w->file->vanished, memory_order_relaxed)) {
			rc = -EFAULT; /* the client shrank the file under it */
			break;
		}
		chunk = w->last - cur + 1;
		if (chunk == 0 || chunk > end - cur)
			chunk = end - cur;
		host = w->host ? w->host + (cur - w->iova) : NULL;
		if (n > 0 && (host ? sg[n - 1].host &&
					     (uintptr_t)sg[n - 1].host + sg[n - 1].len ==
						     (uintptr_t)host
				   : sg[n - 1].host == NULL)) {
			sg[n - 1].len += chunk;
		} else if (n == max) {
			if (!partial)
				rc = -ENOSPC;
			break;
		} else {
			sg[n].iova = cur;
			sg[n].len = chunk;
			sg[n].host = host;
			n++;
		}
		cur += chunk;
	} while (cur != end);
	pthread_rwlock_unlock(&t->lock);
	atomic_store_explicit(&t->hint, hint, memory_order_relaxed);
	return rc ? rc : (int)n;
}

int vfk_dma_translate(struct vfk_dev *dev, uint64_t iova, uint64_t len,
		      uint32_t prot, struct vfk_sg *sg, unsigned max)
{
	return translate(dev, iova, len, prot, sg, max, false);
}

int vfk_dma_translate_prefix(struct vfk_dev *dev, uint64_t iova, uint64_t len,
			     uint32_t prot, struct vfk_sg *sg, unsigned max)
{
	if (max == 0)
		return -EINVAL;
	return translate(dev, iova, len, prot, sg, max, true);
}

static int dma_copy(struct vfk_dev *dev, bool write, uint64_t iova, void *buf,
		    size_t len)
{
	struct dma_table *t = &dev->dma;
	uint32_t prot = write ? VFK_PROT_WRITE : VFK_PROT_READ;
	uint64_t cur = iova, end = iova + len;
	uint8_t *b = buf;
	size_t hint = atomic_load_explicit(&t->hint, memory_order_relaxed);
	bool has_msg;
	unsigned resets;
	int rc;

	if (len == 0)
		return 0;
	if ((end < iova && end != 0) || iova + len - 1 > dev->dma_limit)
		return -EFAULT;
	pthread_rwlock_rdlock(&t->lock);
	rc = check_range(t, iova, len, prot, &hint, &has_msg);
	if (rc || !has_msg) {
		/* The common case: everything mapped, copied under the lock
		 * so that an unmap cannot pull a window away mid-copy. */
		while (!rc && cur != end) {
			struct dma_win *w = lookup(t, cur, &hint);
			uint64_t chunk = w->last - cur + 1;

			if (chunk == 0 || chunk > end - cur)
				chunk = end - cur;
			rc = write ? guarded_copy(w->host + (cur - w->iova), b, chunk)
				   : guarded_copy(b, w->host + (cur - w->iova), chunk);
			if (rc)
				file_mark_vanished(dev, w->file);
			b += chunk;
			cur += chunk;
		}
		pthread_rwlock_unlock(&t->lock);
		atomic_store_explicit(&t->hint, hint, memory_order_relaxed);
		return rc;
	}
	pthread_rwlock_unlock(&t->lock);

	/* Some window has no mapping: go window by window, dropping the lock
	 * around the messages (the client must be able to answer). */
	if (!dev->srv || dev->in_region_cb ||
	    !pthread_equal(pthread_self(), dev->srv_thread))
		return -EDEADLK;
	resets = dev->reset_count;
	while (cur != end) {
		struct dma_win *w;
		uint64_t chunk;
		uint8_t *host;

		pthread_rwlock_rdlock(&t->lock);
		w = lookup(t, cur, &hint);
		if (!w || (prot & w->prot) != prot) {
			pthread_rwlock_unlock(&t->lock);
			return w ? -EACCES : -EFAULT;
		}
		chunk = w->last - cur + 1;
		if (chunk == 0 || chunk > end - cur)
			chunk = end - cur;
		host = w->host ? w->host + (cur - w->iova) : NULL;
		if (host) {
			rc = write ? guarded_copy(host, b, chunk) : guarded_copy(b, host, chunk);
			if (rc)
				file_mark_vanished(dev, w->file);
			pthread_rwlock_unlock(&t->lock);
			if (rc)
				return rc;
		} else {
			pthread_rwlock_unlock(&t->lock);
			rc = vfk_server_dma_msg(dev->srv, write, cur, b, chunk);
			if (rc)
				return rc;
			/* The client was served meanwhile: a reset voids what
			 * the device was doing, so its DMA fails. */
			if (dev->reset_count != resets)
				return -ECANCELED;
		}
		b += chunk;
		cur += chunk;
	}
	return 0;
}

int vfk_dma_read(struct vfk_dev *dev, uint64_t iova, void *buf, size_t len)
{
	return dma_copy(dev, false, iova, buf, len);
}

int vfk_dma_write(struct vfk_dev *dev, uint64_t iova, const void *buf,
		  size_t len)
{
	return dma_copy(dev, true, iova, (void *)buf, len);
}
