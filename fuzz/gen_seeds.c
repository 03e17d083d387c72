/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz harnesses: valid messages of every
 * command, in the input formats of fuzz_format.h.
 *
 *   fuzz_seeds PROTO_DIR SERVER_DIR
 *
 * Seeds are generated at run time rather than kept in git, so they follow
 * the wire structures and the dma-test device as those change (the PCI
 * Express capability's offset is looked up on a real dma-test device).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/pci_regs.h>

#include "vfiokit/proto.h"
#include "vfiokit/server.h"

#include "dma_test.h"
#include "fuzz_format.h"
#include "nvme_spec.h"

struct buf {
	uint8_t b[1 << 17];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (n > sizeof(b->b) - b->n) {
		fprintf(stderr, "fuzz_seeds: seed too large\n");
		exit(1);
	}
	if (n)
		memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put16(struct buf *b, uint16_t v) { put(b, &v, 2); }
static void put32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put64(struct buf *b, uint64_t v) { put(b, &v, 8); }

static const char *out_dir;
static unsigned nwritten;

/* Write `b` as OUT_DIR/NNN-name (numbered so names never collide). */
static void save(const struct buf *b, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%03u-%s", out_dir, nwritten, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f) != 0) {
		fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	nwritten++;
}

/* ---- fuzz_proto seeds: sel, payload, params ---- */

static struct buf pl; /* the payload being built */

static void proto_seed(const char *name, unsigned sel, uint32_t a, uint32_t b,
		       uint64_t c)
{
	static struct buf s;

	s.n = 0;
	put8(&s, (uint8_t)sel);
	put(&s, pl.b, pl.n);
	put32(&s, a);
	put32(&s, b);
	put64(&s, c);
	save(&s, name);
	pl.n = 0;
}

static const char full_caps[] =
	"{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
	"\"pgsizes\":4096,\"max_dma_maps\":65535,\"write_multiple\":true,"
	"\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":1048576},"
	"\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
static const char qemu_caps[] =
	"{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
	"\"pgsizes\":4096,\"max_dma_maps\":65535,\"write_multiple\":true}}";
static const char odd_caps[] =
	"{\"future\":[1,2,{\"x\":null}],\"capabilities\":{\"unknown\":1.5,"
	"\"max_msg_fds\":100000,\"pgsizes\":18446744073709551615}}";

static void version_payload(struct buf *b, const char *json)
{
	put16(b, VFK_PROTO_MAJOR);
	put16(b, VFK_PROTO_MINOR);
	if (json)
		put(b, json, strlen(json) + 1);
}

static void hdr_bytes(struct buf *b, uint16_t id, uint16_t cmd, uint32_t size,
		      uint32_t flags, uint32_t error)
{
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = size, .flags = flags,
			     .error = error };
	uint8_t hb[VFK_HDR_SIZE];

	vfk_hdr_encode(hb, &h);
	put(b, hb, sizeof(hb));
}

