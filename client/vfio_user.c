/* SPDX-License-Identifier: MIT */
/*
 * The vfio-user transport of the client.
 *
 * Every reply is checked before use: its id and command must match the
 * request, its size must fit what that command can answer, it may carry
 * fds only where the command allows one, and capability chains are walked
 * with bounds and loop checks.  A stream that cannot be framed any more
 * marks the connection dead, and every later call fails with -ENOTCONN.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../channel/channel.h"
#include "internal.h"

/* A window of our memory the server may reach by DMA messages. */
struct cwin {
	uint64_t iova, last;
	uint8_t *vaddr;
	uint32_t prot;
};

struct vu {
	struct vfk_channel *ch;
	bool dead;
	uint16_t next_id;
	struct vfk_session_info sess;
	struct cwin *wins;
	size_t nwins, capwins;
	uint8_t *reply;    /* copy of the last reply payload */
	size_t reply_cap;
	/* Our answer to a server's DMA_READ: storage of its own, since the
	 * request is served while a reply is waited for, or after it was
	 * copied to `reply` and before the caller decoded it. */
	uint8_t *served;
};

static struct vu *vu(struct vfk_device *d)
{
	return d->tp;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- serving the server's DMA requests ---- */

static struct cwin *find_win(struct vu *v, uint64_t addr)
{
	size_t lo = 0, hi = v->nwins;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->wins[mid].iova <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || v->wins[lo - 1].last < addr)
		return NULL;
	return &v->wins[lo - 1];
}

/* Copy between `buf` and our windows; the range may span adjacent ones. */
static int win_copy(struct vu *v, bool to_mem, uint64_t addr, uint8_t *buf,
		    uint64_t len, uint32_t need)
{
	uint64_t cur = addr, end = addr + len;

	/* Check the whole range first, so a refused request changes nothing. */
	while (cur != end) {
		struct cwin *w = find_win(v, cur);
		uint64_t n;

		if (!w || !w->vaddr)
			return -EFAULT;
		if ((w->prot & need) != need)
			return -EACCES;
		n = w->last - cur + 1;
		if (n == 0 || n > end - cur)
			n = end - cur;
		cur += n;
	}
	for (cur = addr; cur != end;) {
		struct cwin *w = find_win(v, cur);
		uint64_t n = w->last - cur + 1;

		if (n == 0 || n > end - cur)
			n = end - cur;
		if (to_mem)
			memcpy(w->vaddr + (cur - w->iova), buf, n);
		else
			memcpy(buf, w->vaddr + (cur - w->iova), n);
		buf += n;
		cur += n;
	}
	return 0;
}

static void send_or_die(struct vfk_device *d, struct vfk_hdr *h,
			const struct iovec *iov, int iovcnt)
{
	struct vu *v = vu(d);

	if (v->ch->ops->send(v->ch, h, iov, iovcnt, NULL, 0) ||
	    v->ch->ops->flush(v->ch, d->opts.timeout_ms))
		v->dead = true;
}

