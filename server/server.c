/* SPDX-License-Identifier: MIT */
/*
 * Serving a device: the listening socket, one client at a time, the epoll
 * set the caller polls, and the handler of every vfio-user command.
 *
 * Request path.  One recvmsg() brings a request into the channel's
 * preallocated buffer, the handler writes its reply into the server's
 * preallocated buffer, one sendmsg() sends it: no heap allocation.
 *
 * Server-to-client DMA messages.  QEMU handles a server's DMA_READ/WRITE on
 * its main loop, under its big lock, which a vCPU holds while it waits for
 * our reply to an MMIO access.  So while the server waits for a DMA reply
 * it goes on handling the client's commands; otherwise both sides would
 * wait for each other until a timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "../channel/channel.h"
#include "internal.h"

enum src_kind { SRC_LISTEN, SRC_CONN, SRC_STOP, SRC_UNMASK, SRC_WATCH, SRC_GRACE, SRC_REFUSE };

/* What an epoll event points at. */
struct ep_src {
	enum src_kind kind;
};

struct watch {
	struct ep_src src; /* first: epoll data points here */
	struct watch *next;
	int fd;
	uint32_t events;
	vfk_watch_fn fn;
	void *arg;
	bool dead; /* unwatched during a dispatch round: freed at its end */
};

struct vfk_server {
	struct vfk_dev *dev;
	struct vfk_server_opts opts;
	int epfd;               /* everything: what vfk_server_fd() hands out */
	int epfd_other;         /* everything but the connection (io_uring loop) */
	int listen_fd;
	char *listen_path;      /* unlinked on destroy */
	int stop_fd;            /* eventfd written by vfk_server_stop() */
	int grace_fd;           /* timerfd: the end of a stop's REQ grace */
	int refuse_fd;          /* a second client, waiting for its EBUSY */
	bool req_sent;          /* a stop asked the client to release (REQ) */
	int unmask_fd;          /* our dup of the INTx unmask eventfd */
	unsigned unmask_gen;    /* the device's intx_unmask_gen it follows */
	struct ep_src src_listen, src_conn, src_stop, src_unmask, src_grace, src_refuse;
	struct vfk_channel *ch; /* the client, or NULL */
	bool conn_adopted;      /* serving one fd given by the caller */
	bool conn_wants_out;    /* EPOLLOUT is in the conn's interest set */
	bool negotiated;        /* VERSION done */
	bool stopping, done;
	struct vfk_version_caps peer; /* the client's limits */
	uint16_t next_id;       /* ids of our DMA_READ/DMA_WRITE requests */
	unsigned nest;          /* commands handled while waiting for a DMA reply */
	struct watch *watches;
	unsigned dispatching;   /* >0 while watch callbacks may run */
	uint8_t *tx;            /* reply scratch buffer */
	size_t tx_cap;
	struct vfk_server_stats stats;
	/* vfk_server_run() waits and receives in one io_uring_enter(). */
	bool uring;             /* the ring works here */
	struct io_uring ring;
	struct msghdr rx_mh;    /* the armed receive's target */
	bool recv_armed, poll_armed, out_armed;
	bool in_uring_loop;
	bool dropping;          /* drop_client() is finishing the ring's
				 * requests on the channel: not acted on */
};

enum { UD_RECV = 1, UD_POLL, UD_POLLOUT, UD_CANCEL };

static void refuse_close(struct vfk_server *srv);
static void refuse_answer(struct vfk_server *srv);
static void refuse_new(struct vfk_server *srv);
static void stop_requested(struct vfk_server *srv);

/* ---- logging ---- */

void vfk_server_logv(struct vfk_server *srv, enum vfk_log_level level,
		     const char *fmt, va_list ap)
{
	char line[512];

	if (!srv->opts.log || level > srv->opts.log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	srv->opts.log(srv->opts.log_user, level, line);
}

static void slog(struct vfk_server *srv, enum vfk_log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slog(struct vfk_server *srv, enum vfk_log_level level,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfk_server_logv(srv, level, fmt, ap);
	va_end(ap);
}

/* ---- epoll helpers ---- */

static int ep_add(struct vfk_server *srv, int fd, uint32_t events, void *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	/* The io_uring loop reads the connection itself; everything else
	 * it learns about through the second set. */
	if (src != &srv->src_conn &&
	    epoll_ctl(srv->epfd_other, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
		return err;
	}
	return 0;
}

static void ep_del(struct vfk_server *srv, int fd)
{
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
	epoll_ctl(srv->epfd_other, EPOLL_CTL_DEL, fd, NULL);
}

static void conn_set_out(struct vfk_server *srv, bool want)
{
	/* While output is queued, stop watching input: conn_input() would
	 * not read it (backpressure) and a level-triggered EPOLLIN would
	 * spin. */
	struct epoll_event ev = { .events = want ? EPOLLOUT : EPOLLIN,
				  .data.ptr = &srv->src_conn };

	if (!srv->ch)
		return;
	if (srv->in_uring_loop && want && !srv->out_armed) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ring);

		if (sqe) {
			io_uring_prep_poll_add(sqe, srv->ch->ops->fd(srv->ch), POLLOUT);
			io_uring_sqe_set_data64(sqe, UD_POLLOUT);
			srv->out_armed = true;
		}
	}
	if (srv->conn_wants_out == want)
		return;
	epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->ch->ops->fd(srv->ch), &ev);
	srv->conn_wants_out = want;
}

/*
 * The server watches its own duplicate of the client's INTx unmask
 * eventfd: the device closes its copy whenever the client replaces or
 * drops it, and an epoll registration must be removed while its fd is
 * still open (the client keeps the file alive, so a stale registration
 * would fire forever).  The generation counter tells a new fd from an old
 * one that got the same number.
 */
static void sync_unmask_watch(struct vfk_server *srv)
{
	unsigned gen;
	int fd = vfk_irq_unmask_fd(srv->dev, &gen);

	if (gen == srv->unmask_gen)
		return;
	srv->unmask_gen = gen;
	if (srv->unmask_fd >= 0) {
		ep_del(srv, srv->unmask_fd);
		close(srv->unmask_fd);
		srv->unmask_fd = -1;
	}
	if (fd >= 0) {
		int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);

		if (d >= 0 && ep_add(srv, d, EPOLLIN, &srv->src_unmask) == 0)
			srv->unmask_fd = d;
		else if (d >= 0)
			close(d);
	}
}

/* ---- client lifecycle ---- */

static void ring_cancel(struct vfk_server *srv, uint64_t ud, bool *armed,
			bool *other);

