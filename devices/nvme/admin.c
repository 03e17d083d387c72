/* SPDX-License-Identifier: MIT */
/*
 * Admin commands, run by the I/O thread like every other command.  All
 * but Asynchronous Event Request complete before the next command is
 * fetched; Delete I/O Submission Queue first completes what the queue has
 * in flight.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvme_int.h"

#define GEN(sc) NVME_ERR(NVME_SCT_GENERIC, (sc))
#define CMD(sc) NVME_ERR(NVME_SCT_CMD, (sc))

#define FW_REV "0.1.0"
#define MODEL "vfiokit NVMe controller"
#define WCTEMP 343 /* K */
#define CCTEMP 373
#define NOMINAL_TEMP 293 /* K: there is no sensor, see the SMART log */

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* A 128-bit little-endian counter from a 64-bit value. */
static void put128(uint8_t *p, uint64_t v)
{
	memset(p, 0, 16);
	put64(p, v);
}

static void put_str(uint8_t *p, const char *s, size_t width)
{
	size_t n = strlen(s);

	memset(p, ' ', width);
	memcpy(p, s, n < width ? n : width);
}

/* Namespace identifiers derived from the serial number, stable across
 * restarts of the same backing. */
static void ns_ids(const struct nvme_ctrl *c, uint8_t nguid[16], uint8_t eui[8])
{
	uint64_t h = 1469598103934665603ull;

	for (const char *s = c->serial; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	put64(nguid, h);
	put64(nguid + 8, h * 0x9e3779b97f4a7c15ull + 1);
	memcpy(eui, nguid + 8, 8);
	eui[0] = 0x02; /* locally administered */
}

static void id_ctrl(struct nvme_ctrl *c, uint8_t *d)
{
	char nqn[256];

	put16(d + 0, NVME_VFK_VENDOR);
	put16(d + 2, NVME_VFK_VENDOR);
	put_str(d + 4, c->serial, 20);
	put_str(d + 24, MODEL, 40);
	put_str(d + 64, FW_REV, 8);
	d[72] = 0;                       /* RAB */
	d[77] = NVME_MDTS;
	put16(d + 78, 1);                /* CNTLID */
	put32(d + 80, 0x00010400);       /* VER 1.4.0 */
	d[111] = 1;                      /* CNTRLTYPE: I/O controller */
	put16(d + 256, 1u << 8);         /* OACS: Doorbell Buffer Config */
	d[258] = 3;                      /* ACL: 4 Aborts */
	d[259] = NVME_AERL;
	d[260] = (1u << 1) | 1u;         /* FRMW: one slot, read-only */
	d[261] = (1u << 1) | (1u << 2);  /* LPA: effects log, extended data */
	d[262] = NVME_ERRLOG - 1;        /* ELPE */
	d[263] = 0;                      /* NPSS: one power state */
	put16(d + 266, WCTEMP);
	put16(d + 268, CCTEMP);
	d[512] = 0x66;                   /* SQES */
	d[513] = 0x44;                   /* CQES */
	put32(d + 516, 1);               /* NN */
	put16(d + 520, (1u << 2) | (1u << 3) | (1u << 4)); /* ONCS: DSM, WZ, SEL */
	d[525] = 0x7;                    /* VWC present, Flush to all NSIDs */
	d[530] = 1;                      /* NVSCC */
	put32(d + 536, 1);               /* SGLS: supported, any alignment */
	snprintf(nqn, sizeof(nqn), "nqn.2024-01.org.vfiokit:nvme:%s", c->serial);
	memcpy(d + 768, nqn, strlen(nqn));
	/* Power state 0: no figures to give (a virtual device). */
}

static void id_ns(struct nvme_ctrl *c, uint8_t *d)
{
	uint64_t blocks = c->bk.size >> NVME_LBA_SHIFT;
	uint8_t nguid[16], eui[8];

	put64(d + 0, blocks);            /* NSZE */
	put64(d + 8, blocks);            /* NCAP */
	put64(d + 16, blocks);           /* NUSE */
	d[25] = 0;                       /* NLBAF: one format */
	d[26] = 0;                       /* FLBAS */
	/* DLFEAT: deallocated blocks read as zeros, and Write Zeroes with
	 * DEAC deallocates, where the backing can do it. */
	d[33] = c->bk.dealloc_zeroes ? 0x09 : 0x00;
	put128(d + 48, c->bk.size);      /* NVMCAP */
	ns_ids(c, nguid, eui);
	memcpy(d + 104, nguid, 16);
	memcpy(d + 120, eui, 8);
	put32(d + 128, NVME_LBA_SHIFT << 16); /* LBAF0: 512-byte blocks, no metadata */
}

static uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint8_t d[4096];
	unsigned cns = cmd->cdw10 & 0xff, csi = cmd->cdw11 >> 24;
	uint32_t nsid = cmd->nsid;

	memset(d, 0, sizeof(d));
	switch (cns) {
	case NVME_CNS_CTRL:
		id_ctrl(c, d);
		break;
	case NVME_CNS_NS:
		if (nsid != 1)
			return GEN(NVME_SC_INVALID_NS);
		id_ns(c, d);
		break;
	case NVME_CNS_NS_ACTIVE_LIST:
		if (nsid >= 0xfffffffeu)
			return GEN(NVME_SC_INVALID_NS);
		if (nsid < 1)
			put32(d, 1);
		break;
	case NVME_CNS_NS_DESC_LIST: {
		uint8_t nguid[16], eui[8];

		if (nsid != 1)
			return GEN(NVME_SC_INVALID_NS);
		ns_ids(c, nguid, eui);
		d[0] = 1;                /* EUI-64 */
		d[1] = 8;
		memcpy(d + 4, eui, 8);
		d[12] = 2;               /* NGUID */
		d[13] = 16;
		memcpy(d + 16, nguid, 16);
		break;
	}
	case NVME_CNS_CS_NS:
		if (csi != 0)
			return GEN(NVME_SC_INVALID_FIELD);
		if (nsid != 1)
			return GEN(NVME_SC_INVALID_NS);
		break;                   /* nothing NVM-specific to report */
	case NVME_CNS_CS_CTRL:
		if (csi != 0)
			return GEN(NVME_SC_INVALID_FIELD);
		break;                   /* no VSL/WZSL/DMRL limits */
	default:
		return GEN(NVME_SC_INVALID_FIELD);
	}
	return nvme_data_out(c, cmd, d, sizeof(d));
}

