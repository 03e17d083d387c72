/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the server's message handling: a real dma-test
 * device behind a real vfk_server, reached through a real AF_UNIX socket.
 *
 * Each input gets a fresh device and server (device state outlives a
 * client, so reusing them would make inputs depend on each other).  The
 * harness is the client: it negotiates VERSION (unless the input asks to do
 * it itself), then writes the input's records to the socket, each with the
 * fds its control byte asks for, calling vfk_server_dispatch() in between
 * and reading back what the server sends.  See fuzz_format.h.
 *
 * What the server sends is checked as it arrives: every header must decode,
 * error replies must carry an errno, DMA requests must respect the client's
 * limits.  When the client goes away the server must notice it and release
 * every fd and mapping the client gave it (the spec's rule for a departed
 * client), and once destroyed it must leave no fd behind.  A violation
 * aborts, which libFuzzer reports as a crash.
 *
 * An input whose records ask for a reconnection (RF_RECONNECT) is served
 * from a listening socket, so several clients in turn meet the device
 * state their predecessors left.
 *
 * DMA requests.  dma-test's copies reach fd-less DMA windows with DMA_READ
 * and DMA_WRITE messages, and the server waits for the replies.  A single
 * thread cannot answer while it is inside dispatch, so by default nobody
 * answers and the server times out (reply_timeout_ms is 1 ms here); with
 * SF_RESPONDER a client thread reads the socket and answers, which reaches
 * the reply handling and the commands served while waiting.
 *
 * SF_RUN inputs run the server with vfk_server_run() on a thread of its
 * own (the io_uring loop of `vfiokit serve`); the harness then waits until
 * each record is consumed (SIOCOUTQ) and answers DMA requests itself.
 *
 * Environment: FUZZ_SERVER_VERBOSE=1 prints the server's log;
 * FUZZ_SERVER_NO_RUN=1 serves SF_RUN inputs with dispatch too (to fuzz
 * past a known bug of the run loop).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "vfiokit/proto.h"
#include "vfiokit/server.h"

#include "dma_test.h"
#include "fuzz_format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(int line, const char *what)
{
	fprintf(stderr, "fuzz_server.c:%d: invariant violated: %s\n", line, what);
	abort();
}

#define CHECK(c) do { if (!(c)) fail(__LINE__, #c); } while (0)
#define CHECK_MSG(c, msg) do { if (!(c)) fail(__LINE__, msg); } while (0)

/* DMA requests the responder answers per input; later ones get an error
 * reply, so a huge copy through small messages stays fast. */
#define RESPONDER_MAX_ANSWERS 64
/* How long the server may take to notice a closed client, or (SF_RUN) to
 * consume what was written. */
#define DISCONNECT_DEADLINE_MS 5000
#define SETTLE_DEADLINE_MS 5000
#define READ_BUF (64u << 10)
#define KEEP_REPLY 4096u

static bool verbose;
static bool skip_run; /* FUZZ_SERVER_NO_RUN: treat SF_RUN as clear */
static uint8_t dma_data[1u << 20]; /* what the responder "reads" from memory */

static void log_cb(void *user, enum vfk_log_level level, const char *msg)
{
	(void)user;
	CHECK(level >= VFK_LOG_ERR && level <= VFK_LOG_DEBUG);
	CHECK(msg && strlen(msg) < 512);
	if (verbose)
		fprintf(stderr, "server[%d]: %s\n", level, msg);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open fds of the process.  getdents64 on a directory fd kept open for
 * the whole run: opendir() would allocate a large buffer per call, which
 * under AddressSanitizer costs more than the rest of an input. */
static int fd_dir = -1;

static int count_fds(void)
{
	static uint8_t buf[16384];
	long n;
	int count = 0;

	CHECK(lseek(fd_dir, 0, SEEK_SET) == 0);
	while ((n = syscall(SYS_getdents64, fd_dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);

			if (e->d_name[0] != '.')
				count++;
			off += e->d_reclen;
		}
	}
	CHECK(n == 0);
	return count;
}

/* Mappings of the harness's DMA memfd: only the server maps it. */
static int count_dma_maps(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:fuzz-dma"))
			n++;
	fclose(f);
	return n;
}

/* ---- the client's view of the server's output ---- */

struct reader {
	int fd;
	bool eof;
	/* limits the server's DMA requests must respect (0: not checked) */
	uint32_t max_dma_count;
	uint32_t max_msg_size;
	/* parser state */
	uint8_t hdr[VFK_HDR_SIZE];
	unsigned hdr_have;
	struct vfk_hdr cur;
	uint64_t body_left;
	uint8_t req[16];
	unsigned req_have;
	/* the last reply, for the handshake */
	struct vfk_hdr last;
	uint8_t reply[KEEP_REPLY];
	size_t reply_len;
	uint64_t replies;
	/* responder */
	bool respond;
	unsigned mode, answered;
	pthread_mutex_t *wlock;
	uint8_t buf[READ_BUF];
};

/* Write all of `iov` (blocking on a non-blocking fd); false if the peer
 * is gone. */
static bool write_all(int fd, struct iovec *iov, int n)
{
	while (n) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k < 0) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return false;
			if (poll(&p, 1, 1000) <= 0 || (p.revents & (POLLERR | POLLHUP)))
				return false;
			continue;
		}
		while (n && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return true;
}

