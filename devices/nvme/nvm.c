/* SPDX-License-Identifier: MIT */
/*
 * The NVM command set: Read, Write, Flush, Write Zeroes and Dataset
 * Management against the backing, and the io_uring requests behind them.
 *
 * Memory namespaces are served synchronously by the I/O thread (a copy).
 * Files and block devices go through io_uring: reads and writes straight
 * between the backing and client memory (O_DIRECT when the request meets
 * the backing's alignment, the page cache otherwise), FUA and a disabled
 * write cache as RWF_DSYNC, Flush as a data sync, Write Zeroes as
 * fallocate.  A command completes only when the backing has done its
 * part; a short transfer is continued, an error becomes its NVMe status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvme_int.h"

#define GEN(sc) NVME_ERR(NVME_SCT_GENERIC, (sc))
#define SAMPLE_EVERY 8u

enum { REQ_IO = 0, REQ_SYNC = 1 };

static uint16_t errno_status(const struct nvme_req *r, int err)
{
	if (err == -EIO)
		return NVME_STATUS(NVME_SCT_MEDIA, r->write ? NVME_SC_WRITE_FAULT : NVME_SC_READ_ERROR);
	if (err == -ENOSPC || err == -EDQUOT)
		return GEN(NVME_SC_CAP_EXCEEDED);
	return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
}

static void record_sample(struct nvme_ctrl *c, uint64_t t0)
{
	uint64_t d = nvme_now_ns() - t0;

	c->stats.lat_ns[c->lat_next] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	c->lat_next = (c->lat_next + 1) % NVME_VFK_LAT_SAMPLES;
	if (c->stats.nr_samples < NVME_VFK_LAT_SAMPLES)
		c->stats.nr_samples++;
}

void nvme_ring_submit(struct nvme_ctrl *c)
{
	int rc;

	do {
		rc = io_uring_submit(&c->ring);
	} while (rc == -EINTR);
	if (rc >= 0)
		c->ring_queued -= (unsigned)rc < c->ring_queued ? (unsigned)rc : c->ring_queued;
	c->stats.uring_submits++;
}

static struct io_uring_sqe *ring_sqe(struct nvme_ctrl *c)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&c->ring);

	if (!s) {
		nvme_ring_submit(c);
		s = io_uring_get_sqe(&c->ring);
	}
	if (s)
		c->ring_queued++;
	return s;
}

static bool req_submit_rw(struct nvme_ctrl *c, struct nvme_req *r)
{
	struct io_uring_sqe *s = ring_sqe(c);

	if (!s)
		return false;
	if (r->niov == 1) {
		if (r->write)
			io_uring_prep_write(s, r->fd, r->iov[0].iov_base, (unsigned)r->iov[0].iov_len,
					    r->off);
		else
			io_uring_prep_read(s, r->fd, r->iov[0].iov_base, (unsigned)r->iov[0].iov_len,
					   r->off);
	} else if (r->write) {
		io_uring_prep_writev(s, r->fd, r->iov, r->niov, r->off);
	} else {
		io_uring_prep_readv(s, r->fd, r->iov, r->niov, r->off);
	}
	/* FUA, or no volatile cache: the write is durable when it completes. */
	if (r->write && r->sync_after)
		s->rw_flags = RWF_DSYNC;
	io_uring_sqe_set_data(s, r);
	r->pending++;
	return true;
}

