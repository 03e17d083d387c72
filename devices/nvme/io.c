/* SPDX-License-Identifier: MIT */
/*
 * The I/O thread: doorbells, command fetch, the completion side,
 * interrupts, controller transitions, and its loop.
 *
 * Doorbells are read from memory: the mapped doorbell page (or the copy
 * trapped writes fill), and the shadow doorbells of Doorbell Buffer
 * Config.  A value is acted on only when it changed since it was last
 * seen, so a host that writes only the shadow, only the register, or both
 * (Linux: the shadow, and the register when EventIdx asks) is followed.
 *
 * Flow control: a command is fetched only when its completion queue has a
 * free slot reserved for it, so a completion never waits for room, and a
 * host that stops consuming completions simply stops the fetching.
 *
 * NVM commands themselves are in nvm.c, admin commands in admin.c.
 *
 * The loop spins while there is work and for poll_us after, then sleeps in
 * ppoll() on two eventfds (a kick from the server thread, io_uring
 * completions) with exponential backoff from 16 us to 1 ms.  With trapped
 * doorbells the sleep has no timeout: a doorbell write kicks the thread,
 * and EventIdx is set before sleeping so that a shadow-doorbell host rings
 * the register.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "nvme_int.h"

#define GEN(sc) NVME_ERR(NVME_SCT_GENERIC, (sc))
#define SLEEP_MIN_NS 16000ull
#define SLEEP_MAX_NS 1000000ull

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

void nvme_kick(struct nvme_ctrl *c)
{
	uint64_t one = 1;
	ssize_t n = write(c->kick_fd, &one, sizeof(one));

	(void)n;
}

void *nvme_contig(struct nvme_ctrl *c, uint64_t iova, uint64_t len, uint32_t prot)
{
	struct vfk_sg sg;

	if (vfk_dma_translate(c->dev, iova, len, prot, &sg, 1) != 1 || !sg.host)
		return NULL;
	return sg.host;
}

bool nvme_qmem_map(struct nvme_ctrl *c, struct nvme_qmem *m, uint64_t iova, uint64_t len,
		   uint32_t prot)
{
	struct vfk_sg sg[NVME_QPAGES];
	uint64_t off = 0;

	m->mapped = false;
	if ((iova & (NVME_QPAGE - 1)) || len == 0 || len > (uint64_t)NVME_QPAGE * NVME_QPAGES)
		return false;
	while (off < len) {
		int n = vfk_dma_translate_prefix(c->dev, iova + off, len - off, prot, sg,
						 NVME_QPAGES);

		if (n <= 0)
			return false;
		for (int i = 0; i < n; i++) {
			/* A piece that ends inside a page (the queue's end
			 * aside) would split that page's entries. */
			if (!sg[i].host || ((off + sg[i].len) % NVME_QPAGE && off + sg[i].len < len))
				return false;
			for (uint64_t p = 0; p < sg[i].len; p += NVME_QPAGE)
				m->page[(off + p) / NVME_QPAGE] = (uint8_t *)sg[i].host + p;
			off += sg[i].len;
		}
	}
	m->mapped = true;
	return true;
}

void nvme_fatal(struct nvme_ctrl *c, const char *why)
{
	if (c->fatal)
		return;
	c->fatal = true;
	atomic_fetch_or(&c->csts, NVME_CSTS_CFS);
	vfk_dev_log(c->dev, VFK_LOG_WARN, "nvme: controller fatal status: %s", why);
}

void nvme_invalidate_host(struct nvme_ctrl *c)
{
	for (unsigned q = 0; q < NVME_NQ; q++) {
		if (c->sq[q])
			c->sq[q]->mem.mapped = false;
		if (c->cq[q])
			c->cq[q]->mem.mapped = false;
	}
	c->dbbuf = c->ei = NULL;
	c->dbbuf_mapped = false;
}

