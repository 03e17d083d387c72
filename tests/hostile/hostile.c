/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"
#include "dma_test.h"

/* ---- the server under test ---- */

/* Whether servers started now use the epoll loop (VFK_NO_IO_URING=1). */
static bool use_epoll;
static const char *env_no_uring; /* the variable as we were given it */
static bool env_saved;

static void loop_env_apply(void)
{
	if (!env_saved) {
		const char *v = getenv("VFK_NO_IO_URING");

		env_no_uring = v ? strdup(v) : NULL;
		env_saved = true;
	}
	if (use_epoll)
		setenv("VFK_NO_IO_URING", "1", 1);
}

static void loop_env_restore(void)
{
	if (env_no_uring)
		setenv("VFK_NO_IO_URING", env_no_uring, 1);
	else
		unsetenv("VFK_NO_IO_URING");
}

/*
 * The server inherits our stdout and stderr.  Point both at a file just for
 * the fork/exec, so that its log and any sanitizer report can be inspected,
 * the TAP stream stays clean, and a server outliving a crashed test
 * program does not hold the test harness's pipes open.
 */
static int capture_begin(struct hs *s, int saved[2])
{
	int f;

	strcpy(s->log, "/tmp/vfk-hostile-log.XXXXXX");
	f = mkostemp(s->log, O_CLOEXEC);
	if (f < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	saved[0] = fcntl(1, F_DUPFD_CLOEXEC, 3);
	saved[1] = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (saved[0] < 0 || saved[1] < 0 || dup2(f, 1) < 0 || dup2(f, 2) < 0) {
		close(f);
		return -errno;
	}
	close(f);
	return 0;
}

static void capture_end(int saved[2])
{
	fflush(stdout);
	fflush(stderr);
	dup2(saved[0], 1);
	dup2(saved[1], 2);
	close(saved[0]);
	close(saved[1]);
}

/*
 * The socket file appears at bind(), a moment before listen(): until then
 * a connect() is refused.  Wait until one succeeds (and let the server see
 * that probe go) so that the tests start on a listening server.
 */
static int wait_listening(struct hs *s)
{
	for (int i = 0; i < 500; i++) {
		int fd = tsrv_connect(&s->t);

		if (fd >= 0) {
			close(fd);
			usleep(20000);
			return 0;
		}
		if (fd != -ECONNREFUSED || !hs_alive(s))
			return fd;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

int hs_start_exec(struct hs *s)
{
	static const char *const args[] = { "dma-test", NULL };
	int saved[2], rc;

	memset(s, 0, sizeof(*s));
	rc = capture_begin(s, saved);
	if (rc)
		return rc;
	loop_env_apply();
	rc = tsrv_start_exec(&s->t, args);
	loop_env_restore();
	capture_end(saved);
	s->running = rc == 0;
	return rc ? rc : wait_listening(s);
}

/* What the forked child must run: the caller's setup, after dropping the
 * copies of the harness's stdout/stderr it inherited (a server outliving a
 * crashed test would otherwise hold them open). */
static struct {
	tsrv_setup_fn setup;
	void *arg;
	int saved[2];
} fork_wrap;

static int fork_setup(void *arg, struct vfk_dev **dev, struct vfk_server_opts *so)
{
	(void)arg;
	close(fork_wrap.saved[0]);
	close(fork_wrap.saved[1]);
	return fork_wrap.setup(fork_wrap.arg, dev, so);
}

int hs_start_fork(struct hs *s, tsrv_setup_fn setup, tsrv_teardown_fn teardown,
		  void *arg)
{
	int saved[2], rc;

	memset(s, 0, sizeof(*s));
	rc = capture_begin(s, saved);
	if (rc)
		return rc;
	fork_wrap.setup = setup;
	fork_wrap.arg = arg;
	fork_wrap.saved[0] = saved[0];
	fork_wrap.saved[1] = saved[1];
	/* (capture_begin() flushed stdio: the child's exit() cannot write the
	 * TAP output a second time.) */
	loop_env_apply();
	rc = tsrv_start_fork(&s->t, fork_setup, teardown, arg);
	loop_env_restore();
	capture_end(saved);
	s->running = rc == 0;
	return rc ? rc : wait_listening(s);
}

/*
 * Mappings of the server: all of them, and the shared ones.  A DMA window
 * or a BAR is a shared mapping of an fd, so a leaked one shows in the
 * shared count whatever the allocator does.  The total catches anything
 * else, but AddressSanitizer's allocator maps a region for each new size
 * class and keeps freed blocks in quarantine, so the total moves without a
 * leak there: it is checked only in builds without it.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CHECK_TOTAL_MAPS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECK_TOTAL_MAPS 0
#endif
#endif
#ifndef CHECK_TOTAL_MAPS
#define CHECK_TOTAL_MAPS 1
#endif

static int count_maps(struct hs *s, int *shared)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	*shared = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)s->t.pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char perms[8] = "";

		n++;
		if (sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's')
			(*shared)++;
	}
	fclose(f);
	return n;
}

void hs_baseline(struct hs *s)
{
	int fd = hx_session(s);

	hx_sync(fd);
	hx_enable(fd);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ID), DMA_TEST_MAGIC);
	hx_close(fd);
	/* Let the server finish the disconnect before counting. */
	for (int i = 0; i < 300; i++) {
		int a = tsrv_fd_count(&s->t);

		usleep(10000);
		if (a == tsrv_fd_count(&s->t) && i > 5)
			break;
	}
	s->base_fds = tsrv_fd_count(&s->t);
	s->base_maps = count_maps(s, &s->base_shared);
	assert_true(s->base_fds > 0);
	assert_true(s->base_maps > 0);
	assert_true(s->base_shared > 0); /* the BARs' shared memory */
}

bool hs_alive(struct hs *s)
{
	int st;

	if (!s->running)
		return false;
	if (s->dead)
		return false;
	if (waitpid(s->t.pid, &st, WNOHANG) != s->t.pid)
		return true;
	/* Reaped here: keep the status for hs_stop(), tidy up what
	 * tsrv_stop() would have. */
	s->dead = true;
	s->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	unlink(s->t.path);
	rmdir(s->t.dir);
	return false;
}

int hs_stop(struct hs *s)
{
	if (!s->running)
		return -1;
	if (!hs_alive(s)) {
		s->running = false;
		return s->status;
	}
	s->running = false;
	return tsrv_stop(&s->t);
}

static char *read_log(struct hs *s)
{
	FILE *f = fopen(s->log, "r");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = malloc(1 << 20);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

void hs_cleanup(struct hs *s)
{
	if (s->running) {
		hs_dump_log(s);
		hs_stop(s);
	}
	if (s->log[0])
		unlink(s->log);
	s->log[0] = '\0';
}

void hs_dump_log(struct hs *s)
{
	char *b = read_log(s);

	if (!b)
		return;
	fprintf(stderr, "---- server stderr (%s) ----\n%s---- end ----\n", s->log, b);
	free(b);
}

void hs_assert_log_clean(struct hs *s)
{
	static const char *const marks[] = {
		"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
		"runtime error:", "SUMMARY: ",
	};
	char *b = read_log(s);
	const char *hit = NULL;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strstr(b, marks[i]))
			hit = marks[i];
	if (hit) {
		fprintf(stderr, "server stderr has a sanitizer report (%s):\n%s", hit, b);
		free(b);
		fail_msg("sanitizer report in the server's stderr");
	}
	free(b);
	unlink(s->log);
	s->log[0] = '\0';
}

void hs_wait_resources(struct hs *s, int extra_fds)
{
	int fds = -1, maps = -1, shared = -1;
	bool check_maps = extra_fds == 0;

	if (!hs_alive(s)) {
		hs_dump_log(s);
		fail_msg("the server died (status %d)", s->status);
	}
	for (int i = 0; i < 200; i++) {
		fds = tsrv_fd_count(&s->t);
		maps = count_maps(s, &shared);
		if (fds == s->base_fds + extra_fds &&
		    (!check_maps || ((maps == s->base_maps || !CHECK_TOTAL_MAPS) &&
				     shared == s->base_shared)))
			return;
		usleep(10000);
	}
	if (fds != s->base_fds + extra_fds || (check_maps && shared != s->base_shared)) {
		char cmd[128];

		fprintf(stderr, "server fds: %d, expected %d; shared maps %d, expected %d:\n",
			fds, s->base_fds + extra_fds, shared, s->base_shared);
		snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2; grep ' ..s. ' /proc/%d/maps >&2",
			 (int)s->t.pid, (int)s->t.pid);
		if (system(cmd) < 0)
			perror("system");
	}
	assert_int_equal(fds, s->base_fds + extra_fds);
	if (check_maps) {
		assert_int_equal(shared, s->base_shared);
		if (CHECK_TOTAL_MAPS)
			assert_int_equal(maps, s->base_maps);
	}
}

void hs_check_fresh(struct hs *s)
{
	struct vfk_device_info_wire di = { .argsz = sizeof(di) };
	uint8_t rb[64];
	int fd, n = 0;

	hs_wait_resources(s, 0);
	fd = hx_session(s);
	assert_int_equal(hx_call(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0,
				 rb, sizeof(rb), &n), 0);
	assert_int_equal(n, sizeof(di));
	memcpy(&di, rb, sizeof(di));
	assert_int_equal(di.flags, VFK_DEVICE_FLAGS_PCI | VFK_DEVICE_FLAGS_RESET);
	assert_int_equal(di.num_regions, VFK_PCI_NUM_REGIONS);
	assert_int_equal(di.num_irqs, VFK_PCI_NUM_IRQS);
	hx_enable(fd);
	assert_int_equal(hx_bar0_read32(fd, DMA_TEST_REG_ID), DMA_TEST_MAGIC);
	hx_close(fd);
	hs_wait_resources(s, 0);
}

long hs_rss_kib(struct hs *s)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)s->t.pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- tracked raw connections ---- */

