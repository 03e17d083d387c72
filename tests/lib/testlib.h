/* SPDX-License-Identifier: MIT */
/*
 * Helpers for tests that need a real server process and a real client.
 *
 * A server runs in a child process, either by exec of the `vfiokit`
 * binary (the user-facing path) or by fork with a callback that builds a
 * device in the child (for test-only models and options).  Both listen on
 * a fresh socket in a private temporary directory.  Stopping sends SIGTERM
 * and reports the exit status, so an AddressSanitizer/LeakSanitizer build
 * turns a server-side leak into a test failure.
 */
#ifndef VFK_TESTLIB_H
#define VFK_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vfiokit/vfiokit.h"

struct tsrv {
	pid_t pid;      /* the server process; 0 once stopped */
	char dir[64];   /* its private temporary directory */
	char path[108]; /* its listening socket, in `dir` */
};

/* Builds the device served by a forked server; returns 0 or -errno. */
typedef int (*tsrv_setup_fn)(void *arg, struct vfk_dev **dev,
			     struct vfk_server_opts *so);
/* Undoes tsrv_setup_fn after the server is destroyed. */
typedef void (*tsrv_teardown_fn)(void *arg, struct vfk_dev *dev);

/* exec `vfiokit serve` with `args` (NULL-terminated, after "serve"),
 * adding --socket; waits until the socket exists. */
int tsrv_start_exec(struct tsrv *t, const char *const *args);
/* fork, build the device with `setup` in the child, serve it. */
int tsrv_start_fork(struct tsrv *t, tsrv_setup_fn setup, tsrv_teardown_fn teardown,
		    void *arg);
/* SIGTERM, wait; returns the exit status (0..255) or 128+signal. */
int tsrv_stop(struct tsrv *t);
/* True while the process runs. */
bool tsrv_alive(struct tsrv *t);
/* Open fds of the server process, or -1. */
int tsrv_fd_count(struct tsrv *t);
/* Total CPU time (user + system) the server process used, in ms, or -1. */
long tsrv_cpu_ms(struct tsrv *t);

/* A raw connected socket to the server (for hostile clients). */
int tsrv_connect(struct tsrv *t);
/* A client handle; NULL on failure (the error in *err if given). */
struct vfk_device *tsrv_open(struct tsrv *t, int *err);

/* Path of the vfiokit binary (env VFIOKIT, set by meson). */
const char *vfiokit_path(void);

/* The most fds one sendmsg() can carry (the kernel's SCM_MAX_FD). */
#define RAW_MAX_FDS 253
/* Send raw bytes, `nfds` fds on the first byte (len may be 0 if there are
 * fds); blocking, short writes resumed (a socket with SO_SNDTIMEO gives up
 * with -EAGAIN).  0 or -errno. */
int raw_send_bytes(int fd, const void *buf, size_t len, const int *fds,
		   unsigned nfds);
/* Send a raw message (header built from the arguments) with optional fds,
 * header and payload written together. */
int raw_send(int fd, uint16_t id, uint16_t cmd, uint32_t flags,
	     const void *payload, size_t len, const int *fds, unsigned nfds);
/* Receive one whole message (blocking, timeout_ms); payload into buf.
 * Returns payload length or -errno; header in *h; fds closed unless nfds. */
int raw_recv(int fd, struct vfk_hdr *h, void *buf, size_t cap, int *fds,
	     unsigned *nfds, int timeout_ms);
/* VERSION handshake on a raw socket; 0 or -errno. */
int raw_negotiate(int fd);

#endif