/* Answer a DMA_READ/DMA_WRITE request the way the input's mode says. */
static void respond(struct reader *r, const struct vfk_hdr *req, uint64_t addr,
		    uint64_t count)
{
	struct vfk_hdr h = { .id = req->id, .cmd = req->cmd,
			     .flags = VFK_F_TYPE_REPLY };
	uint8_t hb[VFK_HDR_SIZE], head[16];
	struct iovec iov[3];
	int n = 1;
	bool err;

	if (r->mode == SF_RESP_SILENT)
		return;
	err = r->mode == SF_RESP_ERROR || r->answered >= RESPONDER_MAX_ANSWERS;
	r->answered++;
	if (err) {
		h.flags |= VFK_F_ERROR;
		h.error = EFAULT;
	} else {
		uint64_t c = count;

		if (r->mode == SF_RESP_MALFORMED)
			c++; /* an echo that does not match */
		memcpy(head, &addr, 8);
		memcpy(head + 8, &c, 8);
		iov[n++] = (struct iovec){ head, 16 };
		if (req->cmd == VFK_CMD_DMA_READ)
			iov[n++] = (struct iovec){ dma_data, (size_t)count };
	}
	h.size = VFK_HDR_SIZE;
	for (int i = 1; i < n; i++)
		h.size += (uint32_t)iov[i].iov_len;
	vfk_hdr_encode(hb, &h);
	iov[0] = (struct iovec){ hb, VFK_HDR_SIZE };
	pthread_mutex_lock(r->wlock);
	write_all(r->fd, iov, n);
	pthread_mutex_unlock(r->wlock);
}

static void begin_msg(struct reader *r)
{
	struct vfk_hdr *h = &r->cur;

	CHECK(vfk_hdr_decode(r->hdr, VFK_HDR_SIZE, UINT32_MAX, h) == 0);
	CHECK(h->size <= r->max_msg_size);
	if (vfk_hdr_is_reply(h)) {
		/* An error reply is the bare header with a non-zero errno. */
		if (h->flags & VFK_F_ERROR)
			CHECK(h->error != 0 && h->size == VFK_HDR_SIZE);
		r->reply_len = 0;
	} else {
		/* The only commands a server sends. */
		CHECK(h->cmd == VFK_CMD_DMA_READ || h->cmd == VFK_CMD_DMA_WRITE);
		CHECK(!(h->flags & VFK_F_NO_REPLY));
		CHECK(h->size >= VFK_HDR_SIZE + 16);
		r->req_have = 0;
	}
	r->body_left = h->size - VFK_HDR_SIZE;
}

static void end_msg(struct reader *r)
{
	const struct vfk_hdr *h = &r->cur;

	r->hdr_have = 0;
	if (vfk_hdr_is_reply(h)) {
		r->last = *h;
		r->replies++;
		return;
	}
	{
		uint64_t addr = rd64(r->req), count = rd64(r->req + 8);

		CHECK(count > 0 && addr + (count - 1) >= addr);
		if (r->max_dma_count)
			CHECK(count <= r->max_dma_count);
		if (h->cmd == VFK_CMD_DMA_READ)
			CHECK(h->size == VFK_HDR_SIZE + 16);
		else
			CHECK(h->size == VFK_HDR_SIZE + 16 + count);
		CHECK(count <= sizeof(dma_data));
		if (r->respond)
			respond(r, h, addr, count);
	}
}