static bool req_submit_sync(struct nvme_ctrl *c, struct nvme_req *r)
{
	struct io_uring_sqe *s = ring_sqe(c);

	if (!s)
		return false;
	io_uring_prep_fsync(s, c->bk.fd_buf, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(s, r);
	r->pending++;
	return true;
}

static void req_finish(struct nvme_ctrl *c, struct nvme_req *r)
{
	c->inflight--;
	if (r->t0)
		record_sample(c, r->t0);
	if (r->status) {
		if (NVME_STATUS_CODE(r->status) >> 8 == NVME_SCT_MEDIA)
			c->media_errors++;
		nvme_log_error(c, r->sq->qid, r->cid, r->status, r->slba, r->nsid);
	}
	nvme_complete_raw(c, r->sq, r->cid, r->status, 0);
	nvme_req_put(c, r);
}

/* One io_uring completion.  `silent`: the controller is being reset, the
 * result goes nowhere. */
static void req_event(struct nvme_ctrl *c, struct nvme_req *r, int res, bool silent)
{
	r->pending--;
	if (r->stage == REQ_IO && (r->opc == NVME_CMD_READ || r->opc == NVME_CMD_WRITE) &&
	    res >= 0 && !r->status) {
		uint64_t done = (uint64_t)res;

		if (done == 0)
			r->status = errno_status(r, -EIO); /* the backing shrank */
		else if (done < r->len && !silent) {
			/* Short transfer: go on with the rest. */
			unsigned i = 0;

			r->off += done;
			r->len -= done;
			while (done >= r->iov[i].iov_len)
				done -= r->iov[i++].iov_len;
			memmove(r->iov, r->iov + i, (r->niov - i) * sizeof(r->iov[0]));
			r->niov -= i;
			r->iov[0].iov_base = (uint8_t *)r->iov[0].iov_base + done;
			r->iov[0].iov_len -= done;
			if (req_submit_rw(c, r))
				return;
			r->status = GEN(NVME_SC_INTERNAL);
		}
	} else if (res < 0 && !r->status) {
		r->status = errno_status(r, res);
	}
	if (r->pending)
		return;
	if (silent) {
		c->inflight--;
		nvme_req_put(c, r);
		return;
	}
	if (r->stage == REQ_IO && !r->status && r->write) {
		if (r->sync_after && r->opc != NVME_CMD_WRITE) {
			/* Write Zeroes with FUA: the range, then a data sync. */
			r->stage = REQ_SYNC;
			if (req_submit_sync(c, r))
				return;
			r->status = GEN(NVME_SC_INTERNAL);
		} else if (!r->sync_after) {
			c->dirty = true;
		}
	}
	req_finish(c, r);
}

bool nvme_reap(struct nvme_ctrl *c, bool silent)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&c->ring, head, cqe) {
		struct nvme_req *r = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		n++;
		io_uring_cq_advance(&c->ring, 1);
		req_event(c, r, res, silent);
	}
	return n > 0;
}

/* Wait until nothing is in flight (or, with `only`, nothing of that SQ).
 * `silent`: drop the results (reset) instead of completing the commands. */
void nvme_drain(struct nvme_ctrl *c, bool silent, struct nvme_sq *only)
{
	while (only ? only->inflight && c->inflight : c->inflight) {
		struct io_uring_cqe *cqe;
		int rc;

		if (c->ring_queued)
			nvme_ring_submit(c);
		rc = io_uring_wait_cqe(&c->ring, &cqe);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
			vfk_dev_log(c->dev, VFK_LOG_ERR, "nvme: io_uring wait: %s",
				    vfk_strerror(rc));
			break;
		}
		nvme_reap(c, silent);
	}
}

/* ---- NVM commands ---- */

static void io_done(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd,
		    uint16_t status, uint64_t lba)
{
	if (status)
		nvme_log_error(c, sq->qid, cmd->cid, status, lba, cmd->nsid);
	nvme_complete_raw(c, sq, cmd->cid, status, 0);
}

/* A request for `cmd`, or NULL when there is no memory for one (the
 * command has then failed). */
static struct nvme_req *req_new(struct nvme_ctrl *c, struct nvme_sq *sq,
				const struct nvme_sqe *cmd, uint64_t slba)
{
	struct nvme_req *r = nvme_req_get(c);

	if (!r) {
		io_done(c, sq, cmd, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL), slba);
		return NULL;
	}
	r->sq = sq;
	r->cid = cmd->cid;
	r->opc = cmd->opc;
	r->nsid = cmd->nsid;
	r->slba = slba;
	return r;
}

static bool lba_ok(struct nvme_ctrl *c, uint64_t slba, uint64_t nlb)
{
	uint64_t blocks = c->bk.size >> NVME_LBA_SHIFT;

	return slba < blocks && nlb <= blocks - slba;
}