static int tracked[64];
static unsigned ntracked;

static void track(int fd)
{
	if (ntracked < sizeof(tracked) / sizeof(tracked[0]))
		tracked[ntracked++] = fd;
}

int hx_connect(struct hs *s)
{
	/* A server that stops reading must fail the test, not hang it. */
	struct timeval tv = { .tv_sec = 5 };
	int fd = tsrv_connect(&s->t);

	assert_true(fd >= 0);
	track(fd);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

int hx_session(struct hs *s)
{
	int fd = hx_connect(s);
	int rc = raw_negotiate(fd);

	if (rc)
		fail_msg("VERSION handshake failed: %s", strerror(-rc));
	return fd;
}

void hx_close(int fd)
{
	for (unsigned i = 0; i < ntracked; i++) {
		if (tracked[i] == fd) {
			tracked[i] = tracked[--ntracked];
			break;
		}
	}
	close(fd);
}

void hx_close_all(void)
{
	while (ntracked)
		close(tracked[--ntracked]);
}

/* ---- sending ---- */

static uint8_t txbuf[(1 << 20) + 8192];
static uint8_t sink[(1 << 20) + 8192];

int hx_send_hdr(int fd, uint16_t id, uint16_t cmd, uint32_t size,
		uint32_t flags, uint32_t error, const void *p, size_t len,
		const int *fds, unsigned nfds)
{
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = size, .flags = flags,
			     .error = error };

	if (len > sizeof(txbuf) - 16)
		return -E2BIG;
	vfk_hdr_encode(txbuf, &h);
	if (len)
		memcpy(txbuf + 16, p, len);
	return raw_send_bytes(fd, txbuf, 16 + len, fds, nfds);
}