static void drop_client(struct vfk_server *srv, const char *why)
{
	if (!srv->ch)
		return;
	if (srv->recv_armed || srv->out_armed) {
		/* The ring still reads into this channel's buffer, or polls its
		 * socket (holding it open, and the POLLOUT slot the next
		 * client needs): finish both before the channel goes. */
		bool ignored = false;

		srv->dropping = true;
		ring_cancel(srv, UD_RECV, &srv->recv_armed, &ignored);
		ring_cancel(srv, UD_POLLOUT, &srv->out_armed, &ignored);
		srv->dropping = false;
	}
	slog(srv, VFK_LOG_INFO, "client disconnected: %s", why);
	ep_del(srv, srv->ch->ops->fd(srv->ch));
	srv->ch->ops->destroy(srv->ch);
	srv->ch = NULL;
	srv->conn_wants_out = false;
	/* The spec's rules for a departed client: its memory and its IRQ fds
	 * go.  Then, as vfio-pci resets a device its last user closed, the
	 * device returns to its power-on state, unless the operator keeps
	 * it for a client that reconnects. */
	vfk_dma_remove_all(srv->dev);
	vfk_irq_disconnect(srv->dev);
	sync_unmask_watch(srv);
	if (srv->negotiated && srv->dev->ops->detach)
		srv->dev->ops->detach(srv->dev);
	if (srv->negotiated && !srv->opts.keep_state_on_disconnect)
		vfk_dev_do_reset(srv->dev, VFK_RESET_RELEASE);
	if (srv->conn_adopted || (srv->negotiated && srv->opts.exit_on_disconnect) ||
	    srv->req_sent)
		srv->done = true;
	srv->negotiated = false;
}

int vfk_server_attach_channel(struct vfk_server *srv, struct vfk_channel *ch)
{
	int rc;

	if (srv->ch)
		return -EBUSY;
	rc = ep_add(srv, ch->ops->fd(ch), EPOLLIN, &srv->src_conn);
	if (rc)
		return rc;
	srv->ch = ch;
	srv->negotiated = false;
	srv->conn_wants_out = false;
	vfk_version_caps_default(&srv->peer);
	srv->stats.clients++;
	slog(srv, VFK_LOG_INFO, "client connected");
	return 0;
}

bool vfk_server_attached(const struct vfk_server *srv)
{
	return srv->ch != NULL;
}

/* Serve the connected socket `fd`: taken on success, left to the caller
 * on failure (the channel owns a duplicate until then, so that undoing it
 * cannot close the caller's fd). */
static int attach_client(struct vfk_server *srv, int fd)
{
	uint32_t max_msg = VFK_HDR_SIZE + 16 + srv->opts.max_data_xfer;
	struct vfk_channel *ch;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0), rc;

	if (dfd < 0)
		return -errno;
	rc = vfk_sock_channel_create(dfd, max_msg, srv->opts.max_msg_fds, &ch);
	if (rc) {
		close(dfd);
		return rc;
	}
	rc = vfk_server_attach_channel(srv, ch);
	if (rc) {
		ch->ops->destroy(ch);
		return rc;
	}
	close(fd);
	return 0;
}

/* ---- replies ---- */

static void send_reply(struct vfk_server *srv, const struct vfk_hdr *req,
		       int err, const void *payload, size_t len, const int *fds,
		       unsigned nfds)
{
	struct vfk_hdr h = { .id = req->id, .cmd = req->cmd,
			     .flags = VFK_F_TYPE_REPLY };
	struct iovec iov = { (void *)payload, len };
	int rc;

	if (!srv->ch)
		return;
	if (err) {
		/* An error reply is the bare header, and its errno must not
		 * be 0: QEMU would take that for success. */
		h.flags |= VFK_F_ERROR;
		h.error = (uint32_t)(err < 0 ? -err : err);
		srv->stats.errors++;
		rc = srv->ch->ops->send(srv->ch, &h, NULL, 0, NULL, 0);
	} else {
		rc = srv->ch->ops->send(srv->ch, &h, &iov, len ? 1 : 0, fds, nfds);
	}
	if (rc) {
		drop_client(srv, "send failed");
		return;
	}
	if (srv->ch->ops->tx_pending(srv->ch))
		conn_set_out(srv, true);
}

/* ---- handlers: each returns a reply payload length or -errno ---- */

static int h_version(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_version req, rep;
	const struct vfk_version_caps *c = &req.caps;
	int rc, n;

	if (srv->negotiated)
		return -EINVAL;
	rc = vfk_version_decode(m->payload, m->len, &req);
	if (rc)
		return rc;
	if (req.major != VFK_PROTO_MAJOR)
		return -ENOTSUP;

	/* The reply may not exceed what was proposed: a minor no higher,
	 * only capabilities the client named, limits no larger than its own
	 * (QEMU rejects larger ones), and no twin socket or migration. */
	memset(&rep, 0, sizeof(rep));
	rep.major = VFK_PROTO_MAJOR;
	rep.minor = VFK_PROTO_MINOR;
	if (req.minor < rep.minor)
		rep.minor = req.minor;
	vfk_version_caps_default(&rep.caps);
	if (c->present & VFK_CAP_MAX_MSG_FDS) {
		rep.caps.present |= VFK_CAP_MAX_MSG_FDS;
		rep.caps.max_msg_fds = srv->opts.max_msg_fds < c->max_msg_fds ?
					       srv->opts.max_msg_fds : c->max_msg_fds;
		if (rep.caps.max_msg_fds == 0)
			rep.caps.max_msg_fds = 1;
	}
	if (c->present & VFK_CAP_MAX_DATA_XFER) {
		rep.caps.present |= VFK_CAP_MAX_DATA_XFER;
		rep.caps.max_data_xfer_size = srv->opts.max_data_xfer < c->max_data_xfer_size ?
						      srv->opts.max_data_xfer : c->max_data_xfer_size;
	}
	if (c->present & VFK_CAP_PGSIZES) {
		/* Any page size suits us: windows are tracked at byte
		 * granularity.  Echo the client's, minus sub-4K bits. */
		rep.caps.present |= VFK_CAP_PGSIZES;
		rep.caps.pgsizes = c->pgsizes & ~0xfffull;
		if (!rep.caps.pgsizes)
			rep.caps.pgsizes = VFK_DEFAULT_PGSIZES;
	}
	if (c->present & VFK_CAP_MAX_DMA_MAPS) {
		rep.caps.present |= VFK_CAP_MAX_DMA_MAPS;
		rep.caps.max_dma_maps = srv->opts.max_dma_maps < c->max_dma_maps ?
						srv->opts.max_dma_maps : c->max_dma_maps;
	}
	if ((c->present & VFK_CAP_WRITE_MULTIPLE) && c->write_multiple) {
		rep.caps.present |= VFK_CAP_WRITE_MULTIPLE;
		rep.caps.write_multiple = true;
	}
	if (m->len == 4) {
		/* No JSON was proposed: answer in kind. */
		rep.caps.present = 0;
		memcpy(srv->tx, &rep.major, 2);
		memcpy(srv->tx + 2, &rep.minor, 2);
		n = 4;
	} else {
		/* QEMU's receive buffer for the reply is its request: a
		 * reply must fit in the request's size.  Drop capabilities,
		 * then fall back to "{}", then to no JSON at all. */
		n = vfk_version_encode(srv->tx, m->len, &rep);
		if (n < 0 && m->len >= 7) {
			memcpy(srv->tx + 4, "{}", 3);
			n = 7;
		} else if (n < 0) {
			n = 4;
		}
	}
	srv->peer = req.caps;
	srv->negotiated = true;
	slog(srv, VFK_LOG_INFO,
	     "negotiated vfio-user %u.%u (client max_msg_fds %u, max_data_xfer %u)",
	     rep.major, rep.minor, c->max_msg_fds, c->max_data_xfer_size);
	if (srv->dev->ops->attach)
		srv->dev->ops->attach(srv->dev);
	return n;
}