static void exec_rw(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd,
		    bool write)
{
	uint64_t slba = cmd->cdw10 | ((uint64_t)cmd->cdw11 << 32);
	uint64_t nlb = (cmd->cdw12 & 0xffff) + 1ull;
	uint64_t len = nlb << NVME_LBA_SHIFT;
	struct nvme_req *r;
	uint16_t st;

	if (cmd->cdw12 & (0xfu << 26)) { /* protection information: none here */
		io_done(c, sq, cmd, GEN(NVME_SC_INVALID_FIELD), slba);
		return;
	}
	if (len > NVME_MAX_XFER) {
		io_done(c, sq, cmd, GEN(NVME_SC_INVALID_FIELD), slba);
		return;
	}
	if (!lba_ok(c, slba, nlb)) {
		io_done(c, sq, cmd, GEN(NVME_SC_LBA_RANGE), slba);
		return;
	}
	r = req_new(c, sq, cmd, slba);
	if (!r)
		return;
	r->write = write;
	r->off = slba << NVME_LBA_SHIFT;
	r->len = len;
	if (++c->sample_ctr % SAMPLE_EVERY == 0)
		r->t0 = nvme_now_ns();
	st = nvme_map_data(c, cmd, len, write ? VFK_PROT_READ : VFK_PROT_WRITE, r->iov,
			   NVME_MAX_IOV, &r->niov);
	if (st) {
		nvme_req_put(c, r);
		io_done(c, sq, cmd, st, slba);
		return;
	}
	if (write) {
		c->host_writes++;
		c->units_written += nlb;
	} else {
		c->host_reads++;
		c->units_read += nlb;
	}
	if (c->bk.ram) {
		st = nvme_ram_copy(&c->bk, write, r->off, r->iov, r->niov)
			     ? NVME_ERR(NVME_SCT_GENERIC, NVME_SC_DATA_XFER_ERROR) : 0;
		if (r->t0)
			record_sample(c, r->t0);
		nvme_req_put(c, r);
		io_done(c, sq, cmd, st, slba);
		return;
	}
	r->sync_after = write && ((cmd->cdw12 & NVME_RW_FUA) || !c->vwc);
	if (nvme_backing_direct_ok(&c->bk, r->off, r->len, r->iov, r->niov)) {
		r->fd = c->bk.fd_direct;
	} else {
		r->fd = c->bk.fd_buf;
		r->buffered = true;
		c->stats.bounced++;
	}
	c->inflight++;
	if (!req_submit_rw(c, r)) {
		c->inflight--;
		nvme_req_put(c, r);
		io_done(c, sq, cmd, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL), slba);
	}
}