void nvme_sq_list_rebuild(struct nvme_ctrl *c)
{
	c->nr_sq_list = 0;
	for (unsigned q = 1; q < NVME_NQ; q++)
		if (c->sq[q])
			c->sq_list[c->nr_sq_list++] = (uint16_t)q;
	c->rr = 0;
}

/* ---- errors and asynchronous events ---- */

void nvme_log_error(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
		    uint64_t lba, uint32_t nsid)
{
	struct nvme_error_log *e = &c->errlog[c->err_count % NVME_ERRLOG];

	memset(e, 0, sizeof(*e));
	e->error_count = ++c->err_count;
	e->sqid = sqid;
	e->cid = cid;
	e->status = (uint16_t)(status << 1);
	e->param_loc = 0xffff;
	e->lba = lba;
	e->nsid = nsid;
}

void nvme_post_event(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t lid)
{
	uint32_t ev = NVME_AER_RESULT(type, info, lid);

	for (unsigned i = 0; i < c->nr_aen; i++)
		if (c->aen[i] == ev)
			return; /* one of each is enough until it is reported */
	if (c->nr_aen < sizeof(c->aen) / sizeof(c->aen[0]))
		c->aen[c->nr_aen++] = ev;
	nvme_deliver_events(c);
}

static bool cq_write(struct nvme_ctrl *c, struct nvme_cq *cq, uint16_t sqid, uint16_t sqhd,
		     uint16_t cid, uint16_t status, uint32_t dw0);

/* Complete outstanding AERs with pending events whose type is unmasked. */
void nvme_deliver_events(struct nvme_ctrl *c)
{
	struct nvme_cq *cq = c->cq[0];
	unsigned i = 0;

	while (i < c->nr_aen && c->nr_aer && cq && c->sq[0]) {
		uint32_t ev = c->aen[i];
		uint8_t type = ev & 7;
		uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;

		if (c->aen_masked & (1u << type)) {
			i++;
			continue;
		}
		if (used + cq->reserved + 1 >= cq->size || !atomic_load(&c->bme))
			return; /* no room: it waits for the host */
		if (!cq_write(c, cq, 0, (uint16_t)c->sq[0]->head, c->aer_cid[--c->nr_aer], 0, ev))
			return;
		c->aen_masked |= (uint8_t)(1u << type);
		memmove(&c->aen[i], &c->aen[i + 1], (c->nr_aen - i - 1) * sizeof(c->aen[0]));
		c->nr_aen--;
	}
}

static void doorbell_error(struct nvme_ctrl *c, uint8_t info, unsigned idx, uint32_t v)
{
	c->stats.doorbell_errors++;
	nvme_log_error(c, 0xffff, 0xffff, NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INVALID_FIELD), 0, 0);
	vfk_dev_log(c->dev, VFK_LOG_INFO, "nvme: %s doorbell %u: value %u ignored",
		    info == NVME_AER_ERR_INVALID_DB ? "write to a missing queue's" : "invalid",
		    idx, v);
	nvme_post_event(c, NVME_AER_TYPE_ERROR, info, NVME_LOG_ERROR);
}

/* ---- doorbells ---- */

static inline uint32_t db_load(struct nvme_ctrl *c, unsigned idx)
{
	return atomic_load_explicit(&c->db[idx], memory_order_acquire);
}

static bool map_dbbuf(struct nvme_ctrl *c)
{
	uint64_t len = 8ull * NVME_NQ;

	if (c->dbbuf_mapped)
		return true;
	c->dbbuf = nvme_contig(c, c->dbbuf_iova, len, VFK_PROT_READ);
	c->ei = nvme_contig(c, c->ei_iova, len, VFK_PROT_READ | VFK_PROT_WRITE);
	if (!c->dbbuf || !c->ei) {
		c->dbbuf = c->ei = NULL;
		nvme_fatal(c, "shadow doorbell buffers are not mapped");
		return false;
	}
	c->dbbuf_mapped = true;
	return true;
}