static void parse(struct reader *r, const uint8_t *b, size_t n)
{
	while (n) {
		size_t take;

		if (r->hdr_have < VFK_HDR_SIZE) {
			take = VFK_HDR_SIZE - r->hdr_have;
			if (take > n)
				take = n;
			memcpy(r->hdr + r->hdr_have, b, take);
			r->hdr_have += (unsigned)take;
			b += take;
			n -= take;
			if (r->hdr_have == VFK_HDR_SIZE) {
				begin_msg(r);
				if (!r->body_left)
					end_msg(r);
			}
			continue;
		}
		take = r->body_left < n ? (size_t)r->body_left : n;
		if (vfk_hdr_is_reply(&r->cur)) {
			size_t k = take;

			if (k > KEEP_REPLY - r->reply_len)
				k = KEEP_REPLY - r->reply_len;
			memcpy(r->reply + r->reply_len, b, k);
			r->reply_len += k;
		} else if (r->req_have < 16) {
			size_t k = take < 16u - r->req_have ? take : 16u - r->req_have;

			memcpy(r->req + r->req_have, b, k);
			r->req_have += (unsigned)k;
		}
		r->body_left -= take;
		b += take;
		n -= take;
		if (!r->body_left)
			end_msg(r);
	}
}

/* Read what is there (one recvmsg); closes received fds.  1 if something
 * was read and more may be there, 0 if nothing (more) is there, -1 at EOF
 * or error. */
static int read_once(struct reader *r)
{
	bool got_fds = false;

	union {
		struct cmsghdr align;
		uint8_t b[CMSG_SPACE(253 * sizeof(int))];
	} cb;
	struct iovec iov = { r->buf, sizeof(r->buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	ssize_t n;

	if (r->eof)
		return -1;
	n = recvmsg(r->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		r->eof = true;
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		got_fds = true;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
	if (n == 0) {
		r->eof = true;
		return -1;
	}
	parse(r, r->buf, (size_t)n);
	/* A stream recvmsg() returns less than asked only when the socket
	 * ran dry or at a chunk that carried fds. */
	return (size_t)n == sizeof(r->buf) || got_fds ? 1 : 0;
}

static void drain(struct reader *r)
{
	while (read_once(r) > 0)
		;
}

/*
 * The responder is one thread for the whole run, handed a reader per input:
 * creating a thread per input would cost time and leave glibc's cached
 * thread memory looking like a leak to libFuzzer.
 */
static pthread_mutex_t resp_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resp_cv = PTHREAD_COND_INITIALIZER;
static struct reader *resp_job;
static bool resp_started;

static void serve(struct reader *r)
{
	for (;;) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int rc = read_once(r);

		if (rc < 0)
			break;
		if (rc == 0 && poll(&p, 1, 1000) < 0 && errno != EINTR)
			break;
	}
}

static void *responder_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct reader *r;

		pthread_mutex_lock(&resp_mu);
		while (!resp_job)
			pthread_cond_wait(&resp_cv, &resp_mu);
		r = resp_job;
		pthread_mutex_unlock(&resp_mu);
		serve(r);
		pthread_mutex_lock(&resp_mu);
		resp_job = NULL;
		pthread_cond_broadcast(&resp_cv);
		pthread_mutex_unlock(&resp_mu);
	}
	return NULL;
}

static void responder_start(struct reader *r)
{
	pthread_t t;

	if (!resp_started) {
		CHECK(pthread_create(&t, NULL, responder_main, NULL) == 0);
		pthread_detach(t);
		resp_started = true;
	}
	pthread_mutex_lock(&resp_mu);
	resp_job = r;
	pthread_cond_broadcast(&resp_cv);
	pthread_mutex_unlock(&resp_mu);
}

/*
 * SF_RUN: vfk_server_run() on a thread kept for the whole run (a thread
 * per input would cost time, as for the responder).
 */
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t run_cv = PTHREAD_COND_INITIALIZER;
static struct vfk_server *run_job;
static int run_rc;
static bool run_started;

static void *runner_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct vfk_server *srv;
		int rc;

		pthread_mutex_lock(&run_mu);
		while (!run_job)
			pthread_cond_wait(&run_cv, &run_mu);
		srv = run_job;
		pthread_mutex_unlock(&run_mu);
		rc = vfk_server_run(srv);
		pthread_mutex_lock(&run_mu);
		run_rc = rc;
		run_job = NULL;
		pthread_cond_broadcast(&run_cv);
		pthread_mutex_unlock(&run_mu);
	}
	return NULL;
}

