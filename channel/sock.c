/* SPDX-License-Identifier: MIT */
/*
 * vfio-user over a connected AF_UNIX stream socket.
 *
 * Receiving.  One recvmsg() into a buffer sized for the largest message
 * normally yields a whole request, so a request costs one receive call.
 * The kernel may split a message anywhere or glue several together; the
 * buffer absorbs both.  File descriptors need care: on a stream socket the
 * kernel attaches SCM_RIGHTS to the first byte of the sendmsg() that carried
 * them, and a recvmsg() stops right after the first chunk that carries fds.
 * So fds received by one call belong to the last message that *starts* in
 * the bytes that call returned.  That is how they are attributed here; fds
 * that arrive in bytes where no message starts are a protocol violation.
 *
 * Sending never blocks: what the socket does not take is queued, with
 * duplicated fds, and pushed out by flush() when the fd is writable.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"

#define FDQ_MAX 4u
/* Most output queued for a peer that does not read: four of the largest
 * messages, at least 4 MiB. */
#define TXQ_LIMIT(s) ((size_t)(s)->base.max_msg_size * 4 + (4u << 20))

/* fds waiting for the message that starts at stream offset `pos`. */
struct fdq_entry {
	uint64_t pos;
	unsigned n;
	bool truncated; /* the kernel dropped some (MSG_CTRUNC) */
	int fds[VFK_CHANNEL_MAX_FDS];
};

/* One queued outgoing message (or its unsent tail). */
struct txmsg {
	struct txmsg *next;
	size_t len, off;  /* bytes in data[], bytes already sent */
	unsigned nfds;    /* dup'ed fds, sent with the first byte */
	int fds[VFK_CHANNEL_MAX_FDS];
	uint8_t data[];
};

struct sock_channel {
	struct vfk_channel base;
	int fd;
	uint8_t *rx;
	uint32_t rx_cap, rx_start, rx_end;
	uint64_t rx_base;   /* stream offset of rx[0] */
	uint64_t skip;      /* bytes of an oversized message still to drop */
	bool eof;
	struct fdq_entry fdq[FDQ_MAX];
	unsigned fdq_n;
	struct txmsg *txq_head, *txq_tail;
	size_t txq_bytes;   /* queued, for the limit below */
	int rcvtimeo_ms;    /* SO_RCVTIMEO currently set, 0 = none */
	/* The recvmsg target, kept here so an io_uring read can use it. */
	struct iovec rx_iov;
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(VFK_CHANNEL_MAX_FDS * sizeof(int))];
	} cbuf;
};

static struct sock_channel *sc(struct vfk_channel *ch)
{
	return (struct sock_channel *)ch;
}

void vfk_msg_close_fds(struct vfk_msg *msg)
{
	for (unsigned i = 0; i < msg->nfds; i++)
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
	msg->nfds = 0;
}

static int fcntl_dupfd(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	return d < 0 ? -errno : d;
}

static void close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static uint32_t peek_size(const uint8_t *p)
{
	uint32_t size;

	memcpy(&size, p + 4, 4);
	return size;
}

/* Give the fds just received to the last message starting in
 * [old_end, new_end) (stream offsets). */
static int attribute_fds(struct sock_channel *s, uint64_t old_end,
			 uint64_t new_end, int *fds, unsigned n, bool truncated)
{
	uint64_t b = s->rx_base + s->rx_start + s->skip;
	uint64_t cand = UINT64_MAX;

	while (b < new_end) {
		uint32_t size;

		if (b >= old_end)
			cand = b;
		if (new_end - b < VFK_HDR_SIZE)
			break;
		size = peek_size(s->rx + (b - s->rx_base));
		if (size < VFK_HDR_SIZE)
			break; /* framing error, reported by recv() */
		b += size;
	}
	if (cand == UINT64_MAX || s->fdq_n == FDQ_MAX)
		goto bad;
	for (unsigned i = 0; i < s->fdq_n; i++)
		if (s->fdq[i].pos == cand)
			goto bad;
	s->fdq[s->fdq_n].pos = cand;
	s->fdq[s->fdq_n].n = n;
	s->fdq[s->fdq_n].truncated = truncated;
	memcpy(s->fdq[s->fdq_n].fds, fds, n * sizeof(int));
	s->fdq_n++;
	return 0;
bad:
	close_fds(fds, n);
	return -EPROTO;
}