/* Whether I/O queue doorbells come from the shadow buffer.  Linux never
 * uses shadow doorbells for the admin queue, so that one always comes
 * from the register. */
static inline bool use_shadow(struct nvme_ctrl *c, unsigned qid)
{
	return c->dbbuf_on && qid != 0;
}

/*
 * The new value of doorbell `idx` of queue `qid`, false if unchanged.
 * With shadow doorbells the shadow is the value and a register write is
 * only a wake-up: by the time a trapped register write has travelled as a
 * message, the shadow may have moved on, and taking the older value would
 * run the entries in between a second time.
 */
static bool db_read(struct nvme_ctrl *c, unsigned idx, unsigned qid, uint32_t *db_last,
		    uint32_t *sh_last, uint32_t *out)
{
	uint32_t mm = db_load(c, idx), sh;

	if (use_shadow(c, qid)) {
		*db_last = mm;
		if (!map_dbbuf(c))
			return false;
		sh = atomic_load_explicit(&c->dbbuf[idx], memory_order_acquire);
		if (sh == *sh_last)
			return false;
		*sh_last = sh;
		*out = sh;
		return true;
	}
	if (mm == *db_last)
		return false;
	*db_last = mm;
	*out = mm;
	return true;
}

static void sq_doorbell(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	uint32_t v;

	if (!db_read(c, 2u * sq->qid, sq->qid, &sq->db_last, &sq->sh_last, &v))
		return;
	if (v >= sq->size) {
		doorbell_error(c, NVME_AER_ERR_INVALID_DB_VALUE, 2u * sq->qid, v);
		return;
	}
	sq->tail = v;
}

static bool cq_doorbell(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	uint32_t v, used, adv;

	if (!db_read(c, 2u * cq->qid + 1, cq->qid, &cq->db_last, &cq->sh_last, &v))
		return false;
	used = (cq->tail + cq->size - cq->head) % cq->size;
	adv = (v + cq->size - cq->head) % cq->size;
	if (v >= cq->size || adv > used) {
		/* Past the queue, or consuming entries never posted. */
		doorbell_error(c, NVME_AER_ERR_INVALID_DB_VALUE, 2u * cq->qid + 1, v);
		return false;
	}
	if (v == cq->head)
		return false;
	cq->head = v;
	return true;
}

/* Doorbells of queues that do not exist: report, then clear, so that a
 * new write shows again.  Run when the loop has slack. */
static void scan_stray_doorbells(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < 1024; i++) {
		unsigned q = i / 2;
		uint32_t v;
		bool exists = q < NVME_NQ && ((i & 1) ? c->cq[q] != NULL : c->sq[q] != NULL);

		if (exists)
			continue;
		v = atomic_load_explicit(&c->db[i], memory_order_relaxed);
		if (v) {
			atomic_store_explicit(&c->db[i], 0, memory_order_relaxed);
			if (c->enabled)
				doorbell_error(c, NVME_AER_ERR_INVALID_DB, i, v);
		}
	}
}

/*
 * EventIdx.  SQ tails: while awake, one behind what we have seen, so that
 * the host never needs to write the register; before sleeping, what we
 * have seen, so that its next write does (which, trapped, wakes us).  CQ
 * heads matter only for the INTx level and for a full queue, so only then
 * do they ask for the register before a sleep.
 */
static void set_event_idx(struct nvme_ctrl *c, bool awake)
{
	bool intx = atomic_load_explicit(&c->irq_mode, memory_order_relaxed) == VFK_PCI_INTX;

	if (!c->dbbuf_on || !map_dbbuf(c))
		return;
	for (unsigned q = 1; q < NVME_NQ; q++) {
		struct nvme_sq *sq = c->sq[q];
		struct nvme_cq *cq = c->cq[q];

		if (sq) {
			uint32_t v = awake ? (sq->tail - 1) & 0xffff : sq->tail;

			if (v != sq->ei_written) {
				atomic_store_explicit(&c->ei[2 * q], v, memory_order_release);
				sq->ei_written = v;
			}
		}
		if (cq) {
			uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
			bool want = !awake && ((intx && used) || used + cq->reserved + 1 >= cq->size);

			atomic_store_explicit(&c->ei[2 * q + 1],
					      want ? cq->head : (cq->head - 1) & 0xffff,
					      memory_order_release);
		}
	}
	atomic_thread_fence(memory_order_seq_cst);
}

