/* SPDX-License-Identifier: MIT */
/*
 * The message channel between a vfio-user client and server.
 *
 * Everything above this interface (server dispatch, client requests) sees
 * whole messages with their fds; how bytes and fds travel is the channel's
 * business.  Today there is one implementation, a connected AF_UNIX stream
 * socket (sock.c).  A shared-memory channel for vfiokit-to-vfiokit peers can
 * be added as a second ops table without touching the layers above.
 *
 * Ops tables are versioned: new members are only ever appended, each marked
 * with the version that introduced it, and callers check `version` before
 * using a member newer than 1.
 */
#ifndef VFK_CHANNEL_H
#define VFK_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "vfiokit/common.h"
#include "vfiokit/proto.h"

/* Most fds one message may carry into vfiokit.  SET_IRQS chunks to the
 * receiver's advertised max_msg_fds, which vfiokit sets to this. */
#define VFK_CHANNEL_MAX_FDS 64u

/* A received message.  `payload` points into the channel's buffer and stays
 * valid until the next recv() on the same channel.  The fds belong to the
 * receiver, which must close or keep each of them. */
struct vfk_msg {
	struct vfk_hdr hdr;    /* decoded if hdr_err == 0, raw fields otherwise */
	int hdr_err;           /* vfk_hdr_decode() result */
	bool oversized;        /* size over the channel limit: payload dropped */
	const uint8_t *payload;
	uint32_t len;          /* payload bytes (hdr.size - 16) */
	unsigned nfds;
	int fds[VFK_CHANNEL_MAX_FDS];
};

struct vfk_channel;

struct vfk_channel_ops {
	unsigned version; /* 1 */
	const char *name;
	/*
	 * Take the next whole message, without blocking.  Returns 1 with *msg
	 * filled, 0 if no whole message is available yet, -EPIPE when the peer
	 * closed, another negative errno when the stream can no longer be
	 * framed (the caller must then drop the connection).
	 */
	int (*recv)(struct vfk_channel *ch, struct vfk_msg *msg);
	/* True if recv() may return a message without reading the fd (a whole
	 * message is already buffered). */
	bool (*has_buffered)(struct vfk_channel *ch);
	/*
	 * Send one message: header `hdr` (size is filled in by the channel),
	 * payload `iov`, and `nfds` fds that stay owned by the caller.  Never
	 * blocks: what the socket does not take is queued (fds dup'ed) and
	 * flushed by flush(); the message is then "sent" from the caller's view.
	 */
	int (*send)(struct vfk_channel *ch, struct vfk_hdr *hdr,
		    const struct iovec *iov, int iovcnt, const int *fds,
		    unsigned nfds);
	/* Push queued output; wait up to timeout_ms (0: don't wait, -1: no
	 * limit).  0 when nothing is queued any more, -EAGAIN on timeout. */
	int (*flush)(struct vfk_channel *ch, int timeout_ms);
	/* True while output is queued. */
	bool (*tx_pending)(struct vfk_channel *ch);
	/* Wait up to timeout_ms until recv() may make progress. 0 or -ETIMEDOUT. */
	int (*wait)(struct vfk_channel *ch, int timeout_ms);
	/* The fd to poll for input (and for output while tx_pending()). */
	int (*fd)(struct vfk_channel *ch);
	/* Close the channel and free it; queued output is dropped. */
	void (*destroy)(struct vfk_channel *ch);
	/*
	 * Since version 2.  Take the next whole message, waiting up to
	 * timeout_ms (> 0) for it inside the receive call itself, so that a
	 * request-reply costs no separate poll.  1, -ETIMEDOUT, or as recv().
	 * The fd must be in blocking mode.
	 */
	int (*recv_wait)(struct vfk_channel *ch, struct vfk_msg *msg,
			 int timeout_ms);
	/*
	 * Since version 3: receiving through another I/O engine (io_uring).
	 * recv_prepare() fills `mh` (iovec and control buffer owned by the
	 * channel, stable until recv_commit()) for one recvmsg into the
	 * buffer; the channel must see no other call until recv_commit()
	 * reports the result (`n` bytes, or a negative errno, with the
	 * msg_flags the kernel set).  recv_commit() returns 0 or a negative
	 * errno as recv() would; whole messages are then taken with recv(),
	 * which reads nothing while one is buffered.
	 */
	int (*recv_prepare)(struct vfk_channel *ch, struct msghdr *mh);
	int (*recv_commit)(struct vfk_channel *ch, struct msghdr *mh, ssize_t n);
};

/* Every channel starts with this header; implementations embed it. */
struct vfk_channel {
	const struct vfk_channel_ops *ops;
	uint32_t max_msg_size; /* largest message accepted, header included */
	unsigned max_fds;      /* fds accepted per message (<= VFK_CHANNEL_MAX_FDS) */
	uint64_t msgs_in, msgs_out; /* counters for diagnostics and benchmarks */
};

/*
 * Wrap a connected AF_UNIX SOCK_STREAM socket.  Takes ownership of `fd` on
 * success (not on failure).  The receive buffer of max_msg_size bytes is
 * allocated once here, so receiving never allocates.
 */
int vfk_sock_channel_create(int fd, uint32_t max_msg_size, unsigned max_fds,
			    struct vfk_channel **out);

/* Close every fd of a received message (for messages rejected whole). */
void vfk_msg_close_fds(struct vfk_msg *msg);

#endif
