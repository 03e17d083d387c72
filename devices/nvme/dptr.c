/* SPDX-License-Identifier: MIT */
/*
 * Data pointers: PRP entries and lists, and SGLs, turned into iovecs of
 * host pointers into client memory.
 *
 * Everything here comes from the guest and is checked: offsets, list
 * alignment, descriptor types, lengths.  The walks are bounded by the
 * transfer length (at most MDTS), never by what the lists say, so a list
 * that points at itself ends with an error rather than a loop.  Lists and
 * descriptors are copied out of client memory once, before use.
 */
#include <errno.h>
#include <string.h>

#include "nvme_int.h"

#define GEN(sc) NVME_ERR(NVME_SCT_GENERIC, (sc))

struct dbuild {
	struct nvme_ctrl *c;
	struct iovec *iov;
	unsigned max, n;
	uint32_t prot;
};

/* Append [addr, addr+len) of client memory, merging with the previous
 * piece when the host addresses continue it.  Behind a guest IOMMU one
 * data block or PRP page can span many DMA windows: the range is walked
 * a few pieces at a time, however many it has. */
static uint16_t add(struct dbuild *b, uint64_t addr, uint64_t len)
{
	struct vfk_sg sg[8];

	while (len) {
		int n = vfk_dma_translate_prefix(b->c->dev, addr, len, b->prot, sg, 8);
		uint64_t done;

		if (n <= 0)
			return GEN(NVME_SC_DATA_XFER_ERROR);
		for (int i = 0; i < n; i++) {
			struct iovec *prev = b->n ? &b->iov[b->n - 1] : NULL;

			if (!sg[i].host)
				return GEN(NVME_SC_DATA_XFER_ERROR); /* no fd: see nvme.h */
			if (prev && (uint8_t *)prev->iov_base + prev->iov_len == sg[i].host) {
				prev->iov_len += sg[i].len;
				continue;
			}
			if (b->n == b->max)
				return GEN(NVME_SC_DATA_XFER_ERROR);
			b->iov[b->n].iov_base = sg[i].host;
			b->iov[b->n].iov_len = sg[i].len;
			b->n++;
		}
		done = sg[n - 1].iova + sg[n - 1].len - addr;
		addr += done;
		len -= done;
	}
	return 0;
}

/* Copy `len` bytes of client memory at `iova` (PRP lists, SGL segments,
 * DSM ranges): translation only, never a DMA message from this thread. */
static int copy_in(struct nvme_ctrl *c, uint64_t iova, void *buf, uint64_t len)
{
	struct vfk_sg sg[8];
	uint8_t *p = buf;

	while (len) {
		int n = vfk_dma_translate_prefix(c->dev, iova, len, VFK_PROT_READ, sg, 8);

		if (n <= 0)
			return n < 0 ? n : -EFAULT;
		for (int i = 0; i < n; i++) {
			if (!sg[i].host)
				return -EFAULT;
			memcpy(p, sg[i].host, sg[i].len);
			p += sg[i].len;
			iova += sg[i].len;
			len -= sg[i].len;
		}
	}
	return 0;
}

#define MAX_PRP_ENTRIES (NVME_MAX_XFER / 4096 + 2)

static uint16_t map_prp(struct dbuild *b, uint64_t prp1, uint64_t prp2, uint64_t len)
{
	uint64_t ps = b->c->page_size, mask = ps - 1, n, list;
	uint64_t ents[MAX_PRP_ENTRIES];
	unsigned hops = 0;
	uint16_t st;

	if (prp1 & 3)
		return GEN(NVME_SC_PRP_OFFSET_INVALID);
	n = ps - (prp1 & mask);
	if (n > len)
		n = len;
	if ((st = add(b, prp1, n)))
		return st;
	len -= n;
	if (len == 0)
		return 0;
	if (len <= ps) {
		if (prp2 & mask)
			return GEN(NVME_SC_PRP_OFFSET_INVALID);
		return add(b, prp2, len);
	}
	list = prp2;
	if (list & 7)
		return GEN(NVME_SC_PRP_OFFSET_INVALID);
	while (len) {
		uint64_t slots = (ps - (list & mask)) / 8;
		uint64_t need = (len + ps - 1) / ps;
		/* The last slot of a list page points to the next page when
		 * more entries are needed than the page holds. */
		uint64_t take = need <= slots ? need : slots - 1;
		uint64_t rd = need <= slots ? need : slots;

		if (++hops > MAX_PRP_ENTRIES || rd > MAX_PRP_ENTRIES)
			return GEN(NVME_SC_PRP_OFFSET_INVALID);
		if (copy_in(b->c, list, ents, rd * 8))
			return GEN(NVME_SC_DATA_XFER_ERROR);
		for (uint64_t i = 0; i < take; i++) {
			uint64_t chunk = len < ps ? len : ps;

			if (ents[i] & mask)
				return GEN(NVME_SC_PRP_OFFSET_INVALID);
			if ((st = add(b, ents[i], chunk)))
				return st;
			len -= chunk;
		}
		if (len) {
			list = ents[take];
			if (list & mask)
				return GEN(NVME_SC_PRP_OFFSET_INVALID);
		}
	}
	return 0;
}

