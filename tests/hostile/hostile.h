/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the hostile-client suite: a server under test with its
 * resource baselines, raw messages with any header and any number of fds,
 * and assertions on what the server answers (cmocka assertions, so they
 * may only be called from inside a test).
 *
 * Every hostile scenario ends the same way: the server must still run, its
 * fd and mapping counts must come back to what they were after a clean
 * session, and a fresh client must complete a normal request.
 */
#ifndef VFK_HOSTILE_H
#define VFK_HOSTILE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testlib.h"
#include "vfiokit/proto.h"

/* The server under test. */
struct hs {
	struct tsrv t;
	int base_fds;    /* fds of the idle server after a clean session */
	int base_maps;   /* its mappings then */
	int base_shared; /* its shared mappings then */
	char log[64];    /* file receiving the server's stdout and stderr */
	bool running;    /* started and not stopped */
	bool dead;       /* found dead by hs_alive() */
	int status;      /* its exit status then (128 + signal) */
};

/* Start `vfiokit serve dma-test` (the user-facing binary) with its output
 * in a file, and wait until it accepts connections; 0 or -errno. */
int hs_start_exec(struct hs *s);
/* Start a forked server built by `setup`; stderr captured the same way. */
int hs_start_fork(struct hs *s, tsrv_setup_fn setup, tsrv_teardown_fn teardown,
		  void *arg);
/* Run a clean session and record the baselines (asserts). */
void hs_baseline(struct hs *s);
/* Whether the server still runs (reaps it and records its status if not;
 * use this rather than tsrv_alive()). */
bool hs_alive(struct hs *s);
/* Stop the server; its exit status, or -1 if it was not running. */
int hs_stop(struct hs *s);
/* Assert the server's stderr holds no sanitizer report; prints it if so. */
void hs_assert_log_clean(struct hs *s);
/* After a failed test: stop the server if it runs (showing its log), and
 * remove its log file. */
void hs_cleanup(struct hs *s);
/* Print the server's stderr to ours (for a failing test's context). */
void hs_dump_log(struct hs *s);

/* Wait up to 2 s for the server to hold `extra` fds over the baseline
 * and, with extra == 0, exactly the baseline's mappings (the shared ones
 * only, in an AddressSanitizer build); assert it does. */
void hs_wait_resources(struct hs *s, int extra_fds);
/* After a hostile session ended (either side closed it): resources back to
 * the baseline, server alive, a fresh client gets DEVICE_GET_INFO and the
 * BAR0 ID register, and leaves nothing behind either. */
void hs_check_fresh(struct hs *s);

/* ---- raw connections (tracked: closed by hx_close_all() after a test) ---- */

/* Connect without negotiating.  Raw bytes go with raw_send_bytes()
 * (testlib.h), which on this connection gives up after 5 s (-EAGAIN). */
int hx_connect(struct hs *s);
/* Connect and negotiate VERSION. */
int hx_session(struct hs *s);
/* Set Memory, I/O and Bus Master Enable in the command register. */
void hx_enable(int fd);
void hx_close(int fd);
void hx_close_all(void);

/* Send a message with a header built from every field given as is. */
int hx_send_hdr(int fd, uint16_t id, uint16_t cmd, uint32_t size,
		uint32_t flags, uint32_t error, const void *p, size_t len,
		const int *fds, unsigned nfds);
/* Build a command header + payload into `out` (size = 16 + len). */
size_t hx_build(void *out, uint16_t id, uint16_t cmd, uint32_t flags,
		const void *p, size_t len);

/* A fresh message id. */
uint16_t hx_id(void);

/*
 * Send command `cmd` with `flags` and wait for its reply, asserting that
 * the next message is that reply (same id and command, reply type, an
 * error reply is a bare header with a non-zero errno).  Returns the
 * reply's errno (0 on success); the payload goes to rbuf/rlen if given.
 */
int hx_call_flags(int fd, uint16_t cmd, uint32_t flags, const void *p,
		  size_t len, const int *fds, unsigned nfds, void *rbuf,
		  size_t rcap, int *rlen);
int hx_call(int fd, uint16_t cmd, const void *p, size_t len, const int *fds,
	    unsigned nfds, void *rbuf, size_t rcap, int *rlen);
/* Expect the error reply `err` (a positive errno) to command `cmd`. */
#define hx_expect_err(fd, cmd, p, len, fds, nfds, err)                         \
	assert_int_equal(hx_call(fd, cmd, p, len, fds, nfds, NULL, 0, NULL), err)
/* Expect success. */
#define hx_expect_ok(fd, cmd, p, len, fds, nfds)                               \
	assert_int_equal(hx_call(fd, cmd, p, len, fds, nfds, NULL, 0, NULL), 0)

/* Wait for the reply to id/cmd, asserting it is the next message. */
int hx_wait_reply(int fd, uint16_t id, uint16_t cmd, void *rbuf, size_t rcap,
		  int *rlen);

/* Assert the server closes the connection within timeout_ms without
 * sending anything first. */
void hx_expect_closed(int fd, int timeout_ms);
/* A DEVICE_GET_INFO round trip that must succeed: proves the stream is
 * still framed and that no stray reply was queued before it. */
void hx_sync(int fd);

/* Typed requests. */
int hx_region_read(int fd, uint32_t region, uint64_t off, uint32_t count,
		   void *out);
int hx_region_write(int fd, uint32_t region, uint64_t off, uint32_t count,
		    const void *data);
int hx_dma_map(int fd, uint64_t addr, uint64_t size, uint32_t flags,
	       uint64_t offset, const int *fds, unsigned nfds);
int hx_dma_unmap(int fd, uint64_t addr, uint64_t size, uint32_t flags);
int hx_set_irqs(int fd, uint32_t flags, uint32_t index, uint32_t start,
		uint32_t count, const int *fds, unsigned nfds);
uint32_t hx_bar0_read32(int fd, uint32_t reg);
void hx_bar0_write(int fd, uint32_t reg, uint64_t val, uint32_t width);

/* File descriptors of various kinds for the "wrong fd" cases. */
int hx_memfd(size_t size);
int hx_eventfd(void);

/* Resident memory of the server process, in KiB. */
long hs_rss_kib(struct hs *s);

/* ---- running a program's tests against both server loops ---- */

/*
 * `vfiokit serve` runs vfk_server_run(), which uses io_uring where the
 * kernel allows it and epoll otherwise (or with VFK_NO_IO_URING=1, which
 * is also what vfk_server_dispatch() users get).  The two read the
 * connection differently, so every test runs against both: first a
 * server started as users start it, then one with VFK_NO_IO_URING=1.
 * hs_start_exec()/hs_start_fork() apply the loop of the running test.
 */
struct hx_test {
	const char *name;
	CMUnitTestFunction fn;
};
#define HX_TEST(f) { #f, f }

/* The `vfiokit serve dma-test` process the running test uses. */
extern struct hs *hs_cur;

/*
 * Run `tests` (a baseline test is added before them and a clean-exit test
 * after) once per loop.  After a failed test that left the server with a
 * connection or fds it should not have, the server is replaced so that the
 * next test starts clean.  `cleanup` (may be NULL) runs after each test,
 * for the program's own extra servers.
 */
int hx_main(const char *group, const struct hx_test *tests, size_t n,
	    void (*cleanup)(void));

#endif