/* ---- queues ---- */

static void zero_db(struct nvme_ctrl *c, unsigned idx, uint32_t *db_last, uint32_t *sh_last)
{
	atomic_store(&c->db[idx], 0);
	*db_last = 0;
	*sh_last = 0;
	if (c->dbbuf_on && c->dbbuf_mapped) {
		atomic_store(&c->dbbuf[idx], 0);
		atomic_store(&c->ei[idx], 0);
	}
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	unsigned qid = cmd->cdw10 & 0xffff, size = (cmd->cdw10 >> 16) + 1;
	unsigned iv = cmd->cdw11 >> 16;
	struct nvme_cq *cq;

	if (qid == 0 || qid > c->nr_iocq || c->cq[qid])
		return CMD(NVME_SC_QID_INVALID);
	if (size < 2 || size > NVME_MQES + 1)
		return CMD(NVME_SC_QUEUE_SIZE);
	if (!(cmd->cdw11 & 1)) /* CAP.CQR: queues must be contiguous */
		return GEN(NVME_SC_INVALID_FIELD);
	if (iv >= NVME_NR_VECTORS)
		return CMD(NVME_SC_INVALID_VECTOR);
	if (!cmd->prp1 || (cmd->prp1 & (c->page_size - 1)) || NVME_CC_IOCQES(c->cc_io) != 4)
		return GEN(NVME_SC_INVALID_FIELD);
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
	cq->qid = (uint16_t)qid;
	cq->size = size;
	cq->phase = 1;
	cq->ien = cmd->cdw11 & 2;
	cq->iv = (uint16_t)iv;
	cq->iova = cmd->prp1;
	if (!nvme_qmem_map(c, &cq->mem, cq->iova, size * 16ull, VFK_PROT_WRITE)) {
		free(cq);
		return GEN(NVME_SC_INVALID_FIELD);
	}
	zero_db(c, 2 * qid + 1, &cq->db_last, &cq->sh_last);
	c->cq[qid] = cq;
	return 0;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	unsigned qid = cmd->cdw10 & 0xffff, size = (cmd->cdw10 >> 16) + 1;
	unsigned cqid = cmd->cdw11 >> 16;
	struct nvme_sq *sq;

	if (qid == 0 || qid > c->nr_ioq || c->sq[qid])
		return CMD(NVME_SC_QID_INVALID);
	if (cqid == 0 || cqid >= NVME_NQ || !c->cq[cqid])
		return CMD(NVME_SC_CQ_INVALID);
	if (size < 2 || size > NVME_MQES + 1)
		return CMD(NVME_SC_QUEUE_SIZE);
	if (!(cmd->cdw11 & 1))
		return GEN(NVME_SC_INVALID_FIELD);
	if (!cmd->prp1 || (cmd->prp1 & (c->page_size - 1)) || NVME_CC_IOSQES(c->cc_io) != 6)
		return GEN(NVME_SC_INVALID_FIELD);
	sq = calloc(1, sizeof(*sq));
	if (!sq)
		return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
	sq->qid = (uint16_t)qid;
	sq->cqid = (uint16_t)cqid;
	sq->size = size;
	sq->iova = cmd->prp1;
	if (!nvme_qmem_map(c, &sq->mem, sq->iova, size * 64ull, VFK_PROT_READ)) {
		free(sq);
		return GEN(NVME_SC_INVALID_FIELD);
	}
	sq->prio = (cmd->cdw11 >> 1) & 3;
	sq->ei_written = UINT32_MAX;
	zero_db(c, 2 * qid, &sq->db_last, &sq->sh_last);
	c->sq[qid] = sq;
	c->cq[cqid]->nsq++;
	nvme_sq_list_rebuild(c);
	return 0;
}