/* Answer a DMA_READ or DMA_WRITE from the server. */
static void serve_request(struct vfk_device *d, struct vfk_msg *m)
{
	struct vu *v = vu(d);
	struct vfk_hdr h = { .id = m->hdr.id, .cmd = m->hdr.cmd,
			     .flags = VFK_F_TYPE_REPLY };
	struct vfk_rw rw;
	int rc;

	if (m->nfds) {
		rc = -EINVAL; /* no server request carries fds */
	} else if (m->hdr.cmd == VFK_CMD_DMA_READ) {
		rc = vfk_decode_dma_read_req(m->payload, m->len, d->opts.max_data_xfer, &rw);
		if (!rc) {
			/* The reply is the request header plus the data; the
			 * reply buffer is sized for max_data_xfer. */
			rc = win_copy(v, false, rw.offset, v->served + 16, rw.count,
				      VFK_DMA_READ);
			if (!rc) {
				struct iovec iov = { v->served, 16 + (size_t)rw.count };
				uint64_t c = rw.count;

				memcpy(v->served, &rw.offset, 8);
				memcpy(v->served + 8, &c, 8);
				d->stats.dma_served++;
				if (!(m->hdr.flags & VFK_F_NO_REPLY))
					send_or_die(d, &h, &iov, 1);
				return;
			}
		}
	} else if (m->hdr.cmd == VFK_CMD_DMA_WRITE) {
		rc = vfk_decode_dma_write_req(m->payload, m->len, d->opts.max_data_xfer, &rw);
		if (!rc)
			rc = win_copy(v, true, rw.offset, (uint8_t *)rw.data, rw.count,
				      VFK_DMA_WRITE);
		if (!rc) {
			/* The reply echoes address and count (spec layout). */
			uint8_t echo[16];
			struct iovec iov = { echo, 16 };
			uint64_t c = rw.count;

			memcpy(echo, &rw.offset, 8);
			memcpy(echo + 8, &c, 8);
			d->stats.dma_served++;
			if (!(m->hdr.flags & VFK_F_NO_REPLY))
				send_or_die(d, &h, &iov, 1);
			return;
		}
	} else {
		rc = -ENOSYS;
	}
	d->stats.dma_refused++;
	vfk_client_log(d, VFK_LOG_WARN, "refused server request %s: %s",
		       vfk_cmd_name(m->hdr.cmd), vfk_strerror(rc));
	if (!(m->hdr.flags & VFK_F_NO_REPLY)) {
		h.flags |= VFK_F_ERROR;
		h.error = (uint32_t)-rc;
		send_or_die(d, &h, NULL, 0);
	}
}

/* A message that is not the reply being waited for. */
static void handle_other(struct vfk_device *d, struct vfk_msg *m)
{
	if (m->hdr_err || m->oversized) {
		vfk_client_log(d, VFK_LOG_WARN, "bad message from server: %s",
			       vfk_strerror(m->oversized ? -E2BIG : m->hdr_err));
		if (!m->hdr_err && !vfk_hdr_is_reply(&m->hdr) &&
		    !(m->hdr.flags & VFK_F_NO_REPLY)) {
			struct vfk_hdr h = { .id = m->hdr.id, .cmd = m->hdr.cmd,
					     .flags = VFK_F_TYPE_REPLY | VFK_F_ERROR,
					     .error = E2BIG };

			send_or_die(d, &h, NULL, 0);
		}
	} else if (vfk_hdr_is_reply(&m->hdr)) {
		vfk_client_log(d, VFK_LOG_WARN, "unexpected reply id %u (%s)",
			       m->hdr.id, vfk_cmd_name(m->hdr.cmd));
	} else {
		serve_request(d, m);
	}
	vfk_msg_close_fds(m);
}

/* Answer every whole message already in the channel's buffer. */
static void drain_buffered(struct vfk_device *d)
{
	struct vu *v = vu(d);

	while (!v->dead && v->ch->ops->has_buffered(v->ch)) {
		struct vfk_msg m;
		int rc = v->ch->ops->recv(v->ch, &m);

		if (rc <= 0) {
			if (rc < 0)
				v->dead = true;
			return;
		}
		handle_other(d, &m);
	}
}

/* ---- requests ---- */

/* How a request wants its reply. */
struct expect {
	uint8_t *buf;    /* payload copied here */
	size_t max;      /* largest payload allowed */
	size_t len;      /* payload length received */
	int *fd;         /* receives at most one fd, or NULL: none allowed */
};

static int request(struct vfk_device *d, uint16_t cmd, const struct iovec *iov,
		   int iovcnt, const int *fds, unsigned nfds, bool no_reply,
		   struct expect *ex)
{
	struct vu *v = vu(d);
	struct vfk_hdr h = { .id = v->next_id++, .cmd = cmd,
			     .flags = VFK_F_TYPE_COMMAND | (no_reply ? VFK_F_NO_REPLY : 0) };
	int64_t deadline = now_ms() + d->opts.timeout_ms;
	int rc;