static void runner_start(struct vfk_server *srv)
{
	pthread_t t;

	if (!run_started) {
		CHECK(pthread_create(&t, NULL, runner_main, NULL) == 0);
		pthread_detach(t);
		run_started = true;
	}
	pthread_mutex_lock(&run_mu);
	run_job = srv;
	pthread_cond_broadcast(&run_cv);
	pthread_mutex_unlock(&run_mu);
}

static bool runner_busy(void)
{
	bool busy;

	pthread_mutex_lock(&run_mu);
	busy = run_job != NULL;
	pthread_mutex_unlock(&run_mu);
	return busy;
}

/* ---- one input ---- */

struct ctx {
	struct vfk_server *srv;
	unsigned cfg0, cfg1;
	uint32_t srv_xfer;   /* the server's max_data_xfer */
	bool listening;      /* served from a listening socket (RF_RECONNECT) */
	bool running;        /* SF_RUN: vfk_server_run() on the runner thread */
	int client;
	int fds_idle;        /* open fds while the server has no client */
	bool dead;     /* the server dropped us: writing is pointless */
	bool done;     /* dispatch reported VFK_SERVER_DONE */
	bool threaded;
	bool sent_memfd;
	int memfd;
	int kept[4];         /* eventfds of the last record that had some */
	unsigned nkept;
	pthread_mutex_t wlock;
	struct reader *r;
};

static void dispatch(struct ctx *c)
{
	int rc = vfk_server_dispatch(c->srv);

	CHECK(rc == 0 || rc == VFK_SERVER_DONE);
	if (rc == VFK_SERVER_DONE)
		c->done = true;
}

/*
 * SF_RUN: wait until the server has read everything written (SIOCOUTQ of
 * an AF_UNIX socket counts the bytes its peer has not consumed), taking
 * what it sends and answering its DMA requests meanwhile.
 */
static void settle(struct ctx *c)
{
	int64_t deadline = now_ms() + SETTLE_DEADLINE_MS;

	for (;;) {
		struct pollfd p = { .fd = c->client, .events = POLLIN };
		int outq = 0;

		drain(c->r);
		if (c->r->eof || !runner_busy())
			return; /* the server dropped us, or is done */
		CHECK(ioctl(c->client, SIOCOUTQ, &outq) == 0);
		if (outq == 0)
			return;
		CHECK_MSG(now_ms() < deadline,
			  "vfk_server_run() stopped reading the socket for 5 s");
		poll(&p, 1, 1);
	}
}

/* Let the server run and take what it sent. */
static void pump(struct ctx *c, bool do_drain)
{
	if (c->running) {
		settle(c);
		return;
	}
	dispatch(c);
	if (!c->threaded && do_drain)
		drain(c->r);
}

static int get_memfd(struct ctx *c)
{
	if (c->memfd < 0) {
		c->memfd = memfd_create("fuzz-dma", MFD_CLOEXEC);
		CHECK(c->memfd >= 0);
		CHECK(ftruncate(c->memfd, RF_MEMFD_SIZE) == 0);
	}
	c->sent_memfd = true;
	return c->memfd;
}

/* Open the fds a record carries; returns how many (the caller closes). */
static unsigned make_fds(struct ctx *c, unsigned kind, int *fds)
{
	char path[64];
	int p[2];
	unsigned n = 0;

	switch (kind) {
	case RF_FD_EVENTFD:
	case RF_FD_2EVENTFD:
	case RF_FD_4EVENTFD: {
		unsigned want = kind == RF_FD_EVENTFD ? 1 : kind == RF_FD_2EVENTFD ? 2 : 4;

		while (n < want) {
			fds[n] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			CHECK(fds[n] >= 0);
			n++;
		}
		break;
	}
	case RF_FD_MEMFD:
		fds[n] = dup(get_memfd(c));
		CHECK(fds[n] >= 0);
		n++;
		break;
	case RF_FD_MEMFD_RO:
		snprintf(path, sizeof(path), "/proc/self/fd/%d", get_memfd(c));
		fds[n] = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fds[n] >= 0);
		n++;
		break;
	case RF_FD_PIPE:
		CHECK(pipe2(p, O_CLOEXEC) == 0);
		close(p[1]);
		fds[n++] = p[0];
		break;
	case RF_FD_MEMFD_EVENTFD:
		fds[n] = dup(get_memfd(c));
		CHECK(fds[n] >= 0);
		n++;
		fds[n] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		CHECK(fds[n] >= 0);
		n++;
		break;
	}
	return n;
}