static uint16_t delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	unsigned qid = cmd->cdw10 & 0xffff;
	struct nvme_sq *sq;

	if (qid == 0 || qid >= NVME_NQ || !c->sq[qid])
		return CMD(NVME_SC_QID_INVALID);
	sq = c->sq[qid];
	/* What it has in flight completes first; what it holds unfetched
	 * goes with it, and so do completions kept back because bus
	 * mastering went off meanwhile. */
	nvme_drain(c, false, sq);
	nvme_drop_deferred(c, sq);
	c->cq[sq->cqid]->nsq--;
	c->sq[qid] = NULL;
	zero_db(c, 2 * qid, &sq->db_last, &sq->sh_last);
	free(sq);
	nvme_sq_list_rebuild(c);
	return 0;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	unsigned qid = cmd->cdw10 & 0xffff;
	struct nvme_cq *cq;

	if (qid == 0 || qid >= NVME_NQ || !c->cq[qid])
		return CMD(NVME_SC_QID_INVALID);
	cq = c->cq[qid];
	if (cq->nsq)
		return CMD(NVME_SC_INVALID_QUEUE_DELETION);
	c->cq[qid] = NULL;
	zero_db(c, 2 * qid + 1, &cq->db_last, &cq->sh_last);
	free(cq);
	return 0;
}

static uint16_t dbbuf_config(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint64_t mask = c->page_size - 1, len = 8ull * NVME_NQ;
	_Atomic uint32_t *db, *ei;

	if (!cmd->prp1 || !cmd->prp2 || (cmd->prp1 & mask) || (cmd->prp2 & mask))
		return GEN(NVME_SC_INVALID_FIELD);
	db = nvme_contig(c, cmd->prp1, len, VFK_PROT_READ);
	ei = nvme_contig(c, cmd->prp2, len, VFK_PROT_READ | VFK_PROT_WRITE);
	if (!db || !ei)
		return GEN(NVME_SC_INVALID_FIELD);
	c->dbbuf_iova = cmd->prp1;
	c->ei_iova = cmd->prp2;
	c->dbbuf = db;
	c->ei = ei;
	c->dbbuf_mapped = true;
	c->dbbuf_on = true;
	/* What the buffer holds now is the baseline; changes from here on
	 * are doorbell writes. */
	for (unsigned q = 0; q < NVME_NQ; q++) {
		if (c->sq[q]) {
			c->sq[q]->sh_last = atomic_load(&db[2 * q]);
			c->sq[q]->ei_written = UINT32_MAX;
		}
		if (c->cq[q])
			c->cq[q]->sh_last = atomic_load(&db[2 * q + 1]);
	}
	return 0;
}

/* ---- log pages ---- */

static size_t log_error(struct nvme_ctrl *c, uint8_t *d)
{
	unsigned n = c->err_count < NVME_ERRLOG ? (unsigned)c->err_count : NVME_ERRLOG;

	/* Newest first. */
	for (unsigned i = 0; i < n; i++)
		memcpy(d + 64 * i, &c->errlog[(c->err_count - 1 - i) % NVME_ERRLOG], 64);
	return 64 * NVME_ERRLOG;
}