	if (v->dead)
		return -ENOTCONN;
	rc = v->ch->ops->send(v->ch, &h, iov, iovcnt, fds, nfds);
	if (!rc && v->ch->ops->tx_pending(v->ch))
		rc = v->ch->ops->flush(v->ch, d->opts.timeout_ms);
	if (rc) {
		v->dead = true;
		return rc == -EAGAIN ? -ETIMEDOUT : -ENOTCONN;
	}
	d->stats.requests++;
	if (no_reply)
		return 0;
	for (bool first = true;; first = false) {
		struct vfk_msg m;
		int64_t left = first ? d->opts.timeout_ms : deadline - now_ms();

		/* The wait happens inside recvmsg (SO_RCVTIMEO): one system
		 * call for the reply rather than poll + recvmsg.  After a
		 * server request came in between, only what is left of the
		 * timeout (a new SO_RCVTIMEO, off the common path). */
		rc = left > 0 ? v->ch->ops->recv_wait(v->ch, &m, (int)left) : -ETIMEDOUT;
		if (rc == -ETIMEDOUT) {
			vfk_client_log(d, VFK_LOG_ERR, "%s (id %u): no reply in %d ms",
				       vfk_cmd_name(cmd), h.id, d->opts.timeout_ms);
			return -ETIMEDOUT;
		}
		if (rc < 0) {
			v->dead = true;
			vfk_client_log(d, VFK_LOG_ERR, "connection lost: %s", vfk_strerror(rc));
			return -ENOTCONN;
		}
		if (m.hdr_err || m.oversized || !vfk_hdr_is_reply(&m.hdr) ||
		    m.hdr.id != h.id) {
			handle_other(d, &m);
			if (v->dead)
				return -ENOTCONN;
			continue;
		}
		/* Our reply: check it before anything is used. */
		rc = 0;
		if (m.hdr.cmd != cmd)
			rc = -EPROTO;
		else if (m.hdr.flags & VFK_F_ERROR)
			rc = m.hdr.error ? -(int)m.hdr.error : -EIO;
		else if (m.len > ex->max)
			rc = -EPROTO;
		else if (m.nfds > (ex->fd ? 1u : 0u))
			rc = -EPROTO;
		if (rc == -EPROTO)
			vfk_client_log(d, VFK_LOG_ERR, "%s: malformed reply (cmd %u, %u bytes, %u fds)",
				       vfk_cmd_name(cmd), m.hdr.cmd, m.len, m.nfds);
		if (rc) {
			vfk_msg_close_fds(&m);
			return rc;
		}
		if (m.len)
			memcpy(ex->buf, m.payload, m.len);
		ex->len = m.len;
		if (ex->fd)
			*ex->fd = m.nfds ? m.fds[0] : -1;
		/* Server requests that came in the same read would wait for a
		 * poll that never fires: the bytes are off the socket. */
		drain_buffered(d);
		return 0;
	}
}

/* ---- negotiation ---- */