#define SGL_MAX_DESCS 4096u  /* descriptors walked for one command */
#define SGL_CHUNK 64u

static uint16_t map_sgl(struct dbuild *b, const struct nvme_sqe *cmd, uint64_t len)
{
	struct nvme_sgl_desc chunk[SGL_CHUNK];
	uint64_t seg_addr = 0, left = len;
	uint32_t seg_n = 1, idx = 0;  /* the command's descriptor: a segment of 1 */
	bool in_cmd = true, last_seg = true;
	unsigned walked = 0;
	uint16_t st;

	memcpy(&chunk[0], &cmd->prp1, sizeof(chunk[0]));
	for (;;) {
		const struct nvme_sgl_desc *d;
		unsigned type, sub;

		if (idx == seg_n) {
			/* A segment that is not the last must end with a
			 * segment descriptor, which moves on before here. */
			if (!last_seg)
				return GEN(NVME_SC_SGL_INVALID_LAST);
			break;
		}
		if (!in_cmd && idx % SGL_CHUNK == 0) {
			uint32_t k = seg_n - idx < SGL_CHUNK ? seg_n - idx : SGL_CHUNK;

			if (copy_in(b->c, seg_addr + (uint64_t)idx * 16, chunk, (uint64_t)k * 16))
				return GEN(NVME_SC_DATA_XFER_ERROR);
		}
		if (++walked > SGL_MAX_DESCS)
			return GEN(NVME_SC_SGL_INVALID_COUNT);
		d = &chunk[in_cmd ? 0 : idx % SGL_CHUNK];
		type = d->type >> 4;
		sub = d->type & 0xf;
		idx++;
		switch (type) {
		case NVME_SGL_DATA_BLOCK:
			if (sub != 0)
				return GEN(NVME_SC_SGL_INVALID_TYPE);
			if (d->len > left)
				return GEN(NVME_SC_SGL_INVALID_DATA);
			if ((st = add(b, d->addr, d->len)))
				return st;
			left -= d->len;
			break;
		case NVME_SGL_SEGMENT:
		case NVME_SGL_LAST_SEGMENT:
			if (sub != 0)
				return GEN(NVME_SC_SGL_INVALID_TYPE);
			/* Only as the last entry of a segment that is not
			 * itself the last one. */
			if (idx != seg_n || (last_seg && !in_cmd) || d->len == 0 ||
			    d->len % 16)
				return GEN(NVME_SC_SGL_INVALID_LAST);
			seg_addr = d->addr;
			seg_n = d->len / 16;
			idx = 0;
			last_seg = type == NVME_SGL_LAST_SEGMENT;
			in_cmd = false;
			break;
		default:
			return GEN(NVME_SC_SGL_INVALID_TYPE);
		}
	}
	if (left)
		return GEN(NVME_SC_SGL_INVALID_DATA);
	return 0;
}

uint16_t nvme_map_data(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t len,
		       uint32_t prot, struct iovec *iov, unsigned max, unsigned *niov)
{
	struct dbuild b = { .c = c, .iov = iov, .max = max, .prot = prot };
	uint16_t st;

	switch (NVME_PSDT(cmd->flags)) {
	case 0:
		st = map_prp(&b, cmd->prp1, cmd->prp2, len);
		break;
	case 1: /* SGL, metadata pointer is a buffer (none here) */
	case 2:
		st = map_sgl(&b, cmd, len);
		break;
	default:
		st = GEN(NVME_SC_INVALID_FIELD);
		break;
	}
	*niov = b.n;
	return st;
}

static uint16_t data_copy(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf,
			  size_t len, bool out)
{
	struct iovec iov[16];
	unsigned n;
	uint8_t *p = buf;
	uint16_t st = nvme_map_data(c, cmd, len, out ? VFK_PROT_WRITE : VFK_PROT_READ,
				    iov, 16, &n);

	if (st)
		return st;
	for (unsigned i = 0; i < n; i++) {
		if (out)
			memcpy(iov[i].iov_base, p, iov[i].iov_len);
		else
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	return 0;
}

uint16_t nvme_data_out(struct nvme_ctrl *c, const struct nvme_sqe *cmd, const void *buf,
		       size_t len)
{
	return data_copy(c, cmd, (void *)buf, len, true);
}

uint16_t nvme_data_in(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf, size_t len)
{
	return data_copy(c, cmd, buf, len, false);
}