static size_t log_smart(struct nvme_ctrl *c, uint8_t *d)
{
	uint64_t now = nvme_now_ns();

	d[0] = 0;                                /* no critical warning */
	put16(d + 1, NOMINAL_TEMP);
	d[3] = 100;                              /* available spare */
	d[4] = 10;                               /* its threshold */
	d[5] = 0;                                /* percentage used */
	put128(d + 32, (c->units_read + 999) / 1000);
	put128(d + 48, (c->units_written + 999) / 1000);
	put128(d + 64, c->host_reads);
	put128(d + 80, c->host_writes);
	put128(d + 96, c->busy_ns / 60000000000ull);
	put128(d + 112, c->power_cycles);
	put128(d + 128, (now - c->start_ns) / 3600000000000ull);
	put128(d + 144, c->unsafe_shutdowns);
	put128(d + 160, c->media_errors);
	put128(d + 176, c->err_count);
	return 512;
}

static size_t log_fw(struct nvme_ctrl *c, uint8_t *d)
{
	(void)c;
	d[0] = 1; /* slot 1 active */
	put_str(d + 8, FW_REV, 8);
	return 512;
}

static size_t log_effects(struct nvme_ctrl *c, uint8_t *d)
{
	static const uint8_t admin[] = { NVME_ADM_DELETE_SQ, NVME_ADM_CREATE_SQ, NVME_ADM_GET_LOG,
					 NVME_ADM_DELETE_CQ, NVME_ADM_CREATE_CQ, NVME_ADM_IDENTIFY,
					 NVME_ADM_ABORT, NVME_ADM_SET_FEAT, NVME_ADM_GET_FEAT,
					 NVME_ADM_AER, NVME_ADM_DBBUF };

	(void)c;
	for (size_t i = 0; i < sizeof(admin); i++)
		put32(d + 4 * admin[i], 1);              /* CSUPP */
	put32(d + 1024 + 4 * NVME_CMD_FLUSH, 1);
	put32(d + 1024 + 4 * NVME_CMD_READ, 1);
	put32(d + 1024 + 4 * NVME_CMD_WRITE, 1 | 2);   /* CSUPP, LBCC */
	put32(d + 1024 + 4 * NVME_CMD_WRITE_ZEROES, 1 | 2);
	put32(d + 1024 + 4 * NVME_CMD_DSM, 1 | 2);
	return 4096;
}

static uint16_t get_log(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	unsigned lid = cmd->cdw10 & 0xff, csi = cmd->cdw14 >> 24;
	bool rae = cmd->cdw10 & (1u << 15);
	uint64_t numd = (((uint64_t)(cmd->cdw11 & 0xffff) << 16) | (cmd->cdw10 >> 16)) + 1;
	uint64_t len = numd * 4, off = cmd->cdw12 | ((uint64_t)cmd->cdw13 << 32);
	size_t size;
	uint8_t *d;
	uint16_t st;

	if ((off & 3) || len > NVME_MAX_XFER)
		return GEN(NVME_SC_INVALID_FIELD);
	d = calloc(1, len + sizeof(struct nvme_vfk_stats) + 4096);
	if (!d)
		return NVME_STATUS(NVME_SCT_GENERIC, NVME_SC_INTERNAL);
	switch (lid) {
	case NVME_LOG_ERROR:
		size = log_error(c, d);
		break;
	case NVME_LOG_SMART:
		if (cmd->nsid != 0 && cmd->nsid != 0xffffffffu) {
			/* LPA says the log is controller-wide only. */
			free(d);
			return GEN(NVME_SC_INVALID_FIELD);
		}
		size = log_smart(c, d);
		break;
	case NVME_LOG_FW_SLOT:
		size = log_fw(c, d);
		break;
	case NVME_LOG_CMD_EFFECTS:
		if (csi != 0) {
			free(d);
			return GEN(NVME_SC_INVALID_FIELD);
		}
		size = log_effects(c, d);
		break;
	case NVME_LOG_VFK_STATS:
		memcpy(d, &c->stats, sizeof(c->stats));
		((struct nvme_vfk_stats *)d)->sample_every = 8;
		((struct nvme_vfk_stats *)d)->messages = atomic_load(&c->msgs_seen);
		size = sizeof(c->stats);
		break;
	default:
		free(d);
		return CMD(NVME_SC_INVALID_LOG_PAGE);
	}
	if (off > size) {
		free(d);
		return GEN(NVME_SC_INVALID_FIELD);
	}
	/* Past the end of the log the host reads zeros. */
	if (off) {
		memmove(d, d + off, size - off);
		memset(d + size - off, 0, off);
	}
	st = nvme_data_out(c, cmd, d, len);
	free(d);
	if (!st && !rae) {
		/* Reading the log re-arms its event type. */
		if (lid == NVME_LOG_ERROR)
			c->aen_masked &= (uint8_t)~(1u << NVME_AER_TYPE_ERROR);
		if (lid == NVME_LOG_SMART)
			c->aen_masked &= (uint8_t)~(1u << NVME_AER_TYPE_SMART);
	}
	return st;
}