static int h_dma_map(struct vfk_server *srv, struct vfk_msg *m)
{
	struct vfk_dma_map_wire w;
	int fd = -1, rc;

	if (m->nfds > 1)
		return -EINVAL;
	rc = vfk_decode_dma_map(m->payload, m->len, m->nfds == 1, &w);
	if (rc)
		return rc;
	if (!(w.flags & (VFK_DMA_READ | VFK_DMA_WRITE)))
		return -EINVAL;
	if (m->nfds == 1)
		fd = m->fds[0];
	rc = vfk_dma_add(srv->dev, w.addr, w.size, w.flags, fd, w.offset);
	slog(srv, VFK_LOG_DEBUG, "DMA_MAP [%#llx, +%#llx) %s%s fd %s: %d",
	     (unsigned long long)w.addr, (unsigned long long)w.size,
	     (w.flags & VFK_DMA_READ) ? "r" : "", (w.flags & VFK_DMA_WRITE) ? "w" : "",
	     fd >= 0 ? "yes" : "no", rc);
	return rc < 0 ? rc : 0;
}

static int h_dma_unmap(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_dma_unmap_wire w;
	int rc = vfk_decode_dma_unmap(m->payload, m->len, &w);

	if (rc)
		return rc;
	if (w.flags & VFK_DMA_UNMAP_ALL)
		vfk_dma_remove_all(srv->dev);
	else if ((rc = vfk_dma_remove(srv->dev, w.addr, w.size)))
		return rc;
	/* The reply echoes the request's entry. */
	w.argsz = sizeof(w);
	memcpy(srv->tx, &w, sizeof(w));
	return sizeof(w);
}

static int h_device_info(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_device_info_wire w;
	int rc = vfk_decode_device_info_req(m->payload, m->len, &w);

	if (rc)
		return rc;
	w.argsz = sizeof(w);
	w.flags = VFK_DEVICE_FLAGS_PCI | VFK_DEVICE_FLAGS_RESET;
	w.num_regions = vfk_num_regions(srv->dev);
	w.num_irqs = VFK_PCI_NUM_IRQS;
	memcpy(srv->tx, &w, sizeof(w));
	return sizeof(w);
}

static int h_region_info(struct vfk_server *srv, const struct vfk_msg *m,
			 int *fd)
{
	struct vfk_region_info_wire w;
	int rc = vfk_decode_region_info_req(m->payload, m->len, &w);

	if (rc)
		return rc;
	rc = vfk_dev_region_info(srv->dev, w.index, w.argsz, srv->tx, srv->tx_cap, fd);
	if (*fd >= 0 && srv->peer.max_msg_fds == 0)
		*fd = -1; /* the client takes no fds: it uses messages */
	return rc;
}

static int h_io_fds(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_io_fds_wire w;
	int rc = vfk_decode_io_fds_req(m->payload, m->len, &w);

	if (rc)
		return rc;
	if (w.index >= vfk_num_regions(srv->dev))
		return -EINVAL;
	/* No region offers ioeventfds yet: an empty list. */
	w.argsz = sizeof(w);
	w.flags = 0;
	w.count = 0;
	memcpy(srv->tx, &w, sizeof(w));
	return sizeof(w);
}

static int h_irq_info(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_irq_info_wire w;
	int rc = vfk_decode_irq_info_req(m->payload, m->len, &w);

	if (rc)
		return rc;
	if (w.index >= VFK_PCI_NUM_IRQS)
		return -EINVAL;
	if (w.index == VFK_PCI_ERR && !srv->dev->pcie_off)
		return -EINVAL; /* as vfio-pci: ERR exists on PCI Express only */
	vfk_irq_info(srv->dev, w.index, &w.flags, &w.count);
	w.argsz = sizeof(w);
	memcpy(srv->tx, &w, sizeof(w));
	return sizeof(w);
}

static int h_set_irqs(struct vfk_server *srv, struct vfk_msg *m)
{
	struct vfk_irq_set s;
	int rc = vfk_decode_irq_set(m->payload, m->len, m->nfds, &s);

	if (rc)
		return rc;
	rc = vfk_irq_set(srv->dev, &s, m->fds, m->nfds);
	if (rc)
		return rc;
	m->nfds = 0; /* the device owns them now */
	sync_unmask_watch(srv);
	return 0;
}

static int h_region_read(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_rw rw;
	struct vfk_region_rw_wire w;
	int rc = vfk_decode_region_read_req(m->payload, m->len,
					    srv->opts.max_data_xfer, &rw);

	if (rc)
		return rc;
	rc = vfk_dev_region_access(srv->dev, false, rw.region, rw.offset,
			       srv->tx + sizeof(w), rw.count);
	if (rc)
		return rc;
	w.offset = rw.offset;
	w.region = rw.region;
	w.count = rw.count;
	memcpy(srv->tx, &w, sizeof(w));
	return (int)(sizeof(w) + rw.count);
}

static int h_region_write(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_rw rw;
	struct vfk_region_rw_wire w;
	int rc = vfk_decode_region_write_req(m->payload, m->len,
					     srv->opts.max_data_xfer, &rw);

	if (rc)
		return rc;
	rc = vfk_dev_region_access(srv->dev, true, rw.region, rw.offset,
			       (void *)rw.data, rw.count);
	if (rc)
		return rc;
	w.offset = rw.offset;
	w.region = rw.region;
	w.count = rw.count;
	memcpy(srv->tx, &w, sizeof(w));
	return sizeof(w);
}