/* Zeros written the slow way, for backings that cannot fallocate. */
static int write_zeros_sync(struct nvme_ctrl *c, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[65536];

	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pwrite(c->bk.fd_buf, zeros, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

static void exec_write_zeroes(struct nvme_ctrl *c, struct nvme_sq *sq,
			      const struct nvme_sqe *cmd)
{
	uint64_t slba = cmd->cdw10 | ((uint64_t)cmd->cdw11 << 32);
	uint64_t nlb = (cmd->cdw12 & 0xffff) + 1ull;
	uint64_t off = slba << NVME_LBA_SHIFT, len = nlb << NVME_LBA_SHIFT;
	bool fua = (cmd->cdw12 & NVME_RW_FUA) || !c->vwc;
	struct io_uring_sqe *s;
	struct nvme_req *r;
	int mode;

	if (!lba_ok(c, slba, nlb)) {
		io_done(c, sq, cmd, GEN(NVME_SC_LBA_RANGE), slba);
		return;
	}
	c->host_writes++;
	if (c->bk.ram) {
		nvme_ram_zero(&c->bk, off, len);
		io_done(c, sq, cmd, 0, slba);
		return;
	}
	r = req_new(c, sq, cmd, slba);
	if (!r)
		return;
	r->write = true;
	r->sync_after = fua;
	/* Deallocating is the cheaper way to zeros where it reads back so. */
	mode = (cmd->cdw12 & NVME_WZ_DEAC) && c->bk.dealloc_zeroes ?
		       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
		       FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	c->inflight++;
	s = ring_sqe(c);
	if (!s) {
		c->inflight--;
		nvme_req_put(c, r);
		io_done(c, sq, cmd, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL), slba);
		return;
	}
	io_uring_prep_fallocate(s, c->bk.fd_buf, mode, off, len);
	io_uring_sqe_set_data(s, r);
	r->pending = 1;
	r->off = off;
	r->len = len;
}

static void exec_dsm(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd)
{
	struct nvme_dsm_range rg[256];
	unsigned nr = (cmd->cdw10 & 0xff) + 1;
	uint16_t st = nvme_data_in(c, cmd, rg, nr * sizeof(rg[0]));

	if (st) {
		io_done(c, sq, cmd, st, 0);
		return;
	}
	/* Check every range before touching any. */
	for (unsigned i = 0; i < nr; i++)
		if (rg[i].nlb && !lba_ok(c, rg[i].slba, rg[i].nlb)) {
			io_done(c, sq, cmd, GEN(NVME_SC_LBA_RANGE), rg[i].slba);
			return;
		}
	if (!(cmd->cdw11 & NVME_DSM_AD)) {
		io_done(c, sq, cmd, 0, 0); /* attributes are hints */
		return;
	}
	for (unsigned i = 0; i < nr; i++) {
		uint64_t off = rg[i].slba << NVME_LBA_SHIFT, len = (uint64_t)rg[i].nlb << NVME_LBA_SHIFT;

		if (!len)
			continue;
		if (c->bk.ram) {
			nvme_ram_zero(&c->bk, off, len);
		} else if (fallocate(c->bk.fd_buf, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				     (off_t)off, (off_t)len) < 0 && c->bk.dealloc_zeroes) {
			/* Identify promised zeros: keep the promise. */
			if (write_zeros_sync(c, off, len)) {
				io_done(c, sq, cmd,
					NVME_STATUS(NVME_SCT_MEDIA, NVME_SC_WRITE_FAULT),
					rg[i].slba);
				return;
			}
		}
	}
	c->dirty = true;
	io_done(c, sq, cmd, 0, 0);
}

void nvme_io_exec(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd)
{
	if (NVME_FUSE(cmd->flags)) {
		io_done(c, sq, cmd, GEN(NVME_SC_INVALID_FIELD), 0);
		return;
	}
	switch (cmd->opc) {
	case NVME_CMD_READ:
	case NVME_CMD_WRITE:
	case NVME_CMD_WRITE_ZEROES:
	case NVME_CMD_DSM:
		if (cmd->nsid != 1) {
			io_done(c, sq, cmd, GEN(NVME_SC_INVALID_NS), 0);
			return;
		}
		break;
	case NVME_CMD_FLUSH:
		if (cmd->nsid != 1 && cmd->nsid != 0xffffffffu) {
			io_done(c, sq, cmd, GEN(NVME_SC_INVALID_NS), 0);
			return;
		}
		break;
	default:
		io_done(c, sq, cmd, GEN(NVME_SC_INVALID_OPCODE), 0);
		return;
	}
	switch (cmd->opc) {
	case NVME_CMD_READ:
		exec_rw(c, sq, cmd, false);
		break;
	case NVME_CMD_WRITE:
		exec_rw(c, sq, cmd, true);
		break;
	case NVME_CMD_WRITE_ZEROES:
		exec_write_zeroes(c, sq, cmd);
		break;
	case NVME_CMD_DSM:
		exec_dsm(c, sq, cmd);
		break;
	case NVME_CMD_FLUSH: {
		struct nvme_req *r;

		if (c->bk.ram || !c->dirty) {
			io_done(c, sq, cmd, 0, 0); /* nothing volatile to flush */
			return;
		}
		r = req_new(c, sq, cmd, 0);
		if (!r)
			return;
		r->stage = REQ_SYNC;
		/* Writes completed before this point are covered; later
		 * ones mark the cache dirty again. */
		c->dirty = false;
		c->inflight++;
		if (!req_submit_sync(c, r)) {
			c->inflight--;
			c->dirty = true;
			nvme_req_put(c, r);
			io_done(c, sq, cmd, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL), 0);
		}
		break;
	}
	}
}