/* Move the fds queued for stream offset `pos` into `msg`. */
static void take_fds(struct sock_channel *s, uint64_t pos, struct vfk_msg *msg,
		     bool *truncated)
{
	msg->nfds = 0;
	*truncated = false;
	for (unsigned i = 0; i < s->fdq_n; i++) {
		if (s->fdq[i].pos != pos)
			continue;
		msg->nfds = s->fdq[i].n;
		*truncated = s->fdq[i].truncated;
		memcpy(msg->fds, s->fdq[i].fds, msg->nfds * sizeof(int));
		s->fdq[i] = s->fdq[--s->fdq_n];
		return;
	}
}

/* Drop what is buffered of an oversized message being skipped. */
static void consume_skip(struct sock_channel *s)
{
	uint32_t k = s->rx_end - s->rx_start;

	if (!s->skip)
		return;
	if (k > s->skip)
		k = (uint32_t)s->skip;
	s->rx_start += k;
	s->skip -= k;
}

/* Make room at the tail of the buffer for the next read. */
static int make_room(struct sock_channel *s)
{
	consume_skip(s);
	/* Compact when the message at rx_start cannot fit in the rest of the
	 * buffer, or when the free tail has become small. */
	if (s->rx_start == s->rx_end) {
		s->rx_base += s->rx_start;
		s->rx_start = s->rx_end = 0;
	} else if (s->rx_start) {
		uint32_t avail = s->rx_end - s->rx_start;
		uint32_t need = VFK_HDR_SIZE * 4;

		if (!s->skip && avail >= VFK_HDR_SIZE) {
			uint32_t size = peek_size(s->rx + s->rx_start);

			if (size >= VFK_HDR_SIZE && size <= s->rx_cap)
				need = size;
		}
		if (s->rx_cap - s->rx_start < need ||
		    s->rx_cap - s->rx_end < VFK_HDR_SIZE * 4) {
			memmove(s->rx, s->rx + s->rx_start, avail);
			s->rx_base += s->rx_start;
			s->rx_end = avail;
			s->rx_start = 0;
		}
	}
	return s->rx_end == s->rx_cap ? -ENOBUFS : 0; /* messages fit the buffer */
}

static void fill_msghdr(struct sock_channel *s, struct msghdr *mh)
{
	s->rx_iov.iov_base = s->rx + s->rx_end;
	s->rx_iov.iov_len = s->rx_cap - s->rx_end;
	memset(mh, 0, sizeof(*mh));
	mh->msg_iov = &s->rx_iov;
	mh->msg_iovlen = 1;
	mh->msg_control = s->cbuf.buf;
	mh->msg_controllen = CMSG_SPACE(s->base.max_fds * sizeof(int));
}

/* Account for `n` bytes (and their fds) a recvmsg put at the tail. */
static int commit_read(struct sock_channel *s, struct msghdr *mh, ssize_t n)
{
	int fds[VFK_CHANNEL_MAX_FDS];
	unsigned nfds = 0;
	uint64_t old_end;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		unsigned k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < VFK_CHANNEL_MAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (n == 0) {
		close_fds(fds, nfds);
		s->eof = true;
		return 0;
	}
	old_end = s->rx_base + s->rx_end;
	s->rx_end += (uint32_t)n;
	if (nfds || (mh->msg_flags & MSG_CTRUNC))
		return attribute_fds(s, old_end, s->rx_base + s->rx_end, fds, nfds,
				     (mh->msg_flags & MSG_CTRUNC) != 0);
	return 0;
}