static int h_write_multi(struct vfk_server *srv, const struct vfk_msg *m)
{
	const uint8_t *entries;
	uint64_t n, i;
	int rc = vfk_decode_write_multi(m->payload, m->len, &n, &entries);

	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		struct vfk_write_one_wire one;

		vfk_write_multi_entry(entries, i, &one);
		rc = vfk_dev_region_access(srv->dev, true, one.region, one.offset,
				       one.data, one.count);
		if (rc)
			return rc;
	}
	memcpy(srv->tx, &n, 8);
	return 8;
}

static int h_reset(struct vfk_server *srv, const struct vfk_msg *m)
{
	int rc;

	if (m->len)
		return -EINVAL;
	srv->dev->in_region_cb = true; /* the model must not DMA by message here */
	rc = vfk_dev_do_reset(srv->dev, VFK_RESET_CLIENT);
	srv->dev->in_region_cb = false;
	return rc;
}

static int h_feature(struct vfk_server *srv, const struct vfk_msg *m)
{
	struct vfk_feature_wire w;
	const uint8_t *data;
	size_t len;
	int rc = vfk_decode_feature(m->payload, m->len, &w, &data, &len);

	(void)srv;
	if (rc)
		return rc;
	/* No device feature (migration, dirty logging) is implemented yet.
	 * ENOTTY is vfio-pci's answer for an unsupported feature, and what
	 * QEMU's migration code takes for "not supported". */
	return -ENOTTY;
}

/* Handle one command from the client and answer it. */
static void handle_command(struct vfk_server *srv, struct vfk_msg *m)
{
	const struct vfk_hdr *h = &m->hdr;
	bool no_reply = h->flags & VFK_F_NO_REPLY;
	int fd = -1, n;

	srv->stats.messages++;
	if (!srv->negotiated && h->cmd != VFK_CMD_VERSION) {
		n = -EINVAL; /* VERSION must come first */
		goto out;
	}
	if (m->nfds && h->cmd != VFK_CMD_DMA_MAP && h->cmd != VFK_CMD_DEVICE_SET_IRQS &&
	    strcmp(vfk_cmd_name(h->cmd), "UNKNOWN")) {
		n = -EINVAL; /* fds where none belong: refused, not acted on */
		goto out;
	}
	switch (h->cmd) {
	case VFK_CMD_VERSION:
		n = h_version(srv, m);
		break;
	case VFK_CMD_DMA_MAP:
		n = h_dma_map(srv, m);
		break;
	case VFK_CMD_DMA_UNMAP:
		n = h_dma_unmap(srv, m);
		break;
	case VFK_CMD_DEVICE_GET_INFO:
		n = h_device_info(srv, m);
		break;
	case VFK_CMD_DEVICE_GET_REGION_INFO:
		n = h_region_info(srv, m, &fd);
		break;
	case VFK_CMD_DEVICE_GET_REGION_IO_FDS:
		n = h_io_fds(srv, m);
		break;
	case VFK_CMD_DEVICE_GET_IRQ_INFO:
		n = h_irq_info(srv, m);
		break;
	case VFK_CMD_DEVICE_SET_IRQS:
		n = h_set_irqs(srv, m);
		break;
	case VFK_CMD_REGION_READ:
		n = h_region_read(srv, m);
		break;
	case VFK_CMD_REGION_WRITE:
		n = h_region_write(srv, m);
		break;
	case VFK_CMD_REGION_WRITE_MULTI:
		n = h_write_multi(srv, m);
		break;
	case VFK_CMD_DEVICE_RESET:
		n = h_reset(srv, m);
		break;
	case VFK_CMD_DEVICE_FEATURE:
		n = h_feature(srv, m);
		break;
	case VFK_CMD_DMA_READ:
	case VFK_CMD_DMA_WRITE:
		n = -EINVAL; /* server-to-client only */
		break;
	case VFK_CMD_MIG_DATA_READ:
	case VFK_CMD_MIG_DATA_WRITE:
		n = -ENOTSUP; /* no migration support */
		break;
	default:
		n = -ENOSYS;
		break;
	}
out:
	if (n < 0)
		slog(srv, no_reply ? VFK_LOG_WARN : VFK_LOG_DEBUG,
		     "%s (id %u) failed: %s%s", vfk_cmd_name(h->cmd), h->id,
		     vfk_strerror(n), no_reply ? " (posted: no reply)" : "");
	/* Posted commands get no reply, not even an error (a reply would be
	 * "unexpected" to QEMU and desynchronise it). */
	if (!no_reply)
		send_reply(srv, h, n < 0 ? n : 0, srv->tx, n < 0 ? 0 : (size_t)n,
			   &fd, fd >= 0 ? 1 : 0);
	if (n >= 0 && h->cmd == VFK_CMD_VERSION && !no_reply)
		return;
	if (n == -ENOTSUP && h->cmd == VFK_CMD_VERSION)
		drop_client(srv, "unsupported protocol major version");
}

/* Handle any message; returns false if the client was dropped. */
static bool handle_msg(struct vfk_server *srv, struct vfk_msg *m)
{
	if (m->hdr_err || m->oversized) {
		int err = m->oversized ? -E2BIG : m->hdr_err;

		srv->stats.errors++;
		slog(srv, VFK_LOG_WARN, "bad message (cmd %u, size %u): %s",
		     m->hdr.cmd, m->hdr.size, vfk_strerror(err));
		/* Answer what claims to be a command wanting a reply; the
		 * stream stays framed since the size was sane.  A type that
		 * is neither command nor reply leaves nothing to answer: the
		 * client is not speaking vfio-user, drop it. */
		if ((m->hdr.flags & VFK_F_TYPE_MASK) == VFK_F_TYPE_COMMAND &&
		    !(m->hdr.flags & VFK_F_NO_REPLY))
			send_reply(srv, &m->hdr, err, NULL, 0, NULL, 0);
		else if ((m->hdr.flags & VFK_F_TYPE_MASK) > VFK_F_TYPE_REPLY) {
			vfk_msg_close_fds(m);
			srv->stats.dropped++;
			drop_client(srv, "unknown message type");
			return false;
		}
	} else if (vfk_hdr_is_reply(&m->hdr)) {
		/* Not waiting for anything: a late answer to a timed-out DMA
		 * request, or a confused client. */
		slog(srv, VFK_LOG_WARN, "unexpected reply (id %u, cmd %u)",
		     m->hdr.id, m->hdr.cmd);
	} else {
		handle_command(srv, m);
	}
	vfk_msg_close_fds(m);
	return srv->ch != NULL;
}