static bool doorbells_moved(struct nvme_ctrl *c)
{
	for (unsigned q = 0; q < NVME_NQ; q++) {
		struct nvme_sq *sq = c->sq[q];

		if (!sq)
			continue;
		if (use_shadow(c, q) ? c->dbbuf &&
				       atomic_load_explicit(&c->dbbuf[2 * q], memory_order_acquire) !=
					       sq->sh_last
				     : db_load(c, 2 * q) != sq->db_last)
			return true;
	}
	return false;
}

/* ---- completions ---- */

static bool cq_write(struct nvme_ctrl *c, struct nvme_cq *cq, uint16_t sqid, uint16_t sqhd,
		     uint16_t cid, uint16_t status, uint32_t dw0)
{
	struct nvme_cqe *e;
	uint32_t last;

	if (!cq->mem.mapped &&
	    !nvme_qmem_map(c, &cq->mem, cq->iova, (uint64_t)cq->size * 16, VFK_PROT_WRITE)) {
		nvme_fatal(c, "completion queue memory is not mapped");
		return false;
	}
	e = nvme_qmem_at(&cq->mem, (size_t)cq->tail * 16);
	/* The first 12 bytes by a guarded copy: memory the client shrank
	 * under the queue fails here (the page is still there for the store
	 * that follows, but for a race with another shrink). */
	{
		struct nvme_cqe head = { .dw0 = dw0, .dw1 = 0, .sqhd = sqhd, .sqid = sqid };

		if (vfk_dma_memcpy(e, &head, offsetof(struct nvme_cqe, cid))) {
			nvme_fatal(c, "completion queue memory vanished");
			return false;
		}
	}
	/* CID and status with the phase tag last, in one store the host can
	 * not see before the rest of the entry. */
	last = cid | ((uint32_t)(uint16_t)((status << 1) | cq->phase) << 16);
	atomic_store_explicit((_Atomic uint32_t *)(void *)&e->cid, last, memory_order_release);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1;
	}
	if (cq->ien) {
		if (!cq->irq_pending && c->f_coalesce && cq->qid && !c->f_ivc_cd[cq->iv])
			cq->agg_t0 = nvme_now_ns();
		cq->irq_pending = true;
		cq->agg++;
	}
	c->stats.commands++;
	c->stats.io_commands += sqid != 0;
	atomic_fetch_add_explicit(&c->cmds_done, 1, memory_order_relaxed);
	return true;
}

struct nvme_req *nvme_req_get(struct nvme_ctrl *c)
{
	struct nvme_req *r = c->free_reqs;

	if (r) {
		c->free_reqs = r->next;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
	}
	memset(r, 0, offsetof(struct nvme_req, iov));
	return r;
}

void nvme_req_put(struct nvme_ctrl *c, struct nvme_req *r)
{
	r->next = c->free_reqs;
	c->free_reqs = r;
}

/* Post a completion (or keep it while bus mastering is off), without
 * logging: callers that know the LBA log the error themselves. */
void nvme_complete_raw(struct nvme_ctrl *c, struct nvme_sq *sq, uint16_t cid,
		       uint16_t status, uint32_t dw0)
{
	struct nvme_cq *cq = c->cq[sq->cqid];

	if (!atomic_load_explicit(&c->bme, memory_order_relaxed)) {
		struct nvme_req *r = nvme_req_get(c);

		if (!r) {
			nvme_fatal(c, "out of memory");
			return;
		}
		r->sq = sq;
		r->cid = cid;
		r->status = status;
		r->dw0 = dw0;
		r->next = c->deferred;
		c->deferred = r;
		return;
	}
	if (cq_write(c, cq, sq->qid, (uint16_t)sq->head, cid, status, dw0)) {
		cq->reserved--;
		sq->inflight--;
	}
}