static int negotiate(struct vfk_device *d)
{
	struct vu *v = vu(d);
	struct vfk_version prop, rep;
	uint8_t buf[512];
	struct iovec iov;
	struct expect ex = { .buf = v->reply, .max = 4096 };
	int n, rc;

	memset(&prop, 0, sizeof(prop));
	prop.major = VFK_PROTO_MAJOR;
	prop.minor = VFK_PROTO_MINOR;
	vfk_version_caps_default(&prop.caps);
	prop.caps.present = VFK_CAP_MAX_MSG_FDS | VFK_CAP_MAX_DATA_XFER |
			    VFK_CAP_PGSIZES | VFK_CAP_MAX_DMA_MAPS;
	prop.caps.max_msg_fds = d->opts.max_msg_fds;
	prop.caps.max_data_xfer_size = d->opts.max_data_xfer;
	prop.caps.pgsizes = 4096;
	prop.caps.max_dma_maps = VFK_DEFAULT_MAX_DMA_MAPS;
	n = vfk_version_encode(buf, sizeof(buf), &prop);
	if (n < 0)
		return n;
	iov.iov_base = buf;
	iov.iov_len = (size_t)n;
	rc = request(d, VFK_CMD_VERSION, &iov, 1, NULL, 0, false, &ex);
	if (rc == -EBUSY)
		vfk_client_log(d, VFK_LOG_ERR, "the device is in use by another client");
	if (rc)
		return rc;
	rc = vfk_version_decode(v->reply, ex.len, &rep);
	if (rc) {
		vfk_client_log(d, VFK_LOG_ERR, "malformed VERSION reply");
		return -EPROTO;
	}
	if (rep.major != prop.major || rep.minor > prop.minor) {
		vfk_client_log(d, VFK_LOG_ERR, "server answered version %u.%u to %u.%u",
			       rep.major, rep.minor, prop.major, prop.minor);
		return -EPROTO;
	}
	/* We proposed no twin socket: a server enabling one is inconsistent. */
	if ((rep.caps.present & VFK_CAP_TWIN_SOCKET) && rep.caps.twin_socket)
		return -EPROTO;
	v->sess.major = rep.major;
	v->sess.minor = rep.minor;
	v->sess.server_max_data_xfer = rep.caps.max_data_xfer_size;
	v->sess.server_max_msg_fds = rep.caps.max_msg_fds;
	v->sess.server_max_dma_maps = rep.caps.max_dma_maps;
	v->sess.server_pgsizes = rep.caps.pgsizes;
	v->sess.write_multiple = rep.caps.write_multiple;
	return 0;
}

/* ---- transport ops ---- */

static int vu_get_info(struct vfk_device *d, struct vfk_device_info *out)
{
	struct vfk_device_info_wire w = { .argsz = sizeof(w) }, r;
	struct iovec iov = { &w, sizeof(w) };
	struct expect ex = { .buf = (uint8_t *)&r, .max = sizeof(r) };
	int rc = request(d, VFK_CMD_DEVICE_GET_INFO, &iov, 1, NULL, 0, false, &ex);

	if (rc)
		return rc;
	rc = vfk_decode_device_info_reply(&r, ex.len, &r);
	if (rc)
		return -EPROTO;
	/* A PCI device has the nine fixed regions and five IRQ types; more
	 * than a few dozen is a server trying to make us allocate. */
	if (r.num_regions > CLIENT_MAX_REGIONS || r.num_irqs > CLIENT_MAX_IRQS)
		return -EPROTO;
	out->flags = r.flags;
	out->num_regions = r.num_regions;
	out->num_irqs = r.num_irqs;
	return 0;
}

static int vu_get_region_info(struct vfk_device *d, uint32_t index,
			      struct region_cache *rc)
{
	struct vu *v = vu(d);
	uint32_t argsz = 256;
	struct vfk_region_info_wire w;
	int fd = -1, rc2;

	for (int attempt = 0; attempt < 2; attempt++) {
		struct vfk_region_info_wire req = { .argsz = argsz, .index = index };
		struct iovec iov = { &req, sizeof(req) };
		struct expect ex = { .buf = v->reply, .max = argsz, .fd = &fd };
		bool has_sparse = false, can_map;

		rc2 = request(d, VFK_CMD_DEVICE_GET_REGION_INFO, &iov, 1, NULL, 0, false, &ex);
		if (rc2)
			return rc2;
		if (ex.len < sizeof(w))
			goto bad;
		memcpy(&w, v->reply, sizeof(w));
		if (w.index != index || (w.flags & ~VFK_REGION_FLAGS_KNOWN) ||
		    w.argsz < sizeof(w))
			goto bad;
		if (w.argsz > argsz) {
			/* Too small: retry once with the size we were told,
			 * within what a reply may carry. */
			if (fd >= 0)
				close(fd);
			fd = -1;
			if (attempt || w.argsz > d->opts.max_data_xfer)
				goto bad;
			argsz = w.argsz;
			continue;
		}
		memset(&rc->info, 0, sizeof(rc->info));
		rc->info.index = index;
		rc->info.flags = w.flags;
		rc->info.size = w.size;
		rc->info.offset = w.offset;
		if ((w.flags & VFK_REGION_FLAG_CAPS) &&
		    vfk_region_parse_caps(d, rc, v->reply, ex.len, w.cap_offset,
					  &has_sparse))
			goto bad;
		can_map = (w.flags & VFK_REGION_FLAG_MMAP) && fd >= 0 && w.size;
		vfk_region_set_areas(d, rc, can_map, has_sparse);
		if (can_map)
			rc->map_fd = fd;
		else if (fd >= 0)
			close(fd); /* an fd without MMAP is of no use */
		return 0;
	}
bad:
	if (fd >= 0)
		close(fd);
	vfk_client_log(d, VFK_LOG_ERR, "region %u: malformed region info", index);
	return -EPROTO;
}