/* Read and handle what the client sent. */
static void conn_input(struct vfk_server *srv)
{
	while (srv->ch && !srv->ch->ops->tx_pending(srv->ch)) {
		struct vfk_msg m;
		int rc = srv->ch->ops->recv(srv->ch, &m);

		if (rc == 0)
			return;
		if (rc < 0) {
			if (rc != -EPIPE)
				srv->stats.dropped++;
			drop_client(srv, rc == -EPIPE ? "closed" : vfk_strerror(rc));
			return;
		}
		if (!handle_msg(srv, &m))
			return;
		/* Another recvmsg() now would usually find nothing: leave it
		 * to the level-triggered epoll, unless a message is buffered. */
		if (!srv->ch->ops->has_buffered(srv->ch))
			return;
	}
}

static void conn_output(struct vfk_server *srv)
{
	int rc = srv->ch->ops->flush(srv->ch, 0);

	if (rc == -EAGAIN)
		return;
	if (rc) {
		drop_client(srv, "send failed");
		return;
	}
	conn_set_out(srv, false);
	if (srv->ch->ops->has_buffered(srv->ch))
		conn_input(srv);
}

/* ---- server-to-client DMA ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait up to `ms` for the client's next message during a DMA wait, and
 * meanwhile for what must not wait behind it: a stop fails the DMA at once
 * (-ESHUTDOWN; unless it only asked the client to release the device with
 * REQ, see stop_requested), and a new client is turned away with EBUSY at
 * once.  0 when the client sent something, or -ETIMEDOUT.
 */
static int dma_wait(struct vfk_server *srv, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		struct pollfd p[4] = {
			{ srv->ch->ops->fd(srv->ch), POLLIN, 0 },
			{ srv->stop_fd, POLLIN, 0 },
			{ srv->listen_fd, POLLIN, 0 },
			{ srv->refuse_fd, POLLIN, 0 },
		};
		int64_t left = deadline - now_ms();
		uint64_t v;
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(p, 4, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		if ((p[1].revents & POLLIN) && read(srv->stop_fd, &v, sizeof(v)) == sizeof(v)) {
			stop_requested(srv);
			if (srv->stopping) {
				slog(srv, VFK_LOG_INFO, "stop: a DMA wait is abandoned");
				return -ESHUTDOWN;
			}
		}
		if (p[2].revents & POLLIN)
			refuse_new(srv);
		if (p[3].revents & (POLLIN | POLLHUP))
			refuse_answer(srv);
		if (p[0].revents)
			return 0;
	}
}

/* Send one DMA_READ/DMA_WRITE of at most the client's max_data_xfer and
 * wait for its reply, serving the client's commands meanwhile. */
static int dma_msg_one(struct vfk_server *srv, bool write, uint64_t iova,
		       uint8_t *buf, uint32_t len)
{
	struct vfk_hdr h = { .id = srv->next_id++, .cmd = write ? VFK_CMD_DMA_WRITE
							       : VFK_CMD_DMA_READ };
	uint8_t head[16];
	uint64_t c64 = len;
	struct iovec iov[2];
	int iovcnt = 1, rc;
	int64_t deadline;

	/* Spec layout: address, 64-bit count, data.  QEMU 11.1 uses it too
	 * (observed on the wire), though its older headers declared a
	 * 32-bit count. */
	memcpy(head, &iova, 8);
	memcpy(head + 8, &c64, 8);
	iov[0] = (struct iovec){ head, 16 };
	if (write)
		iov[iovcnt++] = (struct iovec){ buf, len };
	rc = srv->ch->ops->send(srv->ch, &h, iov, iovcnt, NULL, 0);
	if (rc)
		goto lost;
	srv->stats.dma_messages++;
	deadline = now_ms() + srv->opts.reply_timeout_ms;
	if (srv->ch->ops->tx_pending(srv->ch)) {
		rc = srv->ch->ops->flush(srv->ch, srv->opts.reply_timeout_ms);
		if (rc)
			goto lost;
	}
	for (;;) {
		struct vfk_msg m;
		int64_t left = deadline - now_ms();

		if (!srv->ch->ops->has_buffered(srv->ch)) {
			rc = left > 0 ? dma_wait(srv, (int)left) : -ETIMEDOUT;
			if (rc == -ETIMEDOUT)
				slog(srv, VFK_LOG_ERR, "%s reply timed out",
				     vfk_cmd_name(h.cmd));
			if (rc)
				return rc;
		}
		rc = srv->ch->ops->recv(srv->ch, &m);
		if (rc == 0)
			continue;
		if (rc < 0)
			goto lost;
		if (!m.hdr_err && !m.oversized && vfk_hdr_is_reply(&m.hdr) &&
		    m.hdr.id == h.id && m.hdr.cmd == h.cmd) {
			struct vfk_rw req = { .offset = iova, .count = len }, got;

			vfk_msg_close_fds(&m);
			if (m.hdr.flags & VFK_F_ERROR)
				return m.hdr.error ? -(int)m.hdr.error : -EIO;
			if (write)
				return vfk_decode_dma_write_reply(m.payload, m.len, &req) ?
					       -EPROTO : 0;
			rc = vfk_decode_dma_read_reply(m.payload, m.len, &req, &got);
			if (rc)
				return -EPROTO;
			memcpy(buf, got.data, len);
			return 0;
		}
		srv->nest++;
		handle_msg(srv, &m);
		srv->nest--;
		if (!srv->ch)
			return -ENOTCONN;
	}
lost:
	drop_client(srv, "lost during DMA message");
	return -ENOTCONN;
}

int vfk_server_dma_msg(struct vfk_server *srv, bool write, uint64_t iova,
		       void *buf, uint64_t len)
{
	uint8_t *b = buf;
	uint32_t chunk;

	if (!srv->ch || !srv->negotiated)
		return -ENOTCONN;
	chunk = srv->peer.max_data_xfer_size;
	if (chunk > srv->opts.max_data_xfer)
		chunk = srv->opts.max_data_xfer;
	while (len) {
		uint32_t n = len < chunk ? (uint32_t)len : chunk;
		int rc = dma_msg_one(srv, write, iova, b, n);

		if (rc)
			return rc;
		b += n;
		iova += n;
		len -= n;
	}
	return 0;
}

/* ---- public API ---- */

int vfk_server_create(struct vfk_dev *dev, const struct vfk_server_opts *opts,
		      struct vfk_server **out)
{
	struct vfk_server *srv;
	int rc;