void nvme_complete(struct nvme_ctrl *c, struct nvme_sq *sq, uint16_t cid, uint16_t status,
		   uint32_t dw0)
{
	if (status)
		nvme_log_error(c, sq->qid, cid, status, 0, 0);
	nvme_complete_raw(c, sq, cid, status, dw0);
}

static bool post_deferred(struct nvme_ctrl *c)
{
	struct nvme_req *r = c->deferred;

	c->deferred = NULL;
	while (r) {
		struct nvme_req *next = r->next;
		struct nvme_cq *cq = c->cq[r->sq->cqid];

		if (cq_write(c, cq, r->sq->qid, (uint16_t)r->sq->head, r->cid, r->status,
			     r->dw0)) {
			cq->reserved--;
			r->sq->inflight--;
		}
		nvme_req_put(c, r);
		r = next;
	}
	return true;
}

void nvme_drop_deferred(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	struct nvme_req **pp = &c->deferred;

	while (*pp) {
		struct nvme_req *r = *pp;

		if (r->sq != sq) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		c->cq[sq->cqid]->reserved--;
		sq->inflight--;
		nvme_req_put(c, r);
	}
}

static void fire_irqs(struct nvme_ctrl *c)
{
	int mode = atomic_load_explicit(&c->irq_mode, memory_order_relaxed);
	uint64_t now = 0;
	bool level = false;

	for (unsigned q = 0; q < NVME_NQ; q++) {
		struct nvme_cq *cq = c->cq[q];

		if (!cq || !cq->ien)
			continue;
		if (mode == VFK_PCI_INTX) {
			level |= cq->head != cq->tail;
			cq->irq_pending = false;
			continue;
		}
		if (!cq->irq_pending)
			continue;
		if (q && c->f_coalesce && !c->f_ivc_cd[cq->iv]) {
			unsigned thr = (c->f_coalesce & 0xff) + 1;
			uint64_t time = ((c->f_coalesce >> 8) & 0xff) * 100000ull;

			if (!now)
				now = nvme_now_ns();
			if (cq->agg < thr && now - cq->agg_t0 < time)
				continue;
		}
		cq->irq_pending = false;
		cq->agg = 0;
		if (mode == VFK_PCI_MSIX) {
			vfk_irq_trigger(c->dev, VFK_PCI_MSIX, cq->iv);
			c->stats.irqs++;
		} else if (mode == VFK_PCI_MSI) {
			vfk_irq_raise(c->dev, cq->iv);
			c->stats.irqs++;
		}
	}
	/* Pin-based: the level follows unconsumed entries, masked by INTMS. */
	if (atomic_load_explicit(&c->intms, memory_order_relaxed) & 1)
		level = false;
	if (level != c->intx_level) {
		c->intx_level = level;
		vfk_intx_set(c->dev, level);
		c->stats.irqs += level;
	}
}

/* Earliest coalescing deadline, in ns from now, or -1. */
static int64_t irq_deadline(struct nvme_ctrl *c)
{
	int64_t best = -1;
	uint64_t now = 0;

	for (unsigned q = 1; q < NVME_NQ; q++) {
		struct nvme_cq *cq = c->cq[q];
		uint64_t time, end;

		if (!cq || !cq->irq_pending)
			continue;
		if (!now)
			now = nvme_now_ns();
		time = ((c->f_coalesce >> 8) & 0xff) * 100000ull;
		end = cq->agg_t0 + time;
		if (end <= now)
			return 0;
		if (best < 0 || (int64_t)(end - now) < best)
			best = (int64_t)(end - now);
	}
	return best;
}

/* ---- fetching ---- */