static int vu_region_rw(struct vfk_device *d, bool write, bool posted,
			uint32_t index, uint64_t off, void *buf, size_t count)
{
	struct vu *v = vu(d);
	uint32_t chunk = v->sess.server_max_data_xfer;
	uint8_t *b = buf;

	if (chunk > d->opts.max_data_xfer)
		chunk = d->opts.max_data_xfer;
	while (count) {
		uint32_t n = count < chunk ? (uint32_t)count : chunk;
		struct vfk_region_rw_wire w = { off, index, n };
		struct vfk_rw req = { .offset = off, .region = index, .count = n }, got;
		int rc;

		if (write) {
			struct iovec iov[2] = { { &w, sizeof(w) }, { b, n } };
			uint8_t r[sizeof(w)];
			struct expect ex = { .buf = r, .max = sizeof(r) };

			rc = request(d, VFK_CMD_REGION_WRITE, iov, 2, NULL, 0, posted, &ex);
			/* A bare header is accepted too (QEMU's own servers). */
			if (!rc && !posted && ex.len &&
			    vfk_decode_region_write_reply(r, ex.len, &req))
				rc = -EPROTO;
		} else {
			struct iovec iov = { &w, sizeof(w) };
			struct expect ex = { .buf = v->reply, .max = sizeof(w) + n };

			rc = request(d, VFK_CMD_REGION_READ, &iov, 1, NULL, 0, false, &ex);
			if (!rc) {
				if (vfk_decode_region_read_reply(v->reply, ex.len, &req, &got))
					rc = -EPROTO;
				else
					memcpy(b, got.data, n);
			}
		}
		if (rc)
			return rc;
		b += n;
		off += n;
		count -= n;
	}
	return 0;
}

static int vu_get_irq_info(struct vfk_device *d, uint32_t index,
			   struct vfk_irq_info *out)
{
	struct vfk_irq_info_wire w = { .argsz = sizeof(w), .index = index }, r;
	struct iovec iov = { &w, sizeof(w) };
	struct expect ex = { .buf = (uint8_t *)&r, .max = sizeof(r) };
	int rc = request(d, VFK_CMD_DEVICE_GET_IRQ_INFO, &iov, 1, NULL, 0, false, &ex);

	if (rc)
		return rc;
	if (vfk_decode_irq_info_reply(&r, ex.len, &r) || r.index != index ||
	    r.count > 65536)
		return -EPROTO;
	out->flags = r.flags;
	out->count = r.count;
	return 0;
}

static int set_irqs_one(struct vfk_device *d, uint32_t flags, uint32_t index,
			uint32_t start, uint32_t count, const int *fds,
			unsigned nfds, const uint8_t *bools)
{
	struct vfk_irq_set_wire w = { sizeof(w), flags, index, start, count };
	struct iovec iov[2] = { { &w, sizeof(w) }, { (void *)bools, bools ? count : 0 } };
	struct expect ex = { .buf = NULL, .max = 0 };

	if (bools)
		w.argsz += count;
	return request(d, VFK_CMD_DEVICE_SET_IRQS, iov, bools ? 2 : 1, fds, nfds,
		       false, &ex);
}