	if (!dev || dev->srv)
		return -EINVAL;
	if (opts && opts->version < 1)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	/* Only what the caller's version has: a newer library must not read
	 * past an older caller's struct. */
	if (opts)
		memcpy(&srv->opts, opts, opts->version >= 2 ? sizeof(*opts)
				     : offsetof(struct vfk_server_opts, keep_state_on_disconnect));
	if (!srv->opts.stop_grace_ms)
		srv->opts.stop_grace_ms = 10000;
	if (!srv->opts.log_level)
		srv->opts.log_level = VFK_LOG_INFO;
	if (!srv->opts.max_data_xfer)
		srv->opts.max_data_xfer = VFK_DEFAULT_MAX_DATA_XFER;
	if (srv->opts.max_data_xfer > VFK_LIMIT_DATA_XFER)
		srv->opts.max_data_xfer = VFK_LIMIT_DATA_XFER;
	if (!srv->opts.max_msg_fds || srv->opts.max_msg_fds > VFK_CHANNEL_MAX_FDS)
		srv->opts.max_msg_fds = VFK_CHANNEL_MAX_FDS;
	if (!srv->opts.max_dma_maps)
		srv->opts.max_dma_maps = VFK_DEFAULT_MAX_DMA_MAPS;
	if (srv->opts.reply_timeout_ms <= 0)
		srv->opts.reply_timeout_ms = 5000;
	srv->dev = dev;
	srv->listen_fd = srv->stop_fd = srv->unmask_fd = srv->grace_fd = srv->refuse_fd = -1;
	srv->epfd = srv->epfd_other = -1;
	srv->src_listen.kind = SRC_LISTEN;
	srv->src_conn.kind = SRC_CONN;
	srv->src_stop.kind = SRC_STOP;
	srv->src_unmask.kind = SRC_UNMASK;
	srv->src_grace.kind = SRC_GRACE;
	srv->src_refuse.kind = SRC_REFUSE;
	srv->next_id = 0x8000;
	/* Replies: the largest is a REGION_READ of max_data_xfer bytes. */
	srv->tx_cap = 64 + srv->opts.max_data_xfer;
	srv->tx = malloc(srv->tx_cap);
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	srv->epfd_other = epoll_create1(EPOLL_CLOEXEC);
	srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	srv->grace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!srv->tx || srv->epfd < 0 || srv->epfd_other < 0 || srv->stop_fd < 0 ||
	    srv->grace_fd < 0) {
		rc = srv->tx ? -errno : -ENOMEM;
		goto fail;
	}
	rc = ep_add(srv, srv->stop_fd, EPOLLIN, &srv->src_stop);
	if (!rc)
		rc = ep_add(srv, srv->grace_fd, EPOLLIN, &srv->src_grace);
	if (rc)
		goto fail;
	dev->srv = srv; /* realize may log */
	rc = vfk_dev_realize(dev);
	if (rc) {
		dev->srv = NULL;
		goto fail;
	}
	dev->dma.max = srv->opts.max_dma_maps;
	/* Without io_uring (old kernel, seccomp, sysctl) run() uses epoll. */
	srv->uring = !getenv("VFK_NO_IO_URING") &&
		     io_uring_queue_init(8, &srv->ring, 0) == 0;
	*out = srv;
	return 0;
fail:
	if (srv->epfd >= 0)
		close(srv->epfd);
	if (srv->epfd_other >= 0)
		close(srv->epfd_other);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	if (srv->grace_fd >= 0)
		close(srv->grace_fd);
	free(srv->tx);
	free(srv);
	return rc;
}

void vfk_server_destroy(struct vfk_server *srv)
{
	if (!srv)
		return;
	drop_client(srv, "server destroyed");
	while (srv->watches) {
		struct watch *w = srv->watches;

		srv->watches = w->next;
		free(w);
	}
	if (srv->unmask_fd >= 0)
		close(srv->unmask_fd);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->listen_path) {
		unlink(srv->listen_path);
		free(srv->listen_path);
	}
	refuse_close(srv);
	close(srv->stop_fd);
	close(srv->grace_fd);
	close(srv->epfd);
	close(srv->epfd_other);
	if (srv->uring)
		io_uring_queue_exit(&srv->ring);
	srv->dev->srv = NULL;
	free(srv->tx);
	free(srv);
}

int vfk_server_listen(struct vfk_server *srv, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (srv->listen_fd >= 0 || srv->ch)
		return -EBUSY;
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			rc = -EEXIST;
			goto fail;
		}
		/* Replace a stale socket, never a live one. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			rc = -EADDRINUSE;
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	/* Bind under a temporary name and rename once listening, so the
	 * socket appears only when a connect() will succeed: a VMM started
	 * as soon as the path exists must not get ECONNREFUSED. */
	{
		struct sockaddr_un tmp = { .sun_family = AF_UNIX };
		int n = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", path,
				 (int)getpid());
		bool renamed = n > 0 && (size_t)n < sizeof(tmp.sun_path);

		if (renamed) {
			unlink(tmp.sun_path);
			if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 ||
			    listen(fd, 8) < 0 || rename(tmp.sun_path, path) < 0) {
				rc = -errno;
				unlink(tmp.sun_path);
				goto fail;
			}
		} else if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
			   listen(fd, 8) < 0) {
			rc = -errno;
			goto fail;
		}
	}
	srv->listen_path = strdup(path);
	rc = ep_add(srv, fd, EPOLLIN, &srv->src_listen);
	if (rc || !srv->listen_path) {
		unlink(path);
		free(srv->listen_path);
		srv->listen_path = NULL;
		rc = rc ? rc : -ENOMEM;
		goto fail;
	}
	srv->listen_fd = fd;
	return 0;
fail:
	close(fd);
	return rc;
}

int vfk_server_adopt_fd(struct vfk_server *srv, int fd)
{
	int acc = 0, type = 0, rc;
	socklen_t l = sizeof(acc);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (srv->listen_fd >= 0 || srv->ch)
		return -EBUSY;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
		return errno == ENOTSOCK ? -ENOTSOCK : -errno;
	if (type != SOCK_STREAM)
		return -EPROTOTYPE;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family != AF_UNIX)
		return -EAFNOSUPPORT;
	l = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	if (acc) {
		rc = ep_add(srv, fd, EPOLLIN, &srv->src_listen);
		if (rc)
			return rc;
		srv->listen_fd = fd;
		return 0;
	}
	rc = attach_client(srv, fd);
	if (rc)
		return rc;
	srv->conn_adopted = true;
	return 0;
}

int vfk_server_fd(struct vfk_server *srv)
{
	return srv->epfd;
}