static void gen_proto(void)
{
	/* headers of every command, as commands and as replies */
	for (unsigned cmd = 1; cmd < VFK_CMD_MAX; cmd++) {
		hdr_bytes(&pl, (uint16_t)cmd, (uint16_t)cmd, 32, 0, 0);
		proto_seed("hdr-cmd", PF_HDR, 0, 0, 0);
		hdr_bytes(&pl, (uint16_t)cmd, (uint16_t)cmd, 16,
			  VFK_F_TYPE_REPLY | VFK_F_ERROR, EINVAL);
		proto_seed("hdr-err", PF_HDR, 4096, 0, 0);
	}
	hdr_bytes(&pl, 7, VFK_CMD_REGION_WRITE, 40, VFK_F_NO_REPLY, 0);
	proto_seed("hdr-posted", PF_HDR, 0, 0, 0);

	version_payload(&pl, NULL);
	proto_seed("version-bare", PF_VERSION_DECODE, 0, 0, 0);
	version_payload(&pl, "");
	proto_seed("version-empty", PF_VERSION_DECODE, 0, 0, 0);
	version_payload(&pl, full_caps);
	proto_seed("version-full", PF_VERSION_DECODE, 0, 0, 0);
	version_payload(&pl, qemu_caps);
	proto_seed("version-qemu", PF_VERSION_DECODE, 0, 0, 0);
	version_payload(&pl, odd_caps);
	proto_seed("version-odd", PF_VERSION_DECODE, 0, 0, 0);

	/* encode: major, minor, present, bools, pad, then the numbers */
	put16(&pl, 0);
	put16(&pl, 0);
	put8(&pl, 0x7f);
	put8(&pl, 3);
	put16(&pl, 0);
	put32(&pl, 16);
	put32(&pl, 1 << 20);
	put64(&pl, 4096);
	put32(&pl, 65535);
	put32(&pl, 0);
	put64(&pl, 4096);
	put64(&pl, 1 << 20);
	proto_seed("version-encode", PF_VERSION_ENCODE, 1023, 0, 0);

	put32(&pl, 32);
	put32(&pl, VFK_DMA_READ | VFK_DMA_WRITE);
	put64(&pl, 0x1000);
	put64(&pl, 0x100000);
	put64(&pl, 0x10000);
	proto_seed("dma-map-fd", PF_DMA_MAP, 1, 0, 0);
	put32(&pl, 32);
	put32(&pl, VFK_DMA_READ);
	put64(&pl, 0);
	put64(&pl, 0x200000);
	put64(&pl, 0x1000);
	proto_seed("dma-map", PF_DMA_MAP, 0, 0, 0);

	put32(&pl, 24);
	put32(&pl, 0);
	put64(&pl, 0x100000);
	put64(&pl, 0x10000);
	proto_seed("dma-unmap", PF_DMA_UNMAP, 0, 0, 0);
	put32(&pl, 24);
	put32(&pl, VFK_DMA_UNMAP_ALL);
	put64(&pl, 0);
	put64(&pl, 0);
	proto_seed("dma-unmap-all", PF_DMA_UNMAP, 0, 0, 0);

	put32(&pl, 16); put32(&pl, 0); put32(&pl, 0); put32(&pl, 0);
	proto_seed("device-info-req", PF_DEVICE_INFO_REQ, 0, 0, 0);
	put32(&pl, 16); put32(&pl, 3); put32(&pl, 9); put32(&pl, 5);
	proto_seed("device-info-reply", PF_DEVICE_INFO_REPLY, 0, 0, 0);
	put32(&pl, 16); put32(&pl, 0); put32(&pl, 2); put32(&pl, 0);
	proto_seed("io-fds-req", PF_IO_FDS_REQ, 0, 0, 0);
	put32(&pl, 16); put32(&pl, 0); put32(&pl, 2); put32(&pl, 0);
	proto_seed("irq-info-req", PF_IRQ_INFO_REQ, 0, 0, 0);
	put32(&pl, 16); put32(&pl, 3); put32(&pl, 2); put32(&pl, 4);
	proto_seed("irq-info-reply", PF_IRQ_INFO_REPLY, 0, 0, 0);

	put32(&pl, 32); put32(&pl, 0); put32(&pl, 2); put32(&pl, 0);
	put64(&pl, 0); put64(&pl, 0);
	proto_seed("region-info-req", PF_REGION_INFO_REQ, 0, 0, 0);

	put32(&pl, 20);
	put32(&pl, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER);
	put32(&pl, VFK_PCI_MSIX); put32(&pl, 0); put32(&pl, 4);
	proto_seed("irq-set-eventfd", PF_IRQ_SET, 4, 0, 0);
	put32(&pl, 22);
	put32(&pl, VFK_IRQ_SET_DATA_BOOL | VFK_IRQ_SET_ACTION_MASK);
	put32(&pl, VFK_PCI_MSI); put32(&pl, 0); put32(&pl, 2);
	put8(&pl, 1); put8(&pl, 0);
	proto_seed("irq-set-bool", PF_IRQ_SET, 0, 0, 0);
	put32(&pl, 20);
	put32(&pl, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER);
	put32(&pl, VFK_PCI_INTX); put32(&pl, 0); put32(&pl, 0);
	proto_seed("irq-set-disable", PF_IRQ_SET, 0, 0, 0);

	put64(&pl, DMA_TEST_REG_ID); put32(&pl, 0); put32(&pl, 4);
	proto_seed("region-read", PF_REGION_READ_REQ, 4096, 0, 0);
	put64(&pl, DMA_TEST_REG_SCRATCH); put32(&pl, 0); put32(&pl, 4);
	put32(&pl, 0xdeadbeef);
	proto_seed("region-write", PF_REGION_WRITE_REQ, 4096, 0, 0);
	put64(&pl, 0x40); put32(&pl, 0); put32(&pl, 4);
	put32(&pl, 0x12345678);
	proto_seed("region-read-reply", PF_REGION_READ_REPLY, 0, 4, 0x40);
	put64(&pl, 0x40); put32(&pl, 0); put32(&pl, 4);
	proto_seed("region-write-reply", PF_REGION_WRITE_REPLY, 0, 4, 0x40);

	put64(&pl, 0x100000); put64(&pl, 8);
	proto_seed("dma-read", PF_DMA_READ_REQ, 4096, 0, 0);
	put64(&pl, 0x100000); put64(&pl, 8); put64(&pl, 0x0123456789abcdefull);
	proto_seed("dma-write", PF_DMA_WRITE_REQ, 4096, 0, 0);
	put64(&pl, 0x100000); put64(&pl, 8); put64(&pl, 0x0123456789abcdefull);
	proto_seed("dma-read-reply", PF_DMA_READ_REPLY, 0, 8, 0x100000);
	put64(&pl, 0x100000); put64(&pl, 8);
	proto_seed("dma-write-reply", PF_DMA_WRITE_REPLY, 0, 8, 0x100000);
	put64(&pl, 0x100000); put32(&pl, 8);
	proto_seed("dma-write-reply32", PF_DMA_WRITE_REPLY, 0, 8, 0x100000);

	put64(&pl, 2);
	for (unsigned i = 0; i < 2; i++) {
		put64(&pl, DMA_TEST_REG_SCRATCH);
		put32(&pl, 0);
		put32(&pl, 4);
		put64(&pl, 0x1111111111111111ull * (i + 1));
	}
	proto_seed("write-multi", PF_WRITE_MULTI, 0, 0, 0);

	put32(&pl, 16); put32(&pl, VFK_FEATURE_PROBE | VFK_FEATURE_GET | 1);
	put64(&pl, 0);
	proto_seed("feature", PF_FEATURE, 0, 0, 0);

	/* a region info with a SPARSE_MMAP capability, then a TYPE one */
	put32(&pl, 32 + 8 + 8 + 32 + 8 + 8);
	put32(&pl, VFK_REGION_FLAG_READ | VFK_REGION_FLAG_CAPS);
	put32(&pl, 2); put32(&pl, 32);
	put64(&pl, 0x10000); put64(&pl, 0);
	put16(&pl, VFK_REGION_CAP_SPARSE_MMAP); put16(&pl, 1); put32(&pl, 80);
	put32(&pl, 2); put32(&pl, 0);
	put64(&pl, 0); put64(&pl, 0x1000);
	put64(&pl, 0x3000); put64(&pl, 0xd000);
	put16(&pl, VFK_REGION_CAP_TYPE); put16(&pl, 1); put32(&pl, 0);
	put32(&pl, 1); put32(&pl, 2);
	proto_seed("caps-walk", PF_CAPS_WALK, 32, 32, 0);

	put32(&pl, 2); put32(&pl, 0);
	put64(&pl, 0); put64(&pl, 0x1000);
	put64(&pl, 0x3000); put64(&pl, 0xd000);
	proto_seed("sparse", PF_SPARSE, 0, 0, 0x10000);

	put16(&pl, VFK_REGION_CAP_SPARSE_MMAP); put16(&pl, 1); put8(&pl, 24);
	put32(&pl, 1); put32(&pl, 0); put64(&pl, 0); put64(&pl, 0x1000);
	put16(&pl, VFK_REGION_CAP_TYPE); put16(&pl, 1); put8(&pl, 5);
	put(&pl, "abcde", 5);
	put16(&pl, VFK_REGION_CAP_MSIX_MAPPABLE); put16(&pl, 1); put8(&pl, 0);
	proto_seed("caps-build", PF_CAPS_BUILD, 256, 31, 0);
	put16(&pl, 9); put16(&pl, 9); put8(&pl, 3);
	put(&pl, "xyz", 3);
	proto_seed("caps-build-small", PF_CAPS_BUILD, 40, 32, 0);
}