/* One recvmsg into the buffer: 1 if bytes came (or EOF), 0 if none. */
static int read_more(struct sock_channel *s, bool block)
{
	struct msghdr mh;
	ssize_t n;
	int rc = make_room(s);

	if (rc)
		return rc;
	fill_msghdr(s, &mh);
	do {
		n = recvmsg(s->fd, &mh, (block ? 0 : MSG_DONTWAIT) | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	rc = commit_read(s, &mh, n);
	return rc ? rc : (n ? 1 : 0);
}

static int sock_recv_prepare(struct vfk_channel *ch, struct msghdr *mh)
{
	struct sock_channel *s = sc(ch);
	int rc;

	if (s->eof)
		return -EPIPE;
	/* While skipping an oversized message, bytes still have to come in
	 * (recv() discards them from the buffer). */
	rc = make_room(s);
	if (rc)
		return rc;
	fill_msghdr(s, mh);
	return 0;
}

static int sock_recv_commit(struct vfk_channel *ch, struct msghdr *mh, ssize_t n)
{
	if (n < 0)
		return n == -EAGAIN || n == -EINTR || n == -ECANCELED ? 0 : (int)n;
	return commit_read(sc(ch), mh, n);
}

static bool sock_has_buffered(struct vfk_channel *ch)
{
	struct sock_channel *s = sc(ch);
	uint32_t avail = s->rx_end - s->rx_start;

	if (s->skip)
		return false;
	if (avail < VFK_HDR_SIZE)
		return false;
	{
		uint32_t size = peek_size(s->rx + s->rx_start);

		return size < VFK_HDR_SIZE || size > s->base.max_msg_size ||
		       size <= avail;
	}
}

static int set_rcvtimeo(struct sock_channel *s, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	s->rcvtimeo_ms = timeout_ms;
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A blocking receive (deadline >= 0) waits in recvmsg up to SO_RCVTIMEO.
 * A peer that sends a message a few bytes at a time must not stretch the
 * wait past the deadline, so after each partial read the timeout is cut
 * to what is left: one setsockopt on that path only, none when a message
 * arrives in one read.
 */
static int recv_common(struct vfk_channel *ch, struct vfk_msg *msg, int64_t deadline)
{
	struct sock_channel *s = sc(ch);
	bool block = deadline >= 0, partial = false;

	for (;;) {
		uint32_t avail, size;
		int rc;

		consume_skip(s);
		avail = s->rx_end - s->rx_start;
		if (!s->skip && avail >= VFK_HDR_SIZE) {
			const uint8_t *p = s->rx + s->rx_start;
			uint64_t pos = s->rx_base + s->rx_start;
			bool trunc;

			size = peek_size(p);
			if (size < VFK_HDR_SIZE)
				return -EPROTO; /* the stream cannot be framed */
			if (size > s->base.max_msg_size) {
				memset(msg, 0, sizeof(*msg));
				msg->hdr_err = vfk_hdr_decode(p, avail, UINT32_MAX,
							      &msg->hdr);
				if (msg->hdr_err) {
					memcpy(&msg->hdr.id, p, 2);
					memcpy(&msg->hdr.cmd, p + 2, 2);
					memcpy(&msg->hdr.flags, p + 8, 4);
				}
				msg->hdr.size = size;
				msg->oversized = true;
				take_fds(s, pos, msg, &trunc);
				s->skip = size;
				ch->msgs_in++;
				return 1;
			}
			if (avail >= size) {
				memset(&msg->hdr, 0, sizeof(msg->hdr));
				msg->hdr_err = vfk_hdr_decode(p, size, size, &msg->hdr);
				if (msg->hdr_err) {
					memcpy(&msg->hdr.id, p, 2);
					memcpy(&msg->hdr.cmd, p + 2, 2);
					memcpy(&msg->hdr.flags, p + 8, 4);
					msg->hdr.size = size;
				}
				msg->oversized = false;
				msg->payload = p + VFK_HDR_SIZE;
				msg->len = size - VFK_HDR_SIZE;
				take_fds(s, pos, msg, &trunc);
				if (trunc && !msg->hdr_err)
					msg->hdr_err = -EMSGSIZE;
				s->rx_start += size;
				ch->msgs_in++;
				return 1;
			}
		}
		if (s->eof)
			return -EPIPE;
		if (block && partial) {
			/* Bytes came but not yet a whole message. */
			int64_t left = deadline - mono_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			if (left < s->rcvtimeo_ms) {
				rc = set_rcvtimeo(s, (int)left);
				if (rc)
					return rc;
			}
		}
		rc = read_more(s, block);
		if (rc == 0 && block && !s->eof)
			return -ETIMEDOUT; /* SO_RCVTIMEO expired */
		if (rc <= 0 && !s->eof)
			return rc;
		partial = true;
	}
}

static int sock_recv(struct vfk_channel *ch, struct vfk_msg *msg)
{
	return recv_common(ch, msg, -1);
}

static int sock_recv_wait(struct vfk_channel *ch, struct vfk_msg *msg,
			  int timeout_ms)
{
	struct sock_channel *s = sc(ch);

	int64_t deadline = mono_ms() + timeout_ms;

	if (timeout_ms <= 0)
		return -EINVAL;
	if (s->rcvtimeo_ms != timeout_ms) {
		int rc = set_rcvtimeo(s, timeout_ms);

		if (rc)
			return rc;
	}
	return recv_common(ch, msg, deadline);
}

static int send_raw(struct sock_channel *s, const struct iovec *iov, int iovcnt,
		    const int *fds, unsigned nfds, size_t *sent)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(VFK_CHANNEL_MAX_FDS * sizeof(int))];
	} cbuf;
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = (size_t)iovcnt;
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	do {
		n = sendmsg(s->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		*sent = 0;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return errno == ECONNRESET ? -EPIPE : -errno;
	}
	*sent = (size_t)n;
	return 0;
}

static int queue_tail(struct sock_channel *s, const struct iovec *iov,
		      int iovcnt, size_t skip, const int *fds, unsigned nfds)
{
	size_t total = 0, at = 0;
	struct txmsg *m;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	/* A peer that does not read what it is sent cannot make us buffer
	 * without bound: past a few messages' worth, the send fails and the
	 * caller drops it. */
	if (s->txq_bytes + (total - skip) > TXQ_LIMIT(s))
		return -ENOBUFS;
	m = malloc(sizeof(*m) + (total - skip));
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = total - skip;
	m->off = 0;
	m->nfds = 0;
	for (unsigned i = 0; i < nfds; i++) {
		int d = fcntl_dupfd(fds[i]);

		if (d < 0) {
			close_fds(m->fds, m->nfds);
			free(m);
			return d;
		}
		m->fds[m->nfds++] = d;
	}
	for (int i = 0; i < iovcnt; i++) {
		size_t l = iov[i].iov_len;
		const uint8_t *b = iov[i].iov_base;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(m->data + at, b + skip, l - skip);
		at += l - skip;
		skip = 0;
	}
	if (s->txq_tail)
		s->txq_tail->next = m;
	else
		s->txq_head = m;
	s->txq_tail = m;
	s->txq_bytes += m->len;
	return 0;
}

static int sock_flush(struct vfk_channel *ch, int timeout_ms);

static int sock_send(struct vfk_channel *ch, struct vfk_hdr *hdr,
		     const struct iovec *iov, int iovcnt, const int *fds,
		     unsigned nfds)
{
	struct sock_channel *s = sc(ch);
	struct iovec v[8];
	uint8_t hb[VFK_HDR_SIZE];
	size_t total = VFK_HDR_SIZE, sent = 0;
	int rc;

	if (iovcnt > 7 || nfds > VFK_CHANNEL_MAX_FDS)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total > UINT32_MAX)
		return -E2BIG;
	hdr->size = (uint32_t)total;
	vfk_hdr_encode(hb, hdr);
	v[0].iov_base = hb;
	v[0].iov_len = VFK_HDR_SIZE;
	for (int i = 0; i < iovcnt; i++)
		v[i + 1] = iov[i];
	ch->msgs_out++;

	if (s->txq_head) {
		/* Keep order: try to drain first, then queue if still blocked. */
		rc = sock_flush(ch, 0);
		if (rc && rc != -EAGAIN)
			return rc;
		if (s->txq_head)
			return queue_tail(s, v, iovcnt + 1, 0, fds, nfds);
	}
	rc = send_raw(s, v, iovcnt + 1, fds, nfds, &sent);
	if (rc)
		return rc;
	if (sent == total)
		return 0;
	/* Partial (fds already went with the first byte) or nothing sent. */
	return queue_tail(s, v, iovcnt + 1, sent, sent ? NULL : fds,
			  sent ? 0 : nfds);
}