static void refuse_close(struct vfk_server *srv)
{
	if (srv->refuse_fd < 0)
		return;
	ep_del(srv, srv->refuse_fd);
	close(srv->refuse_fd);
	srv->refuse_fd = -1;
}

/* The refused client's first request has (part of) its header here:
 * answer it with EBUSY, whatever it is, and close. */
static void refuse_answer(struct vfk_server *srv)
{
	struct vfk_hdr h;
	ssize_t n = recv(srv->refuse_fd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);

	if (n > 0 && (size_t)n < sizeof(h))
		return; /* the rest of the header is on its way */
	if (n == (ssize_t)sizeof(h)) {
		struct vfk_hdr r = { .id = h.id, .cmd = h.cmd, .size = sizeof(r),
				     .flags = VFK_F_TYPE_REPLY | VFK_F_ERROR, .error = EBUSY };

		n = send(srv->refuse_fd, &r, sizeof(r), MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)n;
	}
	refuse_close(srv);
}

/*
 * One client at a time (the spec gives each client its own socket).  A
 * second one gets an answer, not a bare reset: its first request is
 * answered EBUSY, then it is closed.  One such client waits at a time; a
 * newer one takes over the slot of one that never sent anything.
 */
static void refuse_fd(struct vfk_server *srv, int fd)
{
	slog(srv, VFK_LOG_WARN, "refused a second client: the device is in use");
	refuse_close(srv);
	if (ep_add(srv, fd, EPOLLIN, &srv->src_refuse)) {
		close(fd);
		return;
	}
	srv->refuse_fd = fd;
}

/* A connection that arrives while a client is attached (a DMA wait). */
static void refuse_new(struct vfk_server *srv)
{
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd >= 0)
		refuse_fd(srv, fd);
}

static void accept_client(struct vfk_server *srv)
{
	int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	/* The previous client may have closed a moment before this one
	 * connected; notice that first rather than refuse a reconnect. */
	if (srv->ch)
		conn_input(srv);
	if (srv->ch) {
		refuse_fd(srv, fd);
		return;
	}
	if (attach_client(srv, fd)) {
		slog(srv, VFK_LOG_ERR, "cannot attach client");
		close(fd);
	}
}

static void reap_watches(struct vfk_server *srv)
{
	struct watch **pp = &srv->watches;

	while (*pp) {
		if ((*pp)->dead) {
			struct watch *w = *pp;

			*pp = w->next;
			free(w);
		} else {
			pp = &(*pp)->next;
		}
	}
}

/*
 * A stop (vfk_server_stop(), SIGTERM in `vfiokit serve`).  With a client
 * that holds the device and bound a REQ eventfd, the first stop asks it
 * to release the device, as vfio-pci's device request does on unbind, and
 * the server goes on serving until the client leaves or stop_grace_ms
 * pass; a second stop, or a client without REQ, stops at once.
 */
static void stop_requested(struct vfk_server *srv)
{
	struct itimerspec its = { 0 };

	if (srv->req_sent || !srv->ch || !srv->negotiated || srv->opts.stop_grace_ms < 0 ||
	    vfk_irq_trigger(srv->dev, VFK_PCI_REQ, 0) != 0) {
		srv->stopping = true;
		return;
	}
	srv->req_sent = true;
	its.it_value.tv_sec = srv->opts.stop_grace_ms / 1000;
	its.it_value.tv_nsec = (long)(srv->opts.stop_grace_ms % 1000) * 1000000;
	timerfd_settime(srv->grace_fd, 0, &its, NULL);
	slog(srv, VFK_LOG_INFO, "stop: asked the client to release the device (REQ); "
	     "stopping when it does, or in %d ms", srv->opts.stop_grace_ms);
}

static int dispatch_wait(struct vfk_server *srv, int timeout_ms)
{
	struct epoll_event ev[16];
	int n;

	srv->dev->srv_thread = pthread_self();
	if (srv->stopping || srv->done)
		return VFK_SERVER_DONE;
	vfk_dma_note_faults(srv->dev);
	do {
		n = epoll_wait(srv->epfd, ev, 16, timeout_ms);
	} while (n < 0 && errno == EINTR && timeout_ms == 0);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	srv->dispatching++;
	for (int i = 0; i < n; i++) {
		struct ep_src *src = ev[i].data.ptr;
		uint64_t v;

		switch (src->kind) {
		case SRC_STOP:
			if (read(srv->stop_fd, &v, sizeof(v)) == sizeof(v))
				stop_requested(srv);
			break;
		case SRC_REFUSE:
			refuse_answer(srv);
			break;
		case SRC_GRACE:
			if (read(srv->grace_fd, &v, sizeof(v)) == sizeof(v) && srv->req_sent) {
				slog(srv, VFK_LOG_WARN, "the client did not release the device "
				     "in %d ms: stopping", srv->opts.stop_grace_ms);
				srv->stopping = true;
			}
			break;
		case SRC_LISTEN:
			accept_client(srv);
			break;
		case SRC_CONN:
			if (!srv->ch)
				break;
			if (ev[i].events & EPOLLOUT)
				conn_output(srv);
			if (srv->ch && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				conn_input(srv);
			break;
		case SRC_UNMASK: {
			/* The client's eventfd may be blocking: never read
			 * one that is not ready. */
			struct pollfd pu = { srv->unmask_fd, POLLIN, 0 };

			if (srv->unmask_fd >= 0 && poll(&pu, 1, 0) == 1 &&
			    read(srv->unmask_fd, &v, sizeof(v)) == sizeof(v))
				vfk_intx_unmask(srv->dev);
			break;
		}
		case SRC_WATCH: {
			struct watch *w = (struct watch *)src;

			if (!w->dead)
				w->fn(srv, w->fd, ev[i].events, w->arg);
			break;
		}
		}
	}
	/* A watch callback that waited for a DMA reply may have read client
	 * commands along with it; epoll will not report those bytes again. */
	if (srv->ch && srv->ch->ops->has_buffered(srv->ch))
		conn_input(srv);
	srv->dispatching--;
	if (!srv->dispatching)
		reap_watches(srv);
	return srv->stopping || srv->done ? VFK_SERVER_DONE : 0;
}

int vfk_server_dispatch(struct vfk_server *srv)
{
	return dispatch_wait(srv, 0);
}

/* ---- the io_uring loop of vfk_server_run() ----
 *
 * A request then costs two system calls: one io_uring_enter() that both
 * waits and receives it into the channel's buffer, and the sendmsg() of
 * the reply.  (With epoll it is epoll_wait + recvmsg + sendmsg.)  The ring
 * also waits on the second epoll set, for everything but the connection.
 * Before anything else may touch the channel (watch callbacks, accept,
 * DMA messages), the armed receive is cancelled and its bytes, if any,
 * handed to the channel.
 */

static void arm_recv(struct vfk_server *srv)
{
	struct io_uring_sqe *sqe;

	if (!srv->ch || srv->recv_armed || srv->ch->ops->version < 3 ||
	    srv->ch->ops->tx_pending(srv->ch) || srv->ch->ops->has_buffered(srv->ch))
		return;
	if (srv->ch->ops->recv_prepare(srv->ch, &srv->rx_mh))
		return;
	sqe = io_uring_get_sqe(&srv->ring);
	if (!sqe)
		return;
	io_uring_prep_recvmsg(sqe, srv->ch->ops->fd(srv->ch), &srv->rx_mh,
			      MSG_CMSG_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD_RECV);
	srv->recv_armed = true;
}

static void arm_poll(struct vfk_server *srv)
{
	struct io_uring_sqe *sqe;

	if (srv->poll_armed)
		return;
	sqe = io_uring_get_sqe(&srv->ring);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, srv->epfd_other, POLLIN);
	io_uring_sqe_set_data64(sqe, UD_POLL);
	srv->poll_armed = true;
}