/* ---- fuzz_server seeds: cfg0 cfg1 records ---- */

static struct buf sv;  /* the server seed being built */
static struct buf msg; /* one message being built */
static uint16_t next_id;
static uint16_t pcie_off; /* of dma-test's PCI Express capability */
static unsigned extra_cfg1; /* SF_RUN for the second pass */

static void server_begin(unsigned cfg0, unsigned cfg1)
{
	sv.n = 0;
	next_id = 10;
	put8(&sv, (uint8_t)cfg0);
	put8(&sv, (uint8_t)(cfg1 | extra_cfg1));
}

static void record(unsigned ctl, const struct buf *m)
{
	put8(&sv, (uint8_t)ctl);
	put16(&sv, (uint16_t)m->n);
	put(&sv, m->b, m->n);
}

/* Add control bits to the record just written (the message in `msg`). */
static void last_ctl(unsigned bits)
{
	sv.b[sv.n - msg.n - RF_HDR] |= (uint8_t)bits;
}

/* Make `msg` a whole message from the payload in `pl`. */
static void mkmsg(uint16_t cmd, uint32_t flags)
{
	msg.n = 0;
	hdr_bytes(&msg, next_id++, cmd, (uint32_t)(VFK_HDR_SIZE + pl.n), flags, 0);
	put(&msg, pl.b, pl.n);
	pl.n = 0;
}

/* A command as one record with fds `fdkind`. */
static void cmd(uint16_t c, unsigned ctl)
{
	mkmsg(c, 0);
	record(ctl, &msg);
}

static void region_rw(unsigned ctl, uint32_t region, uint64_t off, uint32_t count,
		      const void *data)
{
	put64(&pl, off);
	put32(&pl, region);
	put32(&pl, count);
	if (data)
		put(&pl, data, count);
	cmd(data ? VFK_CMD_REGION_WRITE : VFK_CMD_REGION_READ, ctl);
}

static void wr32(uint32_t region, uint64_t off, uint32_t v)
{
	region_rw(0, region, off, 4, &v);
}

static void wr64(uint32_t region, uint64_t off, uint64_t v)
{
	region_rw(0, region, off, 8, &v);
}

static void rd(uint32_t region, uint64_t off, uint32_t count)
{
	region_rw(0, region, off, count, NULL);
}

static void dma_map(unsigned ctl, uint64_t iova, uint64_t size, uint64_t off,
		    uint32_t prot)
{
	put32(&pl, 32);
	put32(&pl, prot);
	put64(&pl, off);
	put64(&pl, iova);
	put64(&pl, size);
	cmd(VFK_CMD_DMA_MAP, ctl);
}

static void dma_unmap(uint64_t iova, uint64_t size, uint32_t flags)
{
	put32(&pl, 24);
	put32(&pl, flags);
	put64(&pl, iova);
	put64(&pl, size);
	cmd(VFK_CMD_DMA_UNMAP, 0);
}

static void set_irqs(unsigned ctl, uint32_t flags, uint32_t index, uint32_t start,
		     uint32_t count, const uint8_t *bools)
{
	put32(&pl, 20 + (bools ? count : 0));
	put32(&pl, flags);
	put32(&pl, index);
	put32(&pl, start);
	put32(&pl, count);
	if (bools)
		put(&pl, bools, count);
	cmd(VFK_CMD_DEVICE_SET_IRQS, ctl);
}

static void info16(uint16_t c, uint32_t index)
{
	put32(&pl, 16);
	put32(&pl, 0);
	put32(&pl, index);
	put32(&pl, 0);
	cmd(c, 0);
}

static void region_info(uint32_t index, uint32_t argsz)
{
	put32(&pl, argsz);
	put32(&pl, 0);
	put32(&pl, index);
	put32(&pl, 0);
	put64(&pl, 0);
	put64(&pl, 0);
	cmd(VFK_CMD_DEVICE_GET_REGION_INFO, 0);
}

/* Memory, I/O and bus master on. */
static void enable(void)
{
	uint16_t c = PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER;

	region_rw(0, VFK_PCI_CONFIG, PCI_COMMAND, 2, &c);
}

/* Program a dma-test copy and ring the doorbell. */
static void copy(uint64_t src, uint64_t dst, uint32_t len, uint32_t ctrl,
		 unsigned doorbell_ctl)
{
	uint32_t one = 1;

	wr64(0, DMA_TEST_REG_SRC, src);
	wr64(0, DMA_TEST_REG_DST, dst);
	wr32(0, DMA_TEST_REG_LEN, len);
	wr32(0, DMA_TEST_REG_CTRL, ctrl);
	region_rw(doorbell_ctl, 0, DMA_TEST_REG_DOORBELL, 4, &one);
}

static void save_dispatch(const struct buf *sb, const char *name);

/* A fuzz_server seed, and the same as a fuzz_dispatch one. */
static void save_server(const char *name)
{
	save(&sv, name);
	save_dispatch(&sv, name);
}