static int sock_flush(struct vfk_channel *ch, int timeout_ms)
{
	struct sock_channel *s = sc(ch);

	while (s->txq_head) {
		struct txmsg *m = s->txq_head;
		struct iovec v = { m->data + m->off, m->len - m->off };
		size_t sent;
		int rc;

		rc = send_raw(s, &v, 1, m->nfds && m->off == 0 ? m->fds : NULL,
			      m->off == 0 ? m->nfds : 0, &sent);
		if (rc)
			return rc;
		if (sent) {
			if (m->off == 0) {
				close_fds(m->fds, m->nfds);
				m->nfds = 0;
			}
			m->off += sent;
			s->txq_bytes -= sent;
			if (m->off == m->len) {
				s->txq_head = m->next;
				if (!s->txq_head)
					s->txq_tail = NULL;
				free(m);
			}
			continue;
		}
		if (timeout_ms == 0)
			return -EAGAIN;
		{
			struct pollfd pfd = { .fd = s->fd, .events = POLLOUT };
			int n;

			do {
				n = poll(&pfd, 1, timeout_ms);
			} while (n < 0 && errno == EINTR);
			if (n == 0)
				return -EAGAIN;
			if (n < 0)
				return -errno;
			if (pfd.revents & (POLLERR | POLLHUP))
				return -EPIPE;
		}
	}
	return 0;
}