/* Handle one completion; true if the other sources need a dispatch. */
static bool on_cqe(struct vfk_server *srv, uint64_t ud, int res)
{
	switch (ud) {
	case UD_RECV:
		srv->recv_armed = false;
		if (srv->ch) {
			/* Committed even when dropping: fds that came with
			 * the bytes then belong to the channel, which closes
			 * them. */
			int rc = srv->ch->ops->recv_commit(srv->ch, &srv->rx_mh, res);

			if (srv->dropping)
				break;
			if (rc) {
				srv->stats.dropped++;
				drop_client(srv, vfk_strerror(rc));
			} else if (res != -ECANCELED) {
				conn_input(srv);
			}
		}
		break;
	case UD_POLL:
		srv->poll_armed = false;
		return true;
	case UD_POLLOUT:
		srv->out_armed = false;
		if (srv->ch && !srv->dropping)
			conn_output(srv);
		break;
	}
	return false;
}

/*
 * Take one completion off the ring, then handle it: consumed first, so
 * that a handler that itself waits on the ring (drop_client()) cannot
 * meet it again.  0, or the liburing error (-EAGAIN: none ready).
 */
static int reap_one(struct vfk_server *srv, bool wait, bool *other)
{
	struct io_uring_cqe *cqe;
	uint64_t ud;
	int res, rc;

	rc = wait ? io_uring_wait_cqe(&srv->ring, &cqe)
		  : io_uring_peek_cqe(&srv->ring, &cqe);
	if (rc)
		return rc;
	ud = io_uring_cqe_get_data64(cqe);
	res = cqe->res;
	io_uring_cqe_seen(&srv->ring, cqe);
	*other |= on_cqe(srv, ud, res);
	return 0;
}

/* Cancel the request tagged `ud` if `*armed`, and handle completions until
 * it is done: the kernel must no longer touch what it was given. */
static void ring_cancel(struct vfk_server *srv, uint64_t ud, bool *armed,
			bool *other)
{
	struct io_uring_sqe *sqe;

	if (!*armed)
		return;
	sqe = io_uring_get_sqe(&srv->ring);
	if (sqe) {
		io_uring_prep_cancel64(sqe, ud, 0);
		io_uring_sqe_set_data64(sqe, UD_CANCEL);
	}
	io_uring_submit(&srv->ring);
	while (*armed) {
		int rc = reap_one(srv, true, other);

		if (rc && rc != -EINTR)
			break;
	}
}

static void disarm_recv(struct vfk_server *srv, bool *other)
{
	ring_cancel(srv, UD_RECV, &srv->recv_armed, other);
}

static int run_uring(struct vfk_server *srv)
{
	int rc = 0;

	srv->in_uring_loop = true;
	srv->dev->srv_thread = pthread_self();
	/* The connection is read by the ring now; the epoll path may have
	 * left whole messages buffered. */
	if (srv->ch && srv->ch->ops->has_buffered(srv->ch))
		conn_input(srv);
	while (!srv->stopping && !srv->done) {
		bool other = false;

		vfk_dma_note_faults(srv->dev);
		arm_poll(srv);
		arm_recv(srv);
		if (srv->ch && srv->ch->ops->tx_pending(srv->ch))
			conn_set_out(srv, true);
		rc = io_uring_submit_and_wait(&srv->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN)
			break;
		rc = 0;
		while (reap_one(srv, false, &other) == 0)
			;
		if (other) {
			disarm_recv(srv, &other);
			rc = dispatch_wait(srv, 0);
			if (rc < 0)
				break;
			rc = 0;
		}
	}
	{
		bool ignored = false;

		disarm_recv(srv, &ignored);
	}
	srv->in_uring_loop = false;
	return rc;
}

int vfk_server_run(struct vfk_server *srv)
{
	if (srv->uring)
		return run_uring(srv);
	for (;;) {
		int rc = dispatch_wait(srv, -1);

		if (rc == VFK_SERVER_DONE)
			return 0;
		if (rc < 0)
			return rc;
	}
}

void vfk_server_stop(struct vfk_server *srv)
{
	uint64_t one = 1;
	ssize_t n = write(srv->stop_fd, &one, sizeof(one));

	(void)n;
}

int vfk_server_watch(struct vfk_server *srv, int fd, uint32_t events,
		     vfk_watch_fn fn, void *arg)
{
	struct watch *w;
	int rc;

	if (fd < 0 || !fn || !(events & (EPOLLIN | EPOLLOUT)))
		return -EINVAL;
	for (w = srv->watches; w; w = w->next)
		if (w->fd == fd && !w->dead)
			return -EEXIST;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->src.kind = SRC_WATCH;
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	rc = ep_add(srv, fd, events & (EPOLLIN | EPOLLOUT), &w->src);
	if (rc) {
		free(w);
		return rc;
	}
	w->next = srv->watches;
	srv->watches = w;
	return 0;
}

int vfk_server_unwatch(struct vfk_server *srv, int fd)
{
	for (struct watch *w = srv->watches; w; w = w->next) {
		if (w->fd != fd || w->dead)
			continue;
		ep_del(srv, fd);
		w->dead = true;
		if (!srv->dispatching)
			reap_watches(srv);
		return 0;
	}
	return -ENOENT;
}

bool vfk_server_connected(struct vfk_server *srv)
{
	return srv->ch && srv->negotiated;
}

void vfk_server_get_stats(struct vfk_server *srv, struct vfk_server_stats *out)
{
	*out = srv->stats;
}