size_t hx_build(void *out, uint16_t id, uint16_t cmd, uint32_t flags,
		const void *p, size_t len)
{
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = (uint32_t)(16 + len),
			     .flags = flags };

	vfk_hdr_encode(out, &h);
	if (len)
		memcpy((uint8_t *)out + 16, p, len);
	return 16 + len;
}

uint16_t hx_id(void)
{
	static uint16_t next = 0x100;

	return next++;
}

/* ---- replies ---- */

int hx_wait_reply(int fd, uint16_t id, uint16_t cmd, void *rbuf, size_t rcap,
		  int *rlen)
{
	struct vfk_hdr h;
	int n;

	if (!rbuf) {
		rbuf = sink;
		rcap = sizeof(sink);
	}
	n = raw_recv(fd, &h, rbuf, rcap, NULL, NULL, 5000);
	if (n < 0)
		fail_msg("no reply to %s (id %#x): %s", vfk_cmd_name(cmd), id,
			 strerror(-n));
	if (h.id != id || h.cmd != cmd || (h.flags & VFK_F_TYPE_MASK) != VFK_F_TYPE_REPLY)
		fail_msg("expected the reply to %s id %#x, got cmd %u id %#x flags %#x "
			 "error %u", vfk_cmd_name(cmd), id, h.cmd, h.id, h.flags, h.error);
	if (h.flags & VFK_F_ERROR) {
		/* The spec: an error reply carries only the header. */
		assert_int_equal(n, 0);
		assert_int_not_equal(h.error, 0);
		return (int)h.error;
	}
	assert_int_equal(h.flags, VFK_F_TYPE_REPLY);
	assert_int_equal(h.error, 0);
	if (rlen)
		*rlen = n;
	return 0;
}

int hx_call_flags(int fd, uint16_t cmd, uint32_t flags, const void *p,
		  size_t len, const int *fds, unsigned nfds, void *rbuf,
		  size_t rcap, int *rlen)
{
	uint16_t id = hx_id();
	int rc = hx_send_hdr(fd, id, cmd, (uint32_t)(16 + len), flags, 0, p, len,
			     fds, nfds);

	if (rc)
		fail_msg("sending %s: %s", vfk_cmd_name(cmd), strerror(-rc));
	return hx_wait_reply(fd, id, cmd, rbuf, rcap, rlen);
}