static bool is_eventfd_kind(unsigned kind, unsigned i)
{
	return kind == RF_FD_EVENTFD || kind == RF_FD_2EVENTFD ||
	       kind == RF_FD_4EVENTFD || (kind == RF_FD_MEMFD_EVENTFD && i == 1);
}

static void drop_kept(struct ctx *c)
{
	for (unsigned i = 0; i < c->nkept; i++)
		close(c->kept[i]);
	c->nkept = 0;
}

/* One sendmsg() of the record (more only if the socket is full). */
static void send_record(struct ctx *c, const uint8_t *b, size_t len, unsigned ctl)
{
	union {
		struct cmsghdr align;
		uint8_t b[CMSG_SPACE(4 * sizeof(int))];
	} cb;
	int fds[4];
	unsigned nfds = make_fds(c, ctl & RF_FD_MASK, fds);
	size_t off = 0;
	unsigned stuck = 0;

	while (off < len && !c->dead) {
		struct iovec iov = { (void *)(b + off), len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t k;

		if (nfds && off == 0) {
			struct cmsghdr *cm;

			mh.msg_control = cb.b;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
		}
		if (c->threaded)
			pthread_mutex_lock(&c->wlock);
		k = sendmsg(c->client, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (c->threaded)
			pthread_mutex_unlock(&c->wlock);
		if (k > 0) {
			off += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && ++stuck < 1000 && !c->done) {
			/* The socket is full: let the server read. */
			pump(c, true);
			continue;
		}
		c->dead = true;
	}
	/* Keep the eventfds for RF_SIGNAL; close the rest. */
	if (nfds)
		drop_kept(c);
	for (unsigned i = 0; i < nfds; i++) {
		if (is_eventfd_kind(ctl & RF_FD_MASK, i))
			c->kept[c->nkept++] = fds[i];
		else
			close(fds[i]);
	}
}

/* Signal the eventfds the client passed last, as a client signals an
 * INTx unmask eventfd. */
static void signal_kept(struct ctx *c)
{
	uint64_t one = 1;

	for (unsigned i = 0; i < c->nkept; i++)
		CHECK(write(c->kept[i], &one, sizeof(one)) == sizeof(one));
}

static int client_xfer(unsigned cfg0)
{
	static const int x[4] = { 0, 256, 4096, 65536 };

	return x[(cfg0 & SF_CLIENT_XFER_MASK) >> SF_CLIENT_XFER_SHIFT];
}

/* A valid VERSION from the client side, and the server's valid answer. */
static void handshake(struct ctx *c)
{
	unsigned cfg0 = c->cfg0, cfg1 = c->cfg1;
	uint8_t msg[VFK_HDR_SIZE + 4 + 256];
	char *json = (char *)msg + VFK_HDR_SIZE + 4;
	struct vfk_hdr h = { .id = 1, .cmd = VFK_CMD_VERSION };
	struct vfk_version v;
	int jl, xfer;
	char xs[48] = "";

	xfer = client_xfer(cfg0);
	if (xfer)
		snprintf(xs, sizeof(xs), ",\"max_data_xfer_size\":%d", xfer);
	jl = snprintf(json, 256,
		      "{\"capabilities\":{\"max_msg_fds\":%u,\"pgsizes\":4096%s%s}}",
		      (cfg0 & SF_CLIENT_NO_FDS) ? 0u : 16u, xs,
		      (cfg1 & SF_WRITE_MULTI) ? ",\"write_multiple\":true" : "");
	CHECK(jl > 0 && jl < 256);
	memset(msg + VFK_HDR_SIZE, 0, 4); /* major 0, minor 0 */
	h.size = (uint32_t)(VFK_HDR_SIZE + 4 + (size_t)jl + 1);
	vfk_hdr_encode(msg, &h);
	send_record(c, msg, h.size, 0);
	CHECK(!c->dead);
	for (int i = 0; i < 100 && c->r->replies == 0 && !c->done; i++) {
		struct pollfd p = { .fd = vfk_server_fd(c->srv), .events = POLLIN };

		if (c->running) {
			p.fd = c->client;
			poll(&p, 1, 10);
		} else {
			poll(&p, 1, 10);
			dispatch(c);
		}
		drain(c->r); /* the responder thread is not running yet */
	}
	CHECK(c->r->replies == 1);
	CHECK(c->r->last.cmd == VFK_CMD_VERSION && c->r->last.id == 1);
	CHECK(!(c->r->last.flags & VFK_F_ERROR));
	CHECK(vfk_version_decode(c->r->reply, c->r->reply_len, &v) == 0);
	CHECK(v.major == 0 && v.minor == 0);
	CHECK(vfk_server_connected(c->srv));
}

static bool server_busy(struct ctx *c)
{
	struct pollfd p = { .fd = vfk_server_fd(c->srv), .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static bool responder_busy(void)
{
	bool busy;

	pthread_mutex_lock(&resp_mu);
	busy = resp_job != NULL;
	pthread_mutex_unlock(&resp_mu);
	return busy;
}

/* Connect a client, negotiating unless SF_RAW. */
static void start_session(struct ctx *c, const struct sockaddr_un *sa,
			  socklen_t sl)
{
	struct reader *r = c->r;
	int sv[2];

	if (c->listening) {
		c->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(c->client >= 0);
		CHECK(connect(c->client, (const struct sockaddr *)sa, sl) == 0);
		dispatch(c); /* accept */
	} else {
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		CHECK(vfk_server_adopt_fd(c->srv, sv[1]) == 0);
		c->client = sv[0];
	}
	CHECK(fcntl(c->client, F_SETFL, O_NONBLOCK) == 0);
	c->dead = false;

	memset(r, 0, offsetof(struct reader, buf));
	r->fd = c->client;
	r->wlock = &c->wlock;
	r->max_msg_size = VFK_HDR_SIZE + 64 + c->srv_xfer;
	r->mode = c->cfg1 & SF_RESP_MASK;
	if (c->running) {
		r->respond = true; /* the harness answers between records */
		runner_start(c->srv);
	}
	if (!(c->cfg0 & SF_RAW)) {
		uint32_t cx = client_xfer(c->cfg0) ? (uint32_t)client_xfer(c->cfg0)
						   : VFK_DEFAULT_MAX_DATA_XFER;

		r->max_dma_count = cx < c->srv_xfer ? cx : c->srv_xfer;
		handshake(c);
	}
	if (c->threaded) {
		r->respond = true;
		responder_start(r);
	}
}

/*
 * The client leaves; the server must notice, and release every fd and
 * mapping the client gave it (the spec's rule for a departed client).
 */
static void end_session(struct ctx *c)
{
	int64_t deadline = now_ms() + DISCONNECT_DEADLINE_MS;

	if (c->threaded) {
		/* The responder keeps reading until the server closes. */
		shutdown(c->client, SHUT_WR);
	} else {
		close(c->client);
		c->client = -1;
	}
	while (c->running) {
		/* vfk_server_run() returns once the client is gone. */
		if (!runner_busy()) {
			CHECK(run_rc == 0);
			c->done = true;
			break;
		}
		CHECK_MSG(now_ms() < deadline,
			  "vfk_server_run() did not return within 5 s of the client closing");
		usleep(200);
	}
	while (!c->running) {
		bool gone = !c->threaded || !responder_busy();

		if (gone && c->client >= 0) {
			close(c->client);
			c->client = -1;
		}
		/* An adopted connection ends the server; a listening server
		 * goes quiet once it has dropped the client. */
		if (gone && (c->listening ? !server_busy(c) : c->done))
			break;
		CHECK_MSG(now_ms() < deadline,
			  "the server did not drop the client within 5 s of it closing");
		if (!server_busy(c)) {
			struct pollfd p = { .fd = vfk_server_fd(c->srv), .events = POLLIN };

			poll(&p, 1, 10);
		}
		dispatch(c);
	}
	CHECK(!vfk_server_connected(c->srv));
	if (c->sent_memfd)
		CHECK_MSG(count_dma_maps() == 0,
			  "a DMA window's mapping outlived the client");
	if (c->memfd >= 0) {
		close(c->memfd);
		c->memfd = -1;
	}
	c->sent_memfd = false;
	drop_kept(c);
	CHECK_MSG(count_fds() == c->fds_idle,
		  "an fd the client passed outlived the client");
}
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *e = getenv("FUZZ_SERVER_VERBOSE");

	(void)argc;
	(void)argv;
	verbose = e && *e && strcmp(e, "0") != 0;
	e = getenv("FUZZ_SERVER_NO_RUN");
	skip_run = e && *e && strcmp(e, "0") != 0;
	fd_dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd_dir >= 0);
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(dma_data); i++)
		dma_data[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

static struct reader reader_state;

/* Whether any record asks for a reconnection. */
static bool wants_reconnect(const uint8_t *d, size_t size, size_t at)
{
	while (size - at >= RF_HDR) {
		size_t len = d[at + 1] | (size_t)d[at + 2] << 8;

		if (d[at] & RF_RECONNECT)
			return true;
		at += RF_HDR;
		at += len < size - at ? len : size - at;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t xfers[4] = { 0, 4096, 65536, 256 };
	unsigned cfg0 = size > 0 ? data[0] : 0, cfg1 = size > 1 ? data[1] : 0;
	struct dma_test_opts dopts = { 0 };
	struct vfk_server_opts o = { .version = VFK_SERVER_OPTS_VERSION };
	struct ctx c = { .client = -1, .memfd = -1, .cfg0 = cfg0, .cfg1 = cfg1 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t sl = 0;
	struct vfk_dev *dev;
	int fds_before;
	size_t at = size < 2 ? size : 2;

	fds_before = count_fds();
	if (cfg1 & SF_PAGE_64K)
		dopts.page_size = 65536;
	dopts.policy.disabled_access = (cfg0 & SF_ALL_ONES) ? VFK_DISABLED_ALL_ONES
						     : VFK_DISABLED_EIO;
	CHECK(dma_test_create(&dopts, &dev) == 0);

	o.log = log_cb;
	o.log_level = VFK_LOG_DEBUG;
	o.max_data_xfer = xfers[cfg0 & SF_XFER_MASK];
	o.max_dma_maps = (cfg1 & SF_MAPS_MASK) >> SF_MAPS_SHIFT;
	c.running = (cfg1 & SF_RUN) && !skip_run;
	c.threaded = (cfg0 & SF_RESPONDER) && !c.running;
	/* What the server waits for each DMA reply.  The responder answers
	 * within microseconds, but an input can garble the stream so that
	 * the server never sees the answer, once per doorbell: a 16 KiB
	 * input holds ~450 doorbells, which must stay far below libFuzzer's
	 * -timeout. */
	o.reply_timeout_ms = (c.threaded || c.running) &&
				     (cfg1 & SF_RESP_MASK) != SF_RESP_SILENT ? 5 : 1;
	CHECK(vfk_server_create(dev, &o, &c.srv) == 0);
	c.srv_xfer = o.max_data_xfer ? o.max_data_xfer : VFK_DEFAULT_MAX_DATA_XFER;
	pthread_mutex_init(&c.wlock, NULL);
	c.r = &reader_state;

	c.listening = !c.running && wants_reconnect(data, size, at);
	if (c.listening) {
		/* An abstract socket: nothing to clean up in the filesystem. */
		int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
				 "vfiokit-fuzz-%d", (int)getpid());

		sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
		CHECK(lfd >= 0);
		CHECK(bind(lfd, (struct sockaddr *)&sa, sl) == 0 && listen(lfd, 4) == 0);
		CHECK(vfk_server_adopt_fd(c.srv, lfd) == 0);
	}
	c.fds_idle = count_fds();
	start_session(&c, &sa, sl);

	while (size - at >= RF_HDR && !c.done) {
		unsigned ctl = data[at];
		size_t len = data[at + 1] | (size_t)data[at + 2] << 8;

		at += RF_HDR;
		if (len > size - at)
			len = size - at;
		if ((ctl & RF_RECONNECT) && c.listening) {
			end_session(&c);
			start_session(&c, &sa, sl);
		}
		if (ctl & RF_SIGNAL)
			signal_kept(&c);
		if (!c.dead)
			send_record(&c, data + at, len, ctl);
		at += len;
		if (ctl & RF_NO_DISPATCH)
			continue;
		/* A second round runs what the first kicked (the dma-test
		 * doorbell runs its copy from the server loop). */
		pump(&c, !(ctl & RF_NO_DRAIN));
		if (!c.running && server_busy(&c))
			pump(&c, !(ctl & RF_NO_DRAIN));
	}
	end_session(&c);

	vfk_server_destroy(c.srv);
	dma_test_destroy(dev);
	pthread_mutex_destroy(&c.wlock);
	CHECK_MSG(count_fds() == fds_before,
		  "an fd outlived vfk_server_destroy() and dma_test_destroy()");
	return 0;
}