static bool process_sq(struct nvme_ctrl *c, struct nvme_sq *sq, unsigned budget)
{
	struct nvme_cq *cq;
	unsigned n = 0;

	sq_doorbell(c, sq);
	if (sq->head == sq->tail)
		return false;
	if (!sq->mem.mapped &&
	    !nvme_qmem_map(c, &sq->mem, sq->iova, (uint64_t)sq->size * 64, VFK_PROT_READ)) {
		nvme_fatal(c, "submission queue memory is not mapped");
		return false;
	}
	cq = c->cq[sq->cqid];
	while (sq->head != sq->tail && n < budget) {
		uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
		struct nvme_sqe cmd;

		if (used + cq->reserved + 1 >= cq->size) {
			c->stats.deferred++;
			break;
		}
		if (!c->bk.ram && sq->qid && io_uring_sq_space_left(&c->ring) < 1)
			break;
		/* One copy: the guest may rewrite the slot meanwhile; guarded,
		 * as the client may shrink the memory under the queue. */
		if (vfk_dma_memcpy(&cmd, nvme_qmem_at(&sq->mem, (size_t)sq->head * 64),
				   sizeof(cmd))) {
			nvme_fatal(c, "submission queue memory vanished");
			return false;
		}
		if (++sq->head == sq->size)
			sq->head = 0;
		cq->reserved++;
		sq->inflight++;
		if (sq->qid == 0)
			nvme_admin_exec(c, sq, &cmd);
		else
			nvme_io_exec(c, sq, &cmd);
		n++;
		if (c->fatal || !c->sq[sq->qid])
			return true; /* the admin command deleted or broke things */
	}
	return n > 0;
}

static bool poll_once(struct nvme_ctrl *c)
{
	bool work = false, bme;

	if (c->inflight)
		work |= nvme_reap(c, false);
	if (!c->enabled || c->fatal || c->shut)
		return work;
	bme = atomic_load_explicit(&c->bme, memory_order_relaxed);
	if (c->deferred && bme)
		work |= post_deferred(c);
	for (unsigned q = 0; q < NVME_NQ; q++)
		if (c->cq[q])
			work |= cq_doorbell(c, c->cq[q]);
	if (bme && c->sq[0]) {
		work |= process_sq(c, c->sq[0], 8);
		if (c->nr_aen && c->nr_aer)
			nvme_deliver_events(c);
		for (unsigned i = 0; i < c->nr_sq_list && !c->fatal; i++) {
			unsigned k = (c->rr + i) % c->nr_sq_list;
			struct nvme_sq *sq = c->sq[c->sq_list[k]];

			if (sq)
				work |= process_sq(c, sq, 64);
		}
		if (c->nr_sq_list)
			c->rr = (c->rr + 1) % c->nr_sq_list;
	}
	if (c->ring_queued)
		nvme_ring_submit(c);
	if (c->dbbuf_on && work)
		set_event_idx(c, true);
	fire_irqs(c);
	return work;
}

/* ---- controller transitions ---- */

