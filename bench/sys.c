/* SPDX-License-Identifier: MIT */
/*
 * Counting what the server does per request, from outside its code.
 *
 * Heap allocations.  The benchmark programs are linked with
 * -Wl,--wrap=malloc,... (bench_dep), so every call to the allocator from
 * code linked into them -- libvfiokit, the device models, the benchmark --
 * goes through the counters below.  Allocations made inside shared
 * libraries (libc's own, json-c's during VERSION) are not seen; none of
 * them is on the request path.  The counters live in a page shared by all
 * the benchmark's processes, one slot per process, so the parent reads a
 * server's count without asking it (asking would itself be a request).
 *
 * System calls.  `strace -c -f -p PID` attached to the running server for
 * a fixed number of requests: the kernel's view, including calls made by
 * libc, and no assumption about the code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ---- allocation counters ---- */

static struct alloc_counts local_counts;
static struct alloc_counts *shared_counts;
static struct alloc_counts *cur = &local_counts;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);

#define COUNT(field) __atomic_fetch_add(&cur->field, 1, __ATOMIC_RELAXED)

void *__wrap_malloc(size_t n)
{
	COUNT(malloc);
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	COUNT(calloc);
	return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	COUNT(realloc);
	return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
	if (p)
		COUNT(free);
	__real_free(p);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
	COUNT(memalign);
	return __real_posix_memalign(p, a, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	COUNT(memalign);
	return __real_aligned_alloc(a, n);
}

int alloc_init(void)
{
	void *p = mmap(NULL, ALLOC_SLOTS * sizeof(struct alloc_counts),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	shared_counts = p;
	alloc_use_slot(ALLOC_SLOT_BENCH);
	return 0;
}

void alloc_use_slot(unsigned slot)
{
	if (shared_counts && slot < ALLOC_SLOTS)
		cur = &shared_counts[slot];
}

void alloc_read(unsigned slot, struct alloc_counts *out)
{
	const struct alloc_counts *c = shared_counts && slot < ALLOC_SLOTS ?
					       &shared_counts[slot] : &local_counts;

	out->malloc = __atomic_load_n(&c->malloc, __ATOMIC_RELAXED);
	out->calloc = __atomic_load_n(&c->calloc, __ATOMIC_RELAXED);
	out->realloc = __atomic_load_n(&c->realloc, __ATOMIC_RELAXED);
	out->free = __atomic_load_n(&c->free, __ATOMIC_RELAXED);
	out->memalign = __atomic_load_n(&c->memalign, __ATOMIC_RELAXED);
}

uint64_t alloc_delta(const struct alloc_counts *a, const struct alloc_counts *b)
{
	return (b->malloc - a->malloc) + (b->calloc - a->calloc) +
	       (b->realloc - a->realloc) + (b->memalign - a->memalign);
}

bool alloc_counting_works(void)
{
	struct alloc_counts a, b;
	void *p;

	alloc_read(ALLOC_SLOT_BENCH, &a);
	p = malloc(24);
	/* the compiler may not drop a malloc whose result escapes */
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
	alloc_read(ALLOC_SLOT_BENCH, &b);
	return alloc_delta(&a, &b) == 1;
}

/* ---- strace ---- */

bool strace_available(void)
{
	const char *path = getenv("PATH");
	char buf[512];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/strace", (int)n, path);
		if (access(buf, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

static pid_t tracer_of(pid_t pid)
{
	char p[64], line[256];
	FILE *f;
	pid_t t = -1;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &t) == 1)
			break;
	fclose(f);
	return t;
}

int strace_start(struct strace_run *s, pid_t target, char *why, size_t whylen)
{
	char pidbuf[16];
	int fd, st;

	strcpy(s->out, "/tmp/vfk-bench-strace.XXXXXX");
	fd = mkstemp(s->out);
	if (fd < 0) {
		snprintf(why, whylen, "mkstemp: %s", strerror(errno));
		return -errno;
	}
	close(fd);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)target);
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		unlink(s->out);
		return -errno;
	}
	if (s->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* strace's own chatter would garble our table */
		if (null >= 0) {
			dup2(null, 2);
			close(null);
		}
		execlp("strace", "strace", "-c", "-f", "-q", "-o", s->out, "-p", pidbuf,
		       (char *)NULL);
		_exit(127);
	}
	/* Attached once the kernel shows strace as the tracer. */
	for (int i = 0; i < 1000; i++) {
		if (tracer_of(target) == s->pid) {
			/* let strace finish seizing every thread */
			usleep(50000);
			return 0;
		}
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			snprintf(why, whylen, "strace could not attach (exit %d)",
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			s->pid = 0;
			unlink(s->out);
			return -EPERM;
		}
		usleep(5000);
	}
	snprintf(why, whylen, "strace did not attach in 5 s");
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
	unlink(s->out);
	return -ETIMEDOUT;
}

/*
 * The summary of `strace -c`:
 *   % time     seconds  usecs/call     calls    errors syscall
 *   ------ ----------- ----------- --------- --------- ----------------
 *    60.00    0.000060          20         3         1 recvmsg
 *   ...
 *   ------ ----------- ----------- --------- --------- ----------------
 *   100.00    0.000100          20         5         1 total
 * The errors column is blank for calls that never failed.
 */
static int parse_summary(const char *path, struct sc_result *r)
{
	char line[256];
	FILE *f = fopen(path, "r");
	int dashes = 0;

	if (!f)
		return -errno;
	r->n = 0;
	while (fgets(line, sizeof(line), f)) {
		char *tok[8], *save = NULL, *t;
		int nt = 0;

		if (!strncmp(line, "------", 6)) {
			dashes++;
			continue;
		}
		if (dashes != 1)
			continue;
		for (t = strtok_r(line, " \t\n", &save); t && nt < 8;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[nt++] = t;
		if ((nt != 5 && nt != 6) || r->n == SC_MAX)
			continue;
		snprintf(r->e[r->n].name, sizeof(r->e[r->n].name), "%s", tok[nt - 1]);
		r->e[r->n].calls = strtoull(tok[3], NULL, 10);
		r->e[r->n].errors = nt == 6 ? strtoull(tok[4], NULL, 10) : 0;
		r->n++;
	}
	fclose(f);
	return dashes >= 1 ? 0 : -EPROTO;
}

int strace_finish(struct strace_run *s, struct sc_result *r)
{
	int st, rc;

	if (s->pid <= 0)
		return -EINVAL;
	kill(s->pid, SIGINT);
	waitpid(s->pid, &st, 0);
	s->pid = 0;
	rc = parse_summary(s->out, r);
	unlink(s->out);
	if (rc) {
		snprintf(r->why, sizeof(r->why), "could not read the strace summary");
		return rc;
	}
	r->ok = true;
	return 0;
}