static int vu_set_irqs(struct vfk_device *d, uint32_t flags, uint32_t index,
		       uint32_t start, uint32_t count, const int *fds,
		       const uint8_t *bools)
{
	struct vu *v = vu(d);
	unsigned max = v->sess.server_max_msg_fds;
	uint32_t i = 0;

	if (!(flags & VFK_IRQ_SET_DATA_EVENTFD))
		return set_irqs_one(d, flags, index, start, count, NULL, 0, bools);
	if (max == 0)
		return -ENOTSUP; /* the server takes no fds */
	if (max > VFK_CHANNEL_MAX_FDS)
		max = VFK_CHANNEL_MAX_FDS;
	/* Runs of valid fds (at most `max` a message) and runs of -1 (sent
	 * with no fds: "unassign these"). */
	while (i < count) {
		bool valid = fds[i] >= 0;
		uint32_t j = i + 1;
		int rc;

		while (j < count && (fds[j] >= 0) == valid && (!valid || j - i < max))
			j++;
		rc = set_irqs_one(d, flags, index, start + i, j - i,
				  valid ? fds + i : NULL, valid ? j - i : 0, NULL);
		if (rc)
			return rc;
		i = j;
	}
	return 0;
}

static int add_win(struct vu *v, const struct vfk_dma_mapping *m)
{
	uint64_t last = m->iova + m->size - 1;
	size_t lo = 0, hi = v->nwins;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->wins[mid].iova <= m->iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	if ((lo > 0 && v->wins[lo - 1].last >= m->iova) ||
	    (lo < v->nwins && v->wins[lo].iova <= last))
		return -EEXIST;
	if (v->nwins == v->capwins) {
		size_t cap = v->capwins ? v->capwins * 2 : 16;
		struct cwin *nw = realloc(v->wins, cap * sizeof(*nw));

		if (!nw)
			return -ENOMEM;
		v->wins = nw;
		v->capwins = cap;
	}
	memmove(&v->wins[lo + 1], &v->wins[lo], (v->nwins - lo) * sizeof(*v->wins));
	v->wins[lo] = (struct cwin){ m->iova, last, m->vaddr, m->prot };
	v->nwins++;
	return 0;
}

static void remove_wins(struct vu *v, uint64_t iova, uint64_t size, bool all)
{
	size_t k = 0;

	for (size_t i = 0; i < v->nwins; i++) {
		const struct cwin *w = &v->wins[i];

		if (all || (w->iova >= iova && w->last <= iova + size - 1))
			continue;
		v->wins[k++] = *w;
	}
	v->nwins = k;
}

static int vu_dma_map(struct vfk_device *d, const struct vfk_dma_mapping *m)
{
	struct vu *v = vu(d);
	struct vfk_dma_map_wire w = { sizeof(w), m->prot, m->fd >= 0 ? m->fd_offset : 0,
				      m->iova, m->size };
	struct iovec iov = { &w, sizeof(w) };
	struct expect ex = { .buf = NULL, .max = 0 };
	int rc;

	if (m->fd >= 0 && v->sess.server_max_msg_fds == 0)
		return -ENOTSUP;
	rc = add_win(v, m);
	if (rc)
		return rc;
	rc = request(d, VFK_CMD_DMA_MAP, &iov, 1, m->fd >= 0 ? &m->fd : NULL,
		     m->fd >= 0 ? 1 : 0, false, &ex);
	if (rc)
		remove_wins(v, m->iova, m->size, false);
	return rc;
}

static int vu_dma_unmap(struct vfk_device *d, uint64_t iova, uint64_t size, bool all)
{
	struct vu *v = vu(d);
	struct vfk_dma_unmap_wire w = { sizeof(w), all ? VFK_DMA_UNMAP_ALL : 0,
					all ? 0 : iova, all ? 0 : size }, r;
	struct iovec iov = { &w, sizeof(w) };
	struct expect ex = { .buf = (uint8_t *)&r, .max = sizeof(r) };
	int rc = request(d, VFK_CMD_DMA_UNMAP, &iov, 1, NULL, 0, false, &ex);

	if (rc)
		return rc;
	/* The server has let go: our memory may be reused now. */
	remove_wins(v, iova, size, all);
	if (ex.len && (ex.len != sizeof(r) || vfk_decode_dma_unmap(&r, ex.len, &r)))
		return -EPROTO;
	return 0;
}