static void gen_server(void)
{
	uint8_t bools[4] = { 1, 0, 1, 1 };
	uint8_t data[256];

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;

	/* The client negotiates itself: every VERSION variant. */
	static const char *const jsons[] = { NULL, "", full_caps, qemu_caps, odd_caps };
	for (unsigned i = 0; i < 5; i++) {
		server_begin(SF_RAW, 0);
		version_payload(&pl, jsons[i]);
		cmd(VFK_CMD_VERSION, 0);
		info16(VFK_CMD_DEVICE_GET_INFO, 0);
		save_server("raw-version");
	}
	server_begin(SF_RAW, 0);
	info16(VFK_CMD_DEVICE_GET_INFO, 0); /* before VERSION */
	version_payload(&pl, qemu_caps);
	cmd(VFK_CMD_VERSION, 0);
	version_payload(&pl, qemu_caps);
	cmd(VFK_CMD_VERSION, 0); /* twice */
	save_server("raw-version-twice");

	/* Discovery: device, every region (short and long argsz), IRQs. */
	server_begin(0, 0);
	info16(VFK_CMD_DEVICE_GET_INFO, 0);
	for (uint32_t i = 0; i < VFK_PCI_NUM_REGIONS; i++) {
		region_info(i, 32);
		region_info(i, 512);
	}
	for (uint32_t i = 0; i < VFK_PCI_NUM_REGIONS; i++)
		info16(VFK_CMD_DEVICE_GET_REGION_IO_FDS, i);
	for (uint32_t i = 0; i < VFK_PCI_NUM_IRQS; i++)
		info16(VFK_CMD_DEVICE_GET_IRQ_INFO, i);
	save_server("discover");
	server_begin(SF_CLIENT_NO_FDS, SF_PAGE_64K);
	region_info(2, 512);
	region_info(4, 512);
	save_server("region-info-nofds-64k");

	/* Register and memory accesses of every region. */
	server_begin(SF_ALL_ONES, 0);
	rd(0, DMA_TEST_REG_ID, 4); /* decoding off */
	enable();
	rd(VFK_PCI_CONFIG, 0, 64);
	rd(VFK_PCI_CONFIG, 0x100, 16);
	rd(0, DMA_TEST_REG_ID, 8);
	wr32(0, DMA_TEST_REG_SCRATCH, 0x5a5a5a5a);
	rd(0, DMA_TEST_REG_SCRATCH, 4);
	rd(0, 0, 64);
	region_rw(0, 2, 0, 64, data);
	rd(2, 0, 64);
	region_rw(0, 2, DMA_TEST_MSIX_TABLE, 64, data);
	rd(2, DMA_TEST_MSIX_TABLE, 64);
	rd(2, DMA_TEST_MSIX_PBA, 8);
	region_rw(0, 2, 0x3000, 256, data);
	region_rw(0, 4, 0, 16, data);
	rd(4, 0, DMA_TEST_BAR4_SIZE);
	wr32(5, 0, 0x77);
	rd(5, 0, 8);
	rd(VFK_PCI_ROM, 0, 64);
	rd(VFK_PCI_ROM, 2040, 8);
	rd(VFK_PCI_VGA, 0, 4);
	save_server("regions");

	/* Posted writes, and a batch of writes. */
	server_begin(0, SF_WRITE_MULTI);
	enable();
	put64(&pl, DMA_TEST_REG_SCRATCH);
	put32(&pl, 0);
	put32(&pl, 4);
	put32(&pl, 0x01020304);
	mkmsg(VFK_CMD_REGION_WRITE, VFK_F_NO_REPLY);
	record(0, &msg);
	put64(&pl, 3);
	for (unsigned i = 0; i < 3; i++) {
		put64(&pl, i == 2 ? DMA_TEST_MSIX_TABLE + 12 : DMA_TEST_REG_SCRATCH);
		put32(&pl, i == 2 ? 2 : 0);
		put32(&pl, 4);
		put64(&pl, 0x1111111111111111ull * (i + 1));
	}
	cmd(VFK_CMD_REGION_WRITE_MULTI, 0);
	rd(0, DMA_TEST_REG_SCRATCH, 4);
	save_server("write-multi");

	/* Interrupts: MSI-X, MSI, INTx with its unmask eventfd, ERR, REQ. */
	server_begin(0, 0);
	enable();
	set_irqs(RF_FD_4EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_MSIX, 0, 4, NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_BOOL | VFK_IRQ_SET_ACTION_MASK, VFK_PCI_MSIX, 0, 4,
		 bools);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, VFK_PCI_MSIX, 1, 2,
		 NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_UNMASK, VFK_PCI_MSIX, 0, 4,
		 NULL);
	rd(2, DMA_TEST_MSIX_PBA, 8);
	set_irqs(0, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER, VFK_PCI_MSIX,
		 2, 1, NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, VFK_PCI_MSIX, 0, 0,
		 NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_MSI, 0, 1, NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_BOOL | VFK_IRQ_SET_ACTION_MASK, VFK_PCI_MSI, 0, 1,
		 bools);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_UNMASK, VFK_PCI_MSI, 0, 1,
		 NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, VFK_PCI_MSI, 0, 0,
		 NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_INTX, 0, 1, NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_UNMASK,
		 VFK_PCI_INTX, 0, 1, NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_MASK, VFK_PCI_INTX, 0, 1,
		 NULL);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_UNMASK, VFK_PCI_INTX, 0, 1,
		 NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_ERR, 0, 1, NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_REQ, 0, 1, NULL);
	set_irqs(RF_FD_PIPE, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_REQ, 0, 1, NULL);
	save_server("irqs");

	/* DMA windows backed by the client's memfd. */
	server_begin(0, 0);
	dma_map(RF_FD_MEMFD, 0x100000, 0x8000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
	dma_map(RF_FD_MEMFD, 0x108000, 0x8000, 0x8000, VFK_DMA_READ | VFK_DMA_WRITE);
	dma_map(RF_FD_MEMFD_RO, 0x200000, 0x1000, 0, VFK_DMA_READ);
	dma_map(RF_FD_MEMFD_RO, 0x300000, 0x1000, 0, VFK_DMA_WRITE);
	dma_map(RF_FD_PIPE, 0x400000, 0x1000, 0, VFK_DMA_READ);
	dma_map(0, 0x500000, 0x1000, 0, VFK_DMA_READ);
	dma_unmap(0x100000, 0x10000, 0);
	dma_unmap(0, 0, VFK_DMA_UNMAP_ALL);
	dma_map(RF_FD_MEMFD, 0x100000, 0x10000, 0, VFK_DMA_READ);
	save_server("dma-map");
	server_begin(0, 2 << SF_MAPS_SHIFT);
	for (unsigned i = 0; i < 3; i++)
		dma_map(0, 0x100000 * (i + 1), 0x1000, 0, VFK_DMA_READ);
	save_server("dma-map-limit");

	/* A copy between memfd windows, with an MSI-X interrupt. */
	server_begin(0, 0);
	enable();
	dma_map(RF_FD_MEMFD, 0x100000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
	set_irqs(RF_FD_4EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_MSIX, 0, 4, NULL);
	copy(0x100000, 0x108000, 0x1000, DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(1), 0);
	rd(0, DMA_TEST_REG_STATUS, 4);
	wr32(0, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE);
	save_server("copy-memfd");

	/* A copy with INTx, and one with MSI. */
	server_begin(0, 0);
	enable();
	dma_map(RF_FD_MEMFD, 0x100000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_INTX, 0, 1, NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_UNMASK,
		 VFK_PCI_INTX, 0, 1, NULL);
	copy(0x100000, 0x104000, 0x100, DMA_TEST_CTRL_IRQ, 0);
	rd(0, DMA_TEST_REG_STATUS, 4);
	wr32(0, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE);
	/* the line is still asserted: the unmask fires it again */
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_UNMASK,
		 VFK_PCI_INTX, 0, 1, NULL);
	copy(0x100000, 0x104000, 0x100, DMA_TEST_CTRL_IRQ, 0);
	rd(0, DMA_TEST_REG_STATUS, 4);
	last_ctl(RF_SIGNAL);
	rd(0, DMA_TEST_REG_STATUS, 4);
	set_irqs(0, VFK_IRQ_SET_DATA_NONE | VFK_IRQ_SET_ACTION_TRIGGER, VFK_PCI_INTX, 0, 0,
		 NULL);
	set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
		 VFK_PCI_MSI, 0, 1, NULL);
	copy(0x100000, 0x104000, 0x100, DMA_TEST_CTRL_IRQ, 0);
	save_server("copy-intx-msi");

	/* Copies through fd-less windows: DMA_READ/DMA_WRITE messages, with
	 * every kind of client (and none answering). */
	for (unsigned mode = 0; mode < 5; mode++) {
		unsigned cfg0 = mode < 4 ? SF_RESPONDER : 0;

		server_begin(cfg0 | (2u << SF_CLIENT_XFER_SHIFT), mode < 4 ? mode : 0);
		enable();
		dma_map(0, 0x200000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		dma_map(RF_FD_MEMFD, 0x210000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		copy(0x200000, 0x208000, 0x2000, 0, 0);
		/* both ways across the boundary of the two windows */
		copy(0x20f000, 0x21e000, 0x2000, 0, 0);
		copy(0x21e000, 0x20f000, 0x2000, 0, 0);
		rd(0, DMA_TEST_REG_STATUS, 4);
		rd(0, DMA_TEST_REG_ERRNO, 4);
		save_server("copy-msg");
	}

	/* The client answers a DMA request it saw (the server's first id),
	 * late: an unexpected reply. */
	server_begin(0, 0);
	enable();
	dma_map(0, 0x200000, 0x1000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
	copy(0x200000, 0x200800, 0x10, 0, 0);
	put64(&pl, 0x200000);
	put64(&pl, 0x10);
	put(&pl, data, 0x10);
	msg.n = 0;
	hdr_bytes(&msg, SF_SERVER_FIRST_ID, VFK_CMD_DMA_READ,
		  (uint32_t)(VFK_HDR_SIZE + pl.n), VFK_F_TYPE_REPLY, 0);
	put(&msg, pl.b, pl.n);
	pl.n = 0;
	record(0, &msg);
	save_server("late-dma-reply");

	/*
	 * Replies written before the server asks.  A record with fds ends
	 * the kernel's recvmsg(), so what follows two of them is still in
	 * the socket when the doorbell's copy runs: the server's DMA_READ
	 * (id SF_SERVER_FIRST_ID) and DMA_WRITE (the next id) find their
	 * answers there, and with the responder the commands written
	 * before are served while the server waits.
	 */
	for (unsigned v = 0; v < 2; v++) {
		uint32_t one = 1;

		server_begin(v ? SF_RESPONDER : 0, 0);
		enable();
		dma_map(0, 0x200000, 0x1000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		wr64(0, DMA_TEST_REG_SRC, 0x200000);
		wr64(0, DMA_TEST_REG_DST, 0x200800);
		wr32(0, DMA_TEST_REG_LEN, 0x10);
		region_rw(RF_NO_DISPATCH, 0, DMA_TEST_REG_DOORBELL, 4, &one);
		info16(VFK_CMD_DEVICE_GET_INFO, 0);
		last_ctl(RF_FD_EVENTFD | RF_NO_DISPATCH);
		info16(VFK_CMD_DEVICE_GET_INFO, 0);
		last_ctl(RF_FD_EVENTFD | RF_NO_DISPATCH);
		{
			struct buf r;

			r.n = 0;
			if (!v) {
				put64(&pl, 0x200000);
				put64(&pl, 0x10);
				put(&pl, data, 0x10);
				hdr_bytes(&r, SF_SERVER_FIRST_ID, VFK_CMD_DMA_READ,
					  (uint32_t)(VFK_HDR_SIZE + pl.n), VFK_F_TYPE_REPLY, 0);
				put(&r, pl.b, pl.n);
				pl.n = 0;
				put64(&pl, 0x200800);
				put64(&pl, 0x10);
				hdr_bytes(&r, SF_SERVER_FIRST_ID + 1, VFK_CMD_DMA_WRITE,
					  (uint32_t)(VFK_HDR_SIZE + pl.n), VFK_F_TYPE_REPLY, 0);
				put(&r, pl.b, pl.n);
				pl.n = 0;
			}
			rd(0, DMA_TEST_REG_STATUS, 4);
			put(&r, msg.b, msg.n);
			sv.n -= msg.n + RF_HDR; /* replace that record by `r` */
			put64(&pl, DMA_TEST_REG_SCRATCH);
			put32(&pl, 0);
			put32(&pl, 4);
			put32(&pl, 7);
			mkmsg(VFK_CMD_REGION_WRITE, 0);
			put(&r, msg.b, msg.n);
			record(0, &r);
		}
		rd(0, DMA_TEST_REG_STATUS, 4);
		rd(0, DMA_TEST_REG_COUNT, 4);
		save_server("dma-replies-ahead");
	}

	/* Reset, FLR, power management, features, migration, unknown. */
	server_begin(0, 0);
	enable();
	wr32(0, DMA_TEST_REG_SCRATCH, 1);
	cmd(VFK_CMD_DEVICE_RESET, 0);
	rd(0, DMA_TEST_REG_SCRATCH, 4);
	enable();
	if (pcie_off) {
		uint16_t flr = PCI_EXP_DEVCTL_BCR_FLR;

		region_rw(0, VFK_PCI_CONFIG, pcie_off + PCI_EXP_DEVCTL, 2, &flr);
	}
	rd(VFK_PCI_CONFIG, PCI_COMMAND, 2);
	put32(&pl, 16);
	put32(&pl, VFK_FEATURE_PROBE | VFK_FEATURE_GET | 1);
	put64(&pl, 0);
	cmd(VFK_CMD_DEVICE_FEATURE, 0);
	put64(&pl, 0);
	cmd(VFK_CMD_MIG_DATA_READ, 0);
	put64(&pl, 0x100000);
	put64(&pl, 8);
	cmd(VFK_CMD_DMA_READ, 0);
	cmd(14, 0);
	cmd(0x7777, 0);
	save_server("reset-misc");

	/* Framing: a message cut over two writes, two glued in one write, an
	 * oversized one, a bad header, fds on a cut message. */
	server_begin(SF_XFER_MASK & 1, 0); /* server max_data_xfer 4096 */
	info16(VFK_CMD_DEVICE_GET_INFO, 0);
	{
		struct buf whole = msg;
		struct buf part;

		part.n = 0;
		put(&part, whole.b, 10);
		record(RF_NO_DISPATCH, &part);
		part.n = 0;
		put(&part, whole.b + 10, whole.n - 10);
		record(0, &part);
		part.n = 0;
		put(&part, whole.b, whole.n);
		put(&part, whole.b, whole.n);
		record(0, &part);
		put64(&pl, 0);
		put32(&pl, 0);
		put32(&pl, 8192);
		for (unsigned i = 0; i < 8192 / sizeof(data); i++)
			put(&pl, data, sizeof(data));
		cmd(VFK_CMD_REGION_WRITE, 0); /* oversized */
		msg.n = 0;
		hdr_bytes(&msg, 1, VFK_CMD_DEVICE_GET_INFO, 16, 0x40, 0);
		record(0, &msg); /* unknown flag */
		/* fds on bytes where no message starts: dropped */
		part.n = 0;
		put(&part, whole.b, 8);
		record(RF_FD_EVENTFD | RF_NO_DISPATCH, &part);
		part.n = 0;
		put(&part, whole.b + 8, whole.n - 8);
		record(RF_FD_EVENTFD, &part);
	}
	save_server("framing");

	/* Clients in turn: the second meets what the first left (device
	 * state stays; windows and eventfds go). */
	for (unsigned v = 0; v < 3; v++) {
		unsigned cfg0 = v == 1 ? SF_RAW : v == 2 ? SF_RESPONDER : 0;
		uint32_t one = 1;

		server_begin(cfg0, 0);
		if (v == 1) {
			version_payload(&pl, qemu_caps);
			cmd(VFK_CMD_VERSION, 0);
		}
		enable();
		dma_map(RF_FD_MEMFD, 0x100000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		dma_map(0, 0x200000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		set_irqs(RF_FD_4EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_TRIGGER,
			 VFK_PCI_MSIX, 0, 4, NULL);
		set_irqs(RF_FD_EVENTFD, VFK_IRQ_SET_DATA_EVENTFD | VFK_IRQ_SET_ACTION_UNMASK,
			 VFK_PCI_INTX, 0, 1, NULL);
		region_rw(0, 2, DMA_TEST_MSIX_TABLE, 64, data);
		copy(0x100000, 0x200000, 0x100, DMA_TEST_CTRL_IRQ, 0);
		wr64(0, DMA_TEST_REG_SRC, 0x100000);
		/* a doorbell whose copy runs only after the client left */
		region_rw(RF_NO_DISPATCH, 0, DMA_TEST_REG_DOORBELL, 4, &one);
		if (v == 1) {
			version_payload(&pl, NULL);
			cmd(VFK_CMD_VERSION, RF_RECONNECT);
		} else {
			info16(VFK_CMD_DEVICE_GET_INFO, 0);
			last_ctl(RF_RECONNECT);
		}
		rd(2, DMA_TEST_MSIX_TABLE, 64);
		rd(2, DMA_TEST_MSIX_PBA, 8);
		rd(0, DMA_TEST_REG_STATUS, 4);
		rd(VFK_PCI_CONFIG, PCI_COMMAND, 2);
		copy(0x100000, 0x200000, 0x100, DMA_TEST_CTRL_IRQ, 0);
		dma_map(RF_FD_MEMFD, 0x100000, 0x10000, 0, VFK_DMA_READ | VFK_DMA_WRITE);
		info16(VFK_CMD_DEVICE_GET_INFO, 0);
		info16(VFK_CMD_DEVICE_GET_INFO, 0);
		last_ctl(RF_RECONNECT);
		save_server("reconnect");
	}

	/* Backpressure: big reads left unread. */
	server_begin(2, 0); /* server max_data_xfer 65536 */
	enable();
	for (unsigned i = 0; i < 8; i++)
		region_rw(RF_NO_DRAIN, 2, 0, 0x10000, NULL);
	info16(VFK_CMD_DEVICE_GET_INFO, 0);
	save_server("backpressure");
}

/* Where dma-test's PCI Express capability is (0 if not found). */
static uint16_t find_pcie(void)
{
	struct vfk_dev *dev;
	uint16_t off = 0;
	unsigned guard = 0;

	if (dma_test_create(NULL, &dev))
		return 0;
	for (uint32_t p = vfk_config_read(dev, PCI_CAPABILITY_LIST, 1) & 0xfc;
	     p && guard < 48; p = vfk_config_read(dev, p + 1, 1) & 0xfc, guard++) {
		if (vfk_config_read(dev, p, 1) == PCI_CAP_ID_EXP) {
			off = (uint16_t)p;
			break;
		}
	}
	dma_test_destroy(dev);
	return off;
}

/* ---- fuzz_dispatch seeds: the fuzz_server seeds, in its format ---- */

static const char *dispatch_dir; /* NULL: none written */
static unsigned ndispatch;

/* The same messages as fuzz_server seed `sb`, as fuzz_dispatch records:
 * configuration bytes dropped, fd kinds mapped, other control bits gone. */
static void save_dispatch(const struct buf *sb, const char *name)
{
	static const uint8_t fdmap[8] = { 0, 1, 2, 3, 4, 4, 5, 2 };
	static struct buf d;
	const char *saved = out_dir;
	unsigned saved_n = nwritten;
	size_t at = 2;
	bool first = true;

	if (!dispatch_dir || sb->n < 2 || extra_cfg1)
		return;
	d.n = 0;
	while (at + RF_HDR <= sb->n) {
		uint8_t ctl = sb->b[at];
		size_t len = (size_t)sb->b[at + 1] | (size_t)sb->b[at + 2] << 8;
		uint8_t dctl = fdmap[ctl & RF_FD_MASK];

		if (at + RF_HDR + len > sb->n)
			break;
		if (ctl & RF_RECONNECT)
			break; /* one client per input here */
		if (first && (sb->b[0] & SF_RAW))
			dctl |= DF_RAW_START;
		first = false;
		put8(&d, dctl);
		put16(&d, (uint16_t)len);
		put(&d, sb->b + at + RF_HDR, len);
		at += RF_HDR + len;
	}
	out_dir = dispatch_dir;
	nwritten = ndispatch;
	save(&d, name);
	ndispatch = nwritten;
	out_dir = saved;
	nwritten = saved_n;
}

/* ---- fuzz_client seeds: a server's answers to the fixed session ---- */

static void crec(struct buf *b, uint8_t ctl, const void *p, size_t len)
{
	put8(b, ctl);
	put16(b, (uint16_t)len);
	put(b, p, len);
}

static void client_region(struct buf *b, uint32_t index, uint32_t flags, uint64_t size,
			  bool fd)
{
	struct vfk_region_info_wire w = { .argsz = sizeof(w), .flags = flags, .index = index,
					  .size = size };

	crec(b, fd ? CF_FD : 0, &w, sizeof(w));
}

/* The answers up to the DMA_UNMAP; `dma` is put before the unmap's. */
static void client_seed(const char *name, const struct buf *dma)
{
	static const char js[] = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}";
	struct vfk_device_info_wire di = { sizeof(di), VFK_DEVICE_FLAGS_PCI | VFK_DEVICE_FLAGS_RESET,
					   9, 5 };
	static struct buf b, v;
	uint8_t rr[16 + 64] = { 0 };
	struct vfk_region_rw_wire *rw = (void *)rr;

	b.n = v.n = 0;
	put16(&v, 0);
	put16(&v, 0);
	put(&v, js, sizeof(js));
	crec(&b, 0, v.b, v.n);
	crec(&b, 0, &di, sizeof(di));
	client_region(&b, 0, VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE, 0x1000, false);
	client_region(&b, 1, 0, 0, false);
	client_region(&b, 2, VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE | VFK_REGION_FLAG_MMAP,
		      0x10000, true);
	for (uint32_t i = 3; i < 6; i++)
		client_region(&b, i, 0, 0, false);
	client_region(&b, 6, VFK_REGION_FLAG_READ, 0x800, false);
	client_region(&b, 7, VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE, 256, false);
	client_region(&b, 8, 0, 0, false);
	for (uint32_t i = 0; i < 5; i++) {
		struct vfk_irq_info_wire ii = { sizeof(ii), VFK_IRQ_INFO_EVENTFD, i,
						i == 2 ? 4 : 1 };

		crec(&b, 0, &ii, sizeof(ii));
	}
	rw->region = VFK_PCI_CONFIG;
	rw->count = 64;
	rr[16] = 0x34;
	rr[17] = 0x12;
	crec(&b, 0, rr, 16 + 64);                 /* config read */
	rw->region = 0;
	rw->count = 4;
	crec(&b, 0, rr, 16 + 4);                  /* BAR0 read */
	rw->offset = 4;
	crec(&b, 0, rr, 16);                      /* BAR0 write */
	crec(&b, 0, "", 0);                     /* DMA_MAP */
	if (dma)
		put(&b, dma->b, dma->n);
	{
		struct vfk_dma_unmap_wire u = { sizeof(u), 0, CF_DMA_IOVA, CF_DMA_SIZE };

		crec(&b, 0, &u, sizeof(u));       /* DMA_UNMAP */
	}
	crec(&b, 0, "", 0);                     /* DEVICE_RESET */
	save(&b, name);
}

static void gen_client(void)
{
	static struct buf dma, p;

	client_seed("client-session", NULL);
	/* A DMA_READ of the client's window before the unmap's reply. */
	put64(&p, CF_DMA_IOVA + 8);
	put64(&p, 16);
	crec(&dma, CF_SERVER_REQ, p.b, p.n);
	client_seed("client-dma-read", &dma);
	/* A DMA_WRITE into it. */
	dma.n = 0;
	p.n = 0;
	put64(&p, CF_DMA_IOVA + 64);
	put64(&p, 8);
	put64(&p, 0x1122334455667788ull);
	crec(&dma, CF_SERVER_REQ | CF_WRITE, p.b, p.n);
	client_seed("client-dma-write", &dma);
	/* Errors and a close halfway. */
	dma.n = 0;
	crec(&dma, CF_ERROR, "\x05", 1);
	client_seed("client-error", &dma);
	dma.n = 0;
	crec(&dma, CF_CLOSE, "", 0);
	client_seed("client-close", &dma);
}

/* ---- fuzz_nvme seeds: n io_tail sqes memory (fuzz_nvme.c) ---- */

static void nvme_sqe(struct buf *b, uint8_t opc, uint8_t flags, uint16_t cid, uint32_t nsid,
		     uint64_t prp1, uint64_t prp2, uint32_t c10, uint32_t c11, uint32_t c12)
{
	struct nvme_sqe e = { .opc = opc, .flags = flags, .cid = cid, .nsid = nsid,
			      .prp1 = prp1, .prp2 = prp2, .cdw10 = c10, .cdw11 = c11,
			      .cdw12 = c12 };

	put(b, &e, sizeof(e));
}

/* Guest memory from 0x2000: `mem` bytes of it after the SQEs. */
static void gen_nvme(void)
{
	static struct buf b;
	static uint8_t memory[0x6000]; /* guest 0x2000-0x7fff */
	struct nvme_sqe io[4];
	uint32_t prps[2] = { 0x7000, 0 };

	/* Set Features (number of queues), Identify controller and namespace,
	 * I/O CQ 1 at 0x3000 and SQ 1 at 0x4000 (16 entries); two I/O
	 * commands in SQ 1: a write of block 8 from 0x6000, a read back to
	 * 0x7000, then one with a PRP list at 0x5000. */
	for (int variant = 0; variant < 3; variant++) {
		b.n = 0;
		memset(memory, 0, sizeof(memory));
		put8(&b, 5);
		put8(&b, variant == 2 ? 3 : 2);
		nvme_sqe(&b, 0x09, 0, 1, 0, 0, 0, 0x07, 0x00010001, 0); /* Set Features 7 */
		nvme_sqe(&b, NVME_ADM_IDENTIFY, 0, 2, 0, 0x2000, 0, 1, 0, 0);
		nvme_sqe(&b, NVME_ADM_IDENTIFY, 0, 3, 1, 0x2000, 0, 0, 0, 0);
		nvme_sqe(&b, NVME_ADM_CREATE_CQ, 0, 4, 0, 0x3000, 0, (15u << 16) | 1, 1, 0);
		nvme_sqe(&b, 0x01, 0, 5, 0, 0x4000, 0, (15u << 16) | 1, (1u << 16) | 1, 0);
		memset(io, 0, sizeof(io));
		io[0] = (struct nvme_sqe){ .opc = NVME_CMD_WRITE, .cid = 1, .nsid = 1,
					   .prp1 = 0x6000, .cdw10 = 8, .cdw12 = 7 };
		io[1] = (struct nvme_sqe){ .opc = NVME_CMD_READ, .cid = 2, .nsid = 1,
					   .prp1 = 0x7000, .cdw10 = 8, .cdw12 = 7 };
		/* 8 KiB: PRP1 at 0x6000, PRP2 a list at 0x5000 -> 0x7000. */
		io[2] = (struct nvme_sqe){ .opc = NVME_CMD_READ, .cid = 3, .nsid = 1,
					   .prp1 = 0x6800, .prp2 = 0x5000, .cdw10 = 16,
					   .cdw12 = 15 };
		if (variant == 1) {
			/* An SGL data block instead (PSDT 1). */
			struct { uint64_t addr; uint32_t len; uint8_t rsvd[3], type; } d =
				{ 0x6000, 4096, { 0 }, 0 };

			io[0].flags = 1u << 6;
			memcpy(&io[0].prp1, &d, 16);
		}
		memcpy(memory + 0x2000, io, sizeof(io));       /* SQ 1 at 0x4000 */
		memcpy(memory + 0x3000, prps, sizeof(prps));   /* PRP list at 0x5000 */
		for (int k = 0; k < 0x1000; k++)
			memory[0x4000 + k] = (uint8_t)(k * 7);  /* data at 0x6000 */
		put(&b, memory, sizeof(memory));
		save(&b, variant == 0 ? "nvme-prp" : variant == 1 ? "nvme-sgl" : "nvme-prp-list");
	}
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 6) {
		fprintf(stderr, "usage: %s PROTO_DIR SERVER_DIR [CLIENT_DIR [DISPATCH_DIR [NVME_DIR]]]\n",
			argv[0]);
		return 2;
	}
	if (argc >= 5)
		dispatch_dir = argv[4];
	pcie_off = find_pcie();
	out_dir = argv[1];
	gen_proto();
	printf("fuzz_seeds: %u fuzz_proto seeds in %s\n", nwritten, out_dir);
	nwritten = 0;
	out_dir = argv[2];
	gen_server();
	/* The same again, served by vfk_server_run(). */
	extra_cfg1 = SF_RUN;
	gen_server();
	printf("fuzz_seeds: %u fuzz_server seeds in %s\n", nwritten, out_dir);
	if (argc >= 4) {
		nwritten = 0;
		out_dir = argv[3];
		gen_client();
		printf("fuzz_seeds: %u fuzz_client seeds in %s\n", nwritten, out_dir);
	}
	if (dispatch_dir)
		printf("fuzz_seeds: %u fuzz_dispatch seeds in %s\n", ndispatch, dispatch_dir);
	if (argc == 6) {
		nwritten = 0;
		out_dir = argv[5];
		gen_nvme();
		printf("fuzz_seeds: %u fuzz_nvme seeds in %s\n", nwritten, out_dir);
	}
	return 0;
}