static void do_enable(struct nvme_ctrl *c, const struct nvme_mbox *m)
{
	uint32_t asqs = (m->aqa & 0xfff) + 1, acqs = ((m->aqa >> 16) & 0xfff) + 1;
	unsigned mps = NVME_CC_MPS(m->cc);
	struct nvme_sq *sq;
	struct nvme_cq *cq;

	if (c->enabled)
		return;
	nvme_reset_state(c, false);
	if (NVME_CC_CSS(m->cc) != 0 || NVME_CC_AMS(m->cc) != 0 || mps > NVME_CAP_MPSMAX(c->cap) ||
	    asqs < 2 || acqs < 2) {
		vfk_dev_log(c->dev, VFK_LOG_INFO, "nvme: enable refused: CC %#x AQA %#x", m->cc,
			    m->aqa);
		atomic_store(&c->csts, NVME_CSTS_RDY | NVME_CSTS_CFS);
		c->enabled = true;
		c->fatal = true;
		return;
	}
	sq = calloc(1, sizeof(*sq));
	cq = calloc(1, sizeof(*cq));
	if (!sq || !cq) {
		free(sq);
		free(cq);
		atomic_store(&c->csts, NVME_CSTS_RDY | NVME_CSTS_CFS);
		c->enabled = c->fatal = true;
		return;
	}
	c->page_size = 4096ull << mps;
	c->cc_io = m->cc;
	cq->qid = 0;
	cq->size = acqs;
	cq->phase = 1;
	cq->ien = true;
	cq->iova = m->acq & ~0xfffull;
	cq->nsq = 1;
	sq->qid = 0;
	sq->cqid = 0;
	sq->size = asqs;
	sq->iova = m->asq & ~0xfffull;
	c->sq[0] = sq;
	c->cq[0] = cq;
	c->enabled = true;
	atomic_store(&c->csts, NVME_CSTS_RDY);
	vfk_dev_log(c->dev, VFK_LOG_INFO,
		    "nvme: controller enabled (admin SQ %u, CQ %u entries, %llu-byte pages)", asqs,
		    acqs, (unsigned long long)c->page_size);
	/* Checked now so that a bad address shows as fatal status at once. */
	if (!nvme_qmem_map(c, &sq->mem, sq->iova, asqs * 64ull, VFK_PROT_READ) ||
	    !nvme_qmem_map(c, &cq->mem, cq->iova, acqs * 16ull, VFK_PROT_WRITE))
		nvme_fatal(c, "admin queue memory is not mapped");
}