static int vu_reset(struct vfk_device *d)
{
	struct expect ex = { .buf = NULL, .max = 0 };

	return request(d, VFK_CMD_DEVICE_RESET, NULL, 0, NULL, 0, false, &ex);
}

static int vu_poll_fd(struct vfk_device *d)
{
	return vu(d)->ch->ops->fd(vu(d)->ch);
}

static int vu_dispatch(struct vfk_device *d)
{
	struct vu *v = vu(d);

	if (v->dead)
		return -ENOTCONN;
	for (;;) {
		struct vfk_msg m;
		int rc = v->ch->ops->recv(v->ch, &m);

		if (rc == 0)
			return 0;
		if (rc < 0) {
			v->dead = true;
			return -ENOTCONN;
		}
		handle_other(d, &m);
		if (v->dead)
			return -ENOTCONN;
		if (!v->ch->ops->has_buffered(v->ch))
			return 0;
	}
}

static int vu_session(struct vfk_device *d, struct vfk_session_info *out)
{
	*out = vu(d)->sess;
	return 0;
}

static void vu_close(struct vfk_device *d)
{
	struct vu *v = vu(d);

	for (unsigned i = 0; i < CLIENT_MAX_REGIONS; i++) {
		if (d->regions[i].map_fd >= 0)
			close(d->regions[i].map_fd);
		d->regions[i].map_fd = -1;
	}
	v->ch->ops->destroy(v->ch);
	free(v->wins);
	free(v->reply);
	free(v->served);
	free(v);
}

const struct vfk_transport_ops vfk_vfio_user_ops = {
	.version = 1,
	.name = "vfio-user",
	.get_info = vu_get_info,
	.get_region_info = vu_get_region_info,
	.region_rw = vu_region_rw,
	.get_irq_info = vu_get_irq_info,
	.set_irqs = vu_set_irqs,
	.dma_map = vu_dma_map,
	.dma_unmap = vu_dma_unmap,
	.reset = vu_reset,
	.poll_fd = vu_poll_fd,
	.dispatch = vu_dispatch,
	.session = vu_session,
	.close = vu_close,
};

int vfk_vfio_user_attach(struct vfk_device *d, int fd)
{
	struct vu *v = calloc(1, sizeof(*v));
	int cfd, rc, fl = -1;

	if (!v)
		return -ENOMEM;
	v->reply_cap = 64 + (size_t)d->opts.max_data_xfer;
	v->reply = malloc(v->reply_cap);
	v->served = malloc(v->reply_cap);
	/* The channel owns a duplicate, so a failure leaves `fd` as the
	 * caller gave it. */
	cfd = v->reply && v->served ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (!v->reply || !v->served || cfd < 0) {
		rc = v->reply && v->served ? -errno : -ENOMEM;
		goto fail;
	}
	/* Replies are waited for inside recvmsg, which needs a blocking fd
	 * (dispatch still reads with MSG_DONTWAIT).  The flag belongs to the
	 * file `fd` shares, so a failure restores it. */
	fl = fcntl(cfd, F_GETFL);
	if (fl < 0 || fcntl(cfd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		rc = -errno;
		fl = -1;
		close(cfd);
		goto fail;
	}
	rc = vfk_sock_channel_create(cfd, (uint32_t)v->reply_cap, d->opts.max_msg_fds,
				     &v->ch);
	if (rc) {
		close(cfd);
		goto fail;
	}
	v->next_id = 1;
	d->tp = v;
	rc = negotiate(d);
	if (rc) {
		v->ch->ops->destroy(v->ch);
		d->tp = NULL;
		goto fail;
	}
	close(fd);
	return 0;
fail:
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl);
	free(v->reply);
	free(v->served);
	free(v);
	return rc;
}