int hx_call(int fd, uint16_t cmd, const void *p, size_t len, const int *fds,
	    unsigned nfds, void *rbuf, size_t rcap, int *rlen)
{
	return hx_call_flags(fd, cmd, 0, p, len, fds, nfds, rbuf, rcap, rlen);
}

void hx_expect_closed(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t b[64];
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		fail_msg("the server kept the connection open");
	n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	if (n > 0) {
		struct vfk_hdr h = { 0 };

		if (n >= 16) {
			memcpy(&h.cmd, b + 2, 2);
			memcpy(&h.flags, b + 8, 4);
			memcpy(&h.error, b + 12, 4);
		}
		fail_msg("expected the connection closed, got %zd bytes (cmd %u flags "
			 "%#x error %u)", n, h.cmd, h.flags, h.error);
	}
	if (n < 0 && errno != ECONNRESET)
		fail_msg("expected the connection closed, recv: %s", strerror(errno));
}

void hx_sync(int fd)
{
	struct vfk_device_info_wire di = { .argsz = sizeof(di) };
	uint8_t rb[64];
	int n = -1;

	assert_int_equal(hx_call(fd, VFK_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL,
				 0, rb, sizeof(rb), &n), 0);
	assert_int_equal(n, sizeof(di));
}

/* ---- typed requests ---- */

int hx_region_read(int fd, uint32_t region, uint64_t off, uint32_t count,
		   void *out)
{
	struct vfk_region_rw_wire w = { .offset = off, .region = region,
					.count = count };
	int n = -1, rc;

	rc = hx_call(fd, VFK_CMD_REGION_READ, &w, sizeof(w), NULL, 0, sink,
		     sizeof(sink), &n);
	if (rc)
		return rc;
	/* A successful reply echoes the request and carries the data. */
	assert_int_equal(n, sizeof(w) + count);
	assert_memory_equal(sink, &w, sizeof(w));
	if (out)
		memcpy(out, sink + sizeof(w), count);
	return 0;
}

int hx_region_write(int fd, uint32_t region, uint64_t off, uint32_t count,
		    const void *data)
{
	static uint8_t b[16 + 65536];
	struct vfk_region_rw_wire w = { .offset = off, .region = region,
					.count = count };
	uint8_t rb[64];
	int n = -1, rc;

	assert_true(count <= sizeof(b) - sizeof(w));
	memcpy(b, &w, sizeof(w));
	memcpy(b + sizeof(w), data, count);
	rc = hx_call(fd, VFK_CMD_REGION_WRITE, b, sizeof(w) + count, NULL, 0, rb,
		     sizeof(rb), &n);
	if (rc)
		return rc;
	assert_int_equal(n, sizeof(w));
	assert_memory_equal(rb, &w, sizeof(w));
	return 0;
}

int hx_dma_map(int fd, uint64_t addr, uint64_t size, uint32_t flags,
	       uint64_t offset, const int *fds, unsigned nfds)
{
	struct vfk_dma_map_wire w = { .argsz = sizeof(w), .flags = flags,
				      .offset = offset, .addr = addr, .size = size };
	int n = -1, rc;

	rc = hx_call(fd, VFK_CMD_DMA_MAP, &w, sizeof(w), fds, nfds, NULL, 0, &n);
	if (!rc)
		assert_int_equal(n, 0); /* no reply payload */
	return rc;
}

int hx_dma_unmap(int fd, uint64_t addr, uint64_t size, uint32_t flags)
{
	struct vfk_dma_unmap_wire w = { .argsz = sizeof(w), .flags = flags,
					.addr = addr, .size = size };
	uint8_t rb[64];
	int n = -1, rc;

	rc = hx_call(fd, VFK_CMD_DMA_UNMAP, &w, sizeof(w), NULL, 0, rb, sizeof(rb), &n);
	if (!rc) {
		/* The reply is the request's entry. */
		assert_int_equal(n, sizeof(w));
		assert_memory_equal(rb, &w, sizeof(w));
	}
	return rc;
}

int hx_set_irqs(int fd, uint32_t flags, uint32_t index, uint32_t start,
		uint32_t count, const int *fds, unsigned nfds)
{
	struct vfk_irq_set_wire w = { .argsz = sizeof(w), .flags = flags,
				      .index = index, .start = start, .count = count };
	int n = -1, rc;

	rc = hx_call(fd, VFK_CMD_DEVICE_SET_IRQS, &w, sizeof(w), fds, nfds, NULL, 0, &n);
	if (!rc)
		assert_int_equal(n, 0);
	return rc;
}