static void do_shutdown(struct nvme_ctrl *c)
{
	if (c->enabled && !c->shut) {
		uint32_t s = atomic_load(&c->csts);

		atomic_store(&c->csts, (s & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_OCCUR);
		nvme_drain(c, false, NULL);
		if (c->deferred && atomic_load(&c->bme))
			post_deferred(c);
		fire_irqs(c);
		if (!c->bk.ram && fdatasync(c->bk.fd_buf) < 0)
			vfk_dev_log(c->dev, VFK_LOG_WARN, "nvme: shutdown flush failed: %s",
				    vfk_strerror(-errno));
		c->dirty = false;
		c->shut = true;
	}
	atomic_store(&c->csts, (atomic_load(&c->csts) & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_DONE);
	vfk_dev_log(c->dev, VFK_LOG_INFO, "nvme: shutdown complete (%llu commands so far)",
		    (unsigned long long)atomic_load(&c->cmds_done));
}

static void handle_mbox(struct nvme_ctrl *c, const struct nvme_mbox *m)
{
	switch (m->op) {
	case MBOX_ENABLE:
		do_enable(c, m);
		break;
	case MBOX_DISABLE:
		nvme_drain(c, true, NULL);
		nvme_reset_state(c, false);
		vfk_dev_log(c->dev, VFK_LOG_INFO, "nvme: controller disabled (%llu commands so far)",
			    (unsigned long long)atomic_load(&c->cmds_done));
		break;
	case MBOX_SHUTDOWN:
		do_shutdown(c);
		break;
	}
}

/* Holds, mailbox and stop, under the lock.  True when told to stop. */
static bool service_attn(struct nvme_ctrl *c)
{
	bool stop;

	pthread_mutex_lock(&c->lock);
	atomic_store(&c->attn, false);
	for (;;) {
		if (c->stop)
			break;
		if (c->holds) {
			if (!c->parked) {
				bool silent = c->silent;

				pthread_mutex_unlock(&c->lock);
				nvme_drain(c, silent, NULL);
				pthread_mutex_lock(&c->lock);
				c->parked = true;
				pthread_cond_broadcast(&c->cv_parked);
			}
			pthread_cond_wait(&c->cv_release, &c->lock);
			continue;
		}
		c->parked = false;
		if (c->mbox_n) {
			struct nvme_mbox m = c->mbox[0];

			memmove(&c->mbox[0], &c->mbox[1], (c->mbox_n - 1) * sizeof(m));
			c->mbox_n--;
			pthread_mutex_unlock(&c->lock);
			handle_mbox(c, &m);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		break;
	}
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static void sleep_wait(struct nvme_ctrl *c, int64_t timeout_ns)
{
	struct pollfd p[2] = { { c->kick_fd, POLLIN, 0 }, { c->uring_fd, POLLIN, 0 } };
	struct timespec ts;
	bool live = c->enabled && !c->fatal && !c->shut;
	uint64_t v;

	atomic_store(&c->sleeping, true);
	if (live && c->db_trapped)
		set_event_idx(c, false);
	if (live)
		scan_stray_doorbells(c);
	/* Look again after saying we sleep: a trapped doorbell written
	 * before this point did not kick us, one written after does. */
	if (atomic_load(&c->attn) || (live && doorbells_moved(c)) ||
	    (c->inflight && io_uring_cq_ready(&c->ring))) {
		atomic_store(&c->sleeping, false);
		return;
	}
	c->stats.sleeps++;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
	}
	if (ppoll(p, 2, timeout_ns >= 0 ? &ts : NULL, NULL) > 0) {
		if (p[0].revents & POLLIN) {
			c->stats.wakeups++;
			if (read(c->kick_fd, &v, sizeof(v)) < 0)
				(void)0;
		}
		if ((p[1].revents & POLLIN) && read(c->uring_fd, &v, sizeof(v)) < 0)
			(void)0;
	}
	atomic_store(&c->sleeping, false);
}

void *nvme_poller_main(void *arg)
{
	struct nvme_ctrl *c = arg;
	uint64_t idle_since = 0, backoff = SLEEP_MIN_NS;
	uint64_t poll_ns = (uint64_t)c->opts.poll_us * 1000;

	/* Sleeps are short; the default 50 us slack would dominate them. */
	prctl(PR_SET_TIMERSLACK, 1000ul, 0, 0, 0);
	for (;;) {
		bool live, work;
		uint64_t now;
		int64_t timeout;

		if (atomic_load_explicit(&c->attn, memory_order_acquire)) {
			if (service_attn(c))
				break;
			idle_since = 0;
			continue;
		}
		live = c->enabled && !c->fatal && !c->shut;
		work = (live || c->inflight) && poll_once(c);
		if (work) {
			idle_since = 0;
			backoff = SLEEP_MIN_NS;
			c->stats.polls++;
			continue;
		}
		c->stats.idle_polls++;
		if (!live && !c->inflight) {
			sleep_wait(c, -1);
			continue;
		}
		now = nvme_now_ns();
		if (!idle_since)
			idle_since = now;
		if (c->opts.poll_us == UINT32_MAX || now - idle_since < poll_ns) {
			cpu_relax();
			continue;
		}
		/* With trapped doorbells a write wakes us; otherwise look
		 * again after the backoff. */
		timeout = c->db_trapped ? -1 : (int64_t)backoff;
		if (c->f_coalesce) {
			int64_t d = irq_deadline(c);

			if (d >= 0 && (timeout < 0 || d < timeout))
				timeout = d;
		}
		sleep_wait(c, timeout);
		if (backoff < SLEEP_MAX_NS)
			backoff = backoff * 2 < SLEEP_MAX_NS ? backoff * 2 : SLEEP_MAX_NS;
	}
	nvme_drain(c, true, NULL);
	return NULL;
}

void nvme_free_queues(struct nvme_ctrl *c)
{
	struct nvme_req *r;

	for (unsigned q = 0; q < NVME_NQ; q++) {
		free(c->sq[q]);
		free(c->cq[q]);
		c->sq[q] = NULL;
		c->cq[q] = NULL;
	}
	c->nr_sq_list = 0;
	while ((r = c->deferred)) {
		c->deferred = r->next;
		nvme_req_put(c, r);
	}
}
