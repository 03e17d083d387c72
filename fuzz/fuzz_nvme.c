/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the nvme model's command path: submission entries,
 * PRP lists, SGL segments and data come from fuzzed guest memory.
 *
 * One nvme device (a 1 MiB memory namespace, doorbells trapped so that a
 * doorbell write wakes its I/O thread at once) lives across inputs, with
 * 1 MiB of "guest memory" (a memfd) as its one DMA window.  No server: the
 * harness reaches the registers through the library's region access, as
 * the server's handlers do.  Each input:
 *
 *   n(1) io_tail(1) sqes[64 * (n % 33)] memory[...]
 *
 * The controller is disabled, the admin queues are set at 0x0 (SQ) and
 * 0x1000 (CQ), the entries are copied into the SQ and the rest of the input
 * into guest memory from 0x2000, the controller is enabled and the admin
 * SQ tail rung with n; once the admin commands completed (or the
 * controller went fatal, or 50 ms passed), I/O queue 1's SQ tail is rung
 * with io_tail, in case the commands created it (the seeds' CQ 1 is at
 * 0x3000), and waited for likewise.  Sanitizers and the
 * model's own checks do the rest; the harness checks that the controller
 * still answers its registers.
 *
 * Environment: FUZZ_NVME_VERBOSE=1 prints every completion's status (to
 * see what a seed or a crash input reached).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../server/internal.h"
#include "nvme.h"
#include "nvme_spec.h"

#define FUZZ_NAME "fuzz_nvme"
#include "fuzz_check.h"

#define MEM_SIZE (1u << 20)
#define ASQ 0x0u
#define ACQ 0x1000u
#define DATA 0x2000u

static struct vfk_dev *dev;
static uint8_t *mem;

static uint32_t rd32(uint32_t off)
{
	uint32_t v = 0;

	CHECK(vfk_dev_region_access(dev, false, 0, off, &v, 4) == 0);
	return v;
}

static void wr32(uint32_t off, uint32_t v)
{
	CHECK(vfk_dev_region_access(dev, true, 0, off, &v, 4) == 0);
}

static void wr64(uint32_t off, uint64_t v)
{
	CHECK(vfk_dev_region_access(dev, true, 0, off, &v, 8) == 0);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Wait until CSTS & mask == val, up to `us`. */
static bool wait_csts(uint32_t mask, uint32_t val, uint64_t us)
{
	uint64_t end = now_us() + us;

	while ((rd32(NVME_REG_CSTS) & mask) != val) {
		if (now_us() > end)
			return false;
		usleep(20);
	}
	return true;
}

static void setup(void)
{
	struct nvme_opts o = { .ram_size = MEM_SIZE, .trap_doorbells = true, .poll_us = 0 };
	uint16_t cmd = 0x6; /* memory decoding and bus mastering */
	int fd = memfd_create("guest", MFD_CLOEXEC);

	CHECK(fd >= 0 && ftruncate(fd, MEM_SIZE) == 0);
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(mem != MAP_FAILED);
	CHECK(nvme_create(&o, &dev) == 0);
	CHECK(vfk_dma_add(dev, 0, MEM_SIZE, VFK_PROT_READ | VFK_PROT_WRITE, fd, 0) == 0);
	close(fd);
	CHECK(vfk_dev_region_access(dev, true, VFK_PCI_CONFIG, 4, &cmd, 2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned n, io_tail;
	size_t sq_bytes, rest;
	uint64_t end;

	if (!dev)
		setup();
	if (size < 2)
		return 0;
	n = data[0] % 33;
	io_tail = data[1];
	data += 2;
	size -= 2;
	sq_bytes = (size_t)n * 64 < size ? (size_t)n * 64 : size;
	n = (unsigned)(sq_bytes / 64);

	/* A controller reset between inputs: CC.EN = 0, RDY goes. */
	wr32(NVME_REG_CC, 0);
	if (!wait_csts(NVME_CSTS_RDY, 0, 200000))
		return 0;
	memset(mem, 0, DATA);
	memcpy(mem + ASQ, data, sq_bytes);
	rest = size - sq_bytes < MEM_SIZE - DATA ? size - sq_bytes : MEM_SIZE - DATA;
	memcpy(mem + DATA, data + sq_bytes, rest);
	memset(mem + DATA + rest, 0, MEM_SIZE - DATA - rest);
	wr32(NVME_REG_AQA, 63u | 63u << 16);
	wr64(NVME_REG_ASQ, ASQ);
	wr64(NVME_REG_ACQ, ACQ);
	wr32(NVME_REG_CC, NVME_CC_EN | NVME_CC_DEFAULT_IO);
	if (!wait_csts(NVME_CSTS_RDY, NVME_CSTS_RDY, 200000))
		return 0;
	if (!n)
		return 0;
	wr32(NVME_SQTDBL(0), n);
	/* Until the last completion's phase tag shows, or the controller is
	 * fatal, or 50 ms. */
	end = now_us() + 50000;
	while (!(mem[ACQ + (n - 1) * 16 + 14] & 1) && !(rd32(NVME_REG_CSTS) & NVME_CSTS_CFS) &&
	       now_us() < end)
		usleep(10);
	wr32(NVME_CQHDBL(0), n % 64);
	if (io_tail) {
		wr32(NVME_SQTDBL(1), io_tail);
		end = now_us() + 20000;
		while (!(mem[0x3000 + (io_tail - 1) % 16 * 16 + 14] & 1) &&
		       !(rd32(NVME_REG_CSTS) & NVME_CSTS_CFS) && now_us() < end)
			usleep(10);
	}
	if (getenv("FUZZ_NVME_VERBOSE")) {
		for (unsigned i = 0; i < n; i++)
			fprintf(stderr, "admin %u: status %#x\n", i,
				(unsigned)(mem[ACQ + i * 16 + 14] | mem[ACQ + i * 16 + 15] << 8));
		for (unsigned i = 0; i < io_tail && i < 16; i++)
			fprintf(stderr, "io %u: status %#x\n", i,
				(unsigned)(mem[0x3000 + i * 16 + 14] | mem[0x3000 + i * 16 + 15] << 8));
	}
	/* Still answering. */
	CHECK(rd32(NVME_REG_VS) == 0x00010400);
	return 0;
}