static bool sock_tx_pending(struct vfk_channel *ch)
{
	return sc(ch)->txq_head != NULL;
}

static int sock_wait(struct vfk_channel *ch, int timeout_ms)
{
	struct sock_channel *s = sc(ch);
	struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
	int n;

	if (sock_has_buffered(ch) || s->eof)
		return 0;
	do {
		n = poll(&pfd, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int sock_fd(struct vfk_channel *ch)
{
	return sc(ch)->fd;
}

static void sock_destroy(struct vfk_channel *ch)
{
	struct sock_channel *s = sc(ch);

	if (!ch)
		return;
	for (unsigned i = 0; i < s->fdq_n; i++)
		close_fds(s->fdq[i].fds, s->fdq[i].n);
	while (s->txq_head) {
		struct txmsg *m = s->txq_head;

		s->txq_head = m->next;
		close_fds(m->fds, m->nfds);
		free(m);
	}
	close(s->fd);
	free(s->rx);
	free(s);
}

static const struct vfk_channel_ops sock_ops = {
	.version = 3,
	.name = "unix-stream",
	.recv = sock_recv,
	.has_buffered = sock_has_buffered,
	.send = sock_send,
	.flush = sock_flush,
	.tx_pending = sock_tx_pending,
	.wait = sock_wait,
	.fd = sock_fd,
	.destroy = sock_destroy,
	.recv_wait = sock_recv_wait,
	.recv_prepare = sock_recv_prepare,
	.recv_commit = sock_recv_commit,
};

int vfk_sock_channel_create(int fd, uint32_t max_msg_size, unsigned max_fds,
			    struct vfk_channel **out)
{
	struct sock_channel *s;

	if (fd < 0 || max_msg_size < 64 || max_fds > VFK_CHANNEL_MAX_FDS)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->rx = malloc(max_msg_size);
	if (!s->rx) {
		free(s);
		return -ENOMEM;
	}
	s->base.ops = &sock_ops;
	s->base.max_msg_size = max_msg_size;
	s->base.max_fds = max_fds;
	s->fd = fd;
	s->rx_cap = max_msg_size;
	*out = &s->base;
	return 0;
}