uint32_t hx_bar0_read32(int fd, uint32_t reg)
{
	uint32_t v = 0;

	assert_int_equal(hx_region_read(fd, VFK_PCI_BAR0, reg, 4, &v), 0);
	return v;
}

void hx_bar0_write(int fd, uint32_t reg, uint64_t val, uint32_t width)
{
	assert_int_equal(hx_region_write(fd, VFK_PCI_BAR0, reg, width, &val), 0);
}

void hx_enable(int fd)
{
	uint16_t cmd = 0;

	assert_int_equal(hx_region_read(fd, VFK_PCI_CONFIG, 4, 2, &cmd), 0);
	cmd |= 0x7; /* I/O, Memory, Bus Master */
	assert_int_equal(hx_region_write(fd, VFK_PCI_CONFIG, 4, 2, &cmd), 0);
}

/* ---- fds ---- */

int hx_memfd(size_t size)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

int hx_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* ---- the test runner ---- */

static struct hs servers[2]; /* [0]: default loop, [1]: epoll */
struct hs *hs_cur = &servers[0];
static void (*extra_cleanup)(void);

static int setup_default(void **state)
{
	(void)state;
	hs_cur = &servers[0];
	use_epoll = false;
	return 0;
}

static int setup_epoll(void **state)
{
	(void)state;
	hs_cur = &servers[1];
	use_epoll = true;
	return 0;
}

/* Whether the server is as a failed test should not leave it: dead, or
 * holding a connection or fds past a short wait. */
static bool server_dirty(struct hs *s)
{
	if (!hs_alive(s))
		return true;
	for (int i = 0; i < 100; i++) {
		if (tsrv_fd_count(&s->t) == s->base_fds)
			return false;
		usleep(10000);
	}
	return true;
}

static int test_teardown(void **state)
{
	struct hs *s = hs_cur;

	(void)state;
	hx_close_all();
	if (extra_cleanup)
		extra_cleanup();
	if (!s->running || !s->base_fds || !server_dirty(s))
		return 0;
	/* A stuck or leaking server would fail every test after this one
	 * for the same reason: replace it. */
	hs_dump_log(s);
	fprintf(stderr, "replacing the server (it exited with %d)\n", hs_stop(s));
	hs_cleanup(s);
	if (hs_start_exec(s))
		return -1;
	hs_baseline(s);
	return 0;
}

static void test_baseline(void **state)
{
	(void)state;
	assert_int_equal(hs_start_exec(hs_cur), 0);
	hs_baseline(hs_cur);
	hs_check_fresh(hs_cur);
}

static void test_server_exit(void **state)
{
	int st;

	(void)state;
	assert_true(hs_alive(hs_cur));
	st = hs_stop(hs_cur);
	if (st != 0)
		hs_dump_log(hs_cur);
	assert_int_equal(st, 0);
	hs_assert_log_clean(hs_cur);
}

static int group_teardown(void **state)
{
	(void)state;
	hx_close_all();
	if (extra_cleanup)
		extra_cleanup();
	hs_cleanup(&servers[0]);
	hs_cleanup(&servers[1]);
	return 0;
}

int hx_main(const char *group, const struct hx_test *tests, size_t n,
	    void (*cleanup)(void))
{
	size_t per = n + 2, k = 0;
	struct CMUnitTest *t = calloc(2 * per, sizeof(*t));
	int rc;

	if (!t)
		return 1;
	extra_cleanup = cleanup;
	for (int loop = 0; loop < 2; loop++) {
		CMFixtureFunction setup = loop ? setup_epoll : setup_default;

		for (size_t i = 0; i < per; i++) {
			const char *name = i == 0 ? "baseline" :
					   i == per - 1 ? "server_exit" : tests[i - 1].name;
			CMUnitTestFunction fn = i == 0 ? test_baseline :
						i == per - 1 ? test_server_exit : tests[i - 1].fn;
			char *full = NULL;

			if (asprintf(&full, "%s%s", name, loop ? " [epoll]" : "") < 0)
				return 1;
			t[k++] = (struct CMUnitTest){ .name = full, .test_func = fn,
						     .setup_func = setup,
						     .teardown_func = test_teardown };
		}
	}
	rc = _cmocka_run_group_tests(group, t, k, NULL, group_teardown);
	for (size_t i = 0; i < k; i++)
		free((char *)t[i].name);
	free(t);
	return rc;
}