/* ---- features ---- */

static uint16_t set_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	unsigned fid = cmd->cdw10 & 0xff;
	uint32_t v = cmd->cdw11;

	if (cmd->cdw10 & (1u << 31))
		return CMD(NVME_SC_FEATURE_NOT_SAVEABLE);
	if (cmd->nsid != 0 && cmd->nsid != 1 && cmd->nsid != 0xffffffffu)
		return GEN(NVME_SC_INVALID_NS);
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		c->f_arb = v & 0xffffff07u;
		break;
	case NVME_FEAT_POWER_MGMT:
		if ((v & 0x1f) != 0) /* NPSS = 0: only state 0 */
			return GEN(NVME_SC_INVALID_FIELD);
		c->f_pm = v & 0xff;
		break;
	case NVME_FEAT_TEMP_THRESH: {
		unsigned sel = (v >> 16) & 0xf, thsel = (v >> 20) & 3;

		if (sel != 0 || thsel > 1)
			return GEN(NVME_SC_INVALID_FIELD);
		if (thsel == 0)
			c->f_tmp_over = v & 0xffff;
		else
			c->f_tmp_under = v & 0xffff;
		break;
	}
	case NVME_FEAT_ERR_RECOVERY:
		if (v & (1u << 16)) /* DULBE needs NSFEAT.DAE */
			return GEN(NVME_SC_INVALID_FIELD);
		c->f_errrec = v & 0xffff;
		break;
	case NVME_FEAT_VOLATILE_WC:
		if (c->vwc && !(v & 1) && c->dirty && !c->bk.ram) {
			/* Turning the cache off writes it back. */
			if (fdatasync(c->bk.fd_buf) < 0)
				return NVME_STATUS(NVME_SCT_MEDIA, NVME_SC_WRITE_FAULT);
			c->dirty = false;
		}
		c->vwc = v & 1;
		break;
	case NVME_FEAT_NUM_QUEUES: {
		uint32_t nsq = v & 0xffff, ncq = v >> 16;

		if (nsq == 0xffff || ncq == 0xffff)
			return GEN(NVME_SC_INVALID_FIELD);
		for (unsigned q = 1; q < NVME_NQ; q++)
			if (c->sq[q] || c->cq[q])
				return GEN(NVME_SC_CMD_SEQ_ERROR);
		c->nr_ioq = (nsq < NVME_MAX_IOQ - 1 ? nsq : NVME_MAX_IOQ - 1) + 1;
		c->nr_iocq = (ncq < NVME_MAX_IOQ - 1 ? ncq : NVME_MAX_IOQ - 1) + 1;
		*dw0 = (c->nr_ioq - 1) | ((c->nr_iocq - 1) << 16);
		break;
	}
	case NVME_FEAT_IRQ_COALESCE:
		c->f_coalesce = v & 0xffff;
		break;
	case NVME_FEAT_IRQ_CONFIG: {
		unsigned iv = v & 0xffff;

		if (iv >= NVME_NR_VECTORS)
			return GEN(NVME_SC_INVALID_FIELD);
		c->f_ivc_cd[iv] = v & (1u << 16);
		break;
	}
	case NVME_FEAT_WRITE_ATOMIC:
		c->f_atomic = v & 1;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		if (v & ~0xffu) /* OAES is 0: no notices to enable */
			return GEN(NVME_SC_INVALID_FIELD);
		c->f_aec = v;
		break;
	default:
		return GEN(NVME_SC_INVALID_FIELD);
	}
	return 0;
}

static uint16_t get_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	unsigned fid = cmd->cdw10 & 0xff, sel = (cmd->cdw10 >> 8) & 7;
	bool dflt = sel == 1 || sel == 2; /* nothing is saveable: saved = default */

	if (sel > 3)
		return GEN(NVME_SC_INVALID_FIELD);
	if (cmd->nsid != 0 && cmd->nsid != 1 && cmd->nsid != 0xffffffffu)
		return GEN(NVME_SC_INVALID_NS);
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		*dw0 = dflt ? 0 : c->f_arb;
		break;
	case NVME_FEAT_POWER_MGMT:
		*dw0 = dflt ? 0 : c->f_pm;
		break;
	case NVME_FEAT_TEMP_THRESH: {
		unsigned tsel = (cmd->cdw11 >> 16) & 0xf, thsel = (cmd->cdw11 >> 20) & 3;

		if (tsel != 0 || thsel > 1)
			return GEN(NVME_SC_INVALID_FIELD);
		if (thsel == 0)
			*dw0 = dflt ? WCTEMP : c->f_tmp_over;
		else
			*dw0 = dflt ? 0 : c->f_tmp_under;
		break;
	}
	case NVME_FEAT_ERR_RECOVERY:
		*dw0 = dflt ? 0 : c->f_errrec;
		break;
	case NVME_FEAT_VOLATILE_WC:
		*dw0 = dflt ? 1 : c->vwc;
		break;
	case NVME_FEAT_NUM_QUEUES:
		*dw0 = dflt ? (NVME_MAX_IOQ - 1) * 0x10001u
			    : (c->nr_ioq - 1) | ((c->nr_iocq - 1) << 16);
		break;
	case NVME_FEAT_IRQ_COALESCE:
		*dw0 = dflt ? 0 : c->f_coalesce;
		break;
	case NVME_FEAT_IRQ_CONFIG: {
		unsigned iv = cmd->cdw11 & 0xffff;

		if (iv >= NVME_NR_VECTORS)
			return GEN(NVME_SC_INVALID_FIELD);
		*dw0 = iv | (!dflt && c->f_ivc_cd[iv] ? 1u << 16 : 0);
		break;
	}
	case NVME_FEAT_WRITE_ATOMIC:
		*dw0 = dflt ? 0 : c->f_atomic;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		*dw0 = dflt ? 0 : c->f_aec;
		break;
	default:
		return GEN(NVME_SC_INVALID_FIELD);
	}
	if (sel == 3)
		*dw0 = 1u << 2; /* changeable, not saveable, not per namespace */
	return 0;
}

void nvme_admin_exec(struct nvme_ctrl *c, struct nvme_sq *sq, const struct nvme_sqe *cmd)
{
	uint32_t dw0 = 0;
	uint16_t st;

	if (NVME_FUSE(cmd->flags) || NVME_PSDT(cmd->flags)) {
		/* No fused operations; admin commands use PRPs. */
		nvme_complete(c, sq, cmd->cid, GEN(NVME_SC_INVALID_FIELD), 0);
		return;
	}
	switch (cmd->opc) {
	case NVME_ADM_DELETE_SQ:
		st = delete_sq(c, cmd);
		break;
	case NVME_ADM_CREATE_SQ:
		st = create_sq(c, cmd);
		break;
	case NVME_ADM_GET_LOG:
		st = get_log(c, cmd);
		break;
	case NVME_ADM_DELETE_CQ:
		st = delete_cq(c, cmd);
		break;
	case NVME_ADM_CREATE_CQ:
		st = create_cq(c, cmd);
		break;
	case NVME_ADM_IDENTIFY:
		st = identify(c, cmd);
		break;
	case NVME_ADM_ABORT:
		/* Commands are fetched as soon as they are seen: by the time
		 * an Abort runs, its target is already executing.  DW0 bit
		 * 0 says it was not aborted, which the spec allows. */
		st = 0;
		dw0 = 1;
		break;
	case NVME_ADM_SET_FEAT:
		st = set_features(c, cmd, &dw0);
		break;
	case NVME_ADM_GET_FEAT:
		st = get_features(c, cmd, &dw0);
		break;
	case NVME_ADM_AER:
		if (c->nr_aer > NVME_AERL) {
			st = CMD(NVME_SC_AER_LIMIT);
			break;
		}
		/* Outstanding indefinitely: it holds no completion slot. */
		c->aer_cid[c->nr_aer++] = cmd->cid;
		c->cq[0]->reserved--;
		sq->inflight--;
		nvme_deliver_events(c);
		return;
	case NVME_ADM_DBBUF:
		st = dbbuf_config(c, cmd);
		break;
	default:
		st = GEN(NVME_SC_INVALID_OPCODE);
		break;
	}
	nvme_complete(c, sq, cmd->cid, st, dw0);
}
