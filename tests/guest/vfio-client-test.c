/* SPDX-License-Identifier: MIT */
/*
 * vfio-client-test: the guest half of the kernel VFIO tests, built with
 * gcc -static against libvfiokit.a (tests/guest/vfio-kernel-test.sh).
 * Prints one "VFKTAP ok - ..." / "VFKTAP not ok - ..." line per check;
 * exits 0 only if every check passed.
 *
 *   vfio-client-test body BDF VENDOR:DEVICE [type1|iommufd]
 *       the shared client test body over the kernel (binding the function
 *       to vfio-pci first)
 *   vfio-client-test body-socket PATH VENDOR:DEVICE
 *       the same body over vfio-user
 *   vfio-client-test edu BDF
 *       QEMU's edu device: its DMA engine both ways through the IOMMU at
 *       IOVAs the client allocated, and its MSI, end to end
 *   vfio-client-test nvme-socket PATH
 *       an NVMe controller re-exported by `vfiokit serve passthrough`:
 *       CAP and VS, and Identify through the NVMe driver
 *   vfio-client-test nvme-io BDF
 *   vfio-client-test nvme-io-socket PATH
 *       vfiokit's own NVMe controller, bound to the guest's vfio-pci (or
 *       re-exported from there by `vfiokit serve passthrough`): the NVMe
 *       driver of devices/nvme writes and reads back patterns on two I/O
 *       queues, each completion signalled by its MSI-X vector
 *   vfio-client-test dmatest BDF
 *       vfiokit's dma-test bound to the guest's vfio-pci: its engine
 *       copies between buffers the client mapped through the IOMMU, and
 *       signals completion with an MSI-X vector
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "client_body.h"
#include "vfiokit/vfiokit.h"
#include "nvme_drv.h"
#include "dma_test.h"
#include "driver.h"

static int failed;

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("VFKTAP %s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		failed++;
}

static void report(void *arg, bool ok, const char *what)
{
	tap(ok, "%s%s", (const char *)arg, what);
}

static void log_line(void *user, enum vfk_log_level level, const char *msg)
{
	(void)user;
	printf("VFKTAP # [%d] %s\n", level, msg);
	fflush(stdout);
}

static struct vfk_client_opts copts(void)
{
	struct vfk_client_opts o = { .version = VFK_CLIENT_OPTS_VERSION, .log = log_line,
				     .log_level = VFK_LOG_INFO };

	return o;
}

static bool parse_ids(const char *s, struct body_expect *e)
{
	unsigned v, d;

	if (sscanf(s, "%x:%x", &v, &d) != 2)
		return false;
	e->vendor = (uint16_t)v;
	e->device = (uint16_t)d;
	return true;
}

static int cmd_body(struct vfk_device *dev, const char *ids, const char *label)
{
	struct body_expect e = { .irq_required = true };

	if (!parse_ids(ids, &e)) {
		fprintf(stderr, "bad ids %s\n", ids);
		return 2;
	}
	client_body_run(dev, &e, report, (void *)label);
	vfk_device_close(dev);
	return failed ? 1 : 0;
}

/* ---- edu ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool wait_fd(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &v, 8) == 8;
}

static int cmd_edu(const char *bdf)
{
	struct vfk_client_opts o = copts();
	struct vfk_device *dev;
	volatile uint8_t *bar;
	void *base;
	uint8_t *src = NULL, *dst = NULL;
	uint64_t s_iova = 0, d_iova = 0;
	uint16_t cmd;
	int efd, rc;
	bool done;
	int64_t t;

	rc = vfk_device_open_pci(bdf, VFK_PCI_OPEN_BIND, &o, &dev);
	tap(rc == 0, "edu: open %s through the kernel (%s)", bdf, vfk_strerror(rc));
	if (rc)
		return 1;
	tap(!strcmp(vfk_device_transport(dev), "vfio-type1"), "edu: transport %s",
	    vfk_device_transport(dev));
	rc = vfk_device_config_read(dev, 4, &cmd, 2);
	cmd |= 0x6; /* memory, bus master */
	rc |= vfk_device_config_write(dev, 4, &cmd, 2);
	tap(rc == 0, "edu: memory and bus master enabled");
	rc = vfk_region_map(dev, 0, &base);
	tap(rc == 0, "edu: BAR0 mapped (%s)", vfk_strerror(rc));
	if (rc)
		goto out;
	bar = base;
#define R32(o) (*(volatile uint32_t *)(bar + (o)))
#define W32(o, v) (*(volatile uint32_t *)(bar + (o)) = (v))
#define W64(o, v) (*(volatile uint64_t *)(bar + (o)) = (v))
#define R64(o) (*(volatile uint64_t *)(bar + (o)))
	tap((R32(0) & 0xff) == 0xed, "edu: identification register %#x", R32(0));
	W32(4, 0x12345678);
	tap(R32(4) == ~0x12345678u, "edu: liveness register inverts (%#x)", R32(4));

	/* MSI: edu's one vector to our eventfd, raised by software. */
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = vfk_device_irq_set_eventfds(dev, VFK_PCI_MSI, 0, 1, &efd);
	tap(rc == 0, "edu: MSI bound to an eventfd (%s)", vfk_strerror(rc));
	W32(0x60, 0x1);
	tap(wait_fd(efd, 3000), "edu: a raised interrupt arrives as MSI on the eventfd");
	tap(R32(0x24) & 0x1, "edu: interrupt status shows it (%#x)", R32(0x24));
	W32(0x64, 0x1);

	/* DMA: edu's engine takes 28-bit addresses. */
	vfk_device_dma_limit(dev, (1ull << 28) - 1);
	if (posix_memalign((void **)&src, 4096, 4096) || posix_memalign((void **)&dst, 4096, 4096)) {
		tap(false, "edu: two DMA pages allocated");
		goto out_irq;
	}
	for (int i = 0; i < 4096; i++) {
		src[i] = (uint8_t)(i * 7 + 3);
		dst[i] = 0;
	}
	rc = vfk_device_dma_map_vaddr(dev, src, 4096, VFK_DMA_READ, &s_iova);
	tap(rc == 0 && s_iova < (1u << 28), "edu: source mapped at IOVA %#llx (%s)",
	    (unsigned long long)s_iova, vfk_strerror(rc));
	rc = vfk_device_dma_map_vaddr(dev, dst, 4096, VFK_DMA_WRITE, &d_iova);
	tap(rc == 0 && d_iova < (1u << 28) && d_iova != s_iova,
	    "edu: destination mapped at IOVA %#llx (%s)", (unsigned long long)d_iova,
	    vfk_strerror(rc));
	/* RAM -> edu buffer (0x40000), with an interrupt when done. */
	W64(0x80, s_iova);
	W64(0x88, 0x40000);
	W64(0x90, 4096);
	W64(0x98, 0x1 | 0x4);
	for (t = now_ms(); (R64(0x98) & 1) && now_ms() - t < 5000;)
		usleep(1000);
	tap(!(R64(0x98) & 1), "edu: DMA into the device completed");
	tap(wait_fd(efd, 3000), "edu: DMA completion interrupt (MSI)");
	W32(0x64, R32(0x24));
	/* edu buffer -> RAM. */
	W64(0x80, 0x40000);
	W64(0x88, d_iova);
	W64(0x90, 4096);
	W64(0x98, 0x1 | 0x2 | 0x4);
	for (t = now_ms(); (R64(0x98) & 1) && now_ms() - t < 5000;)
		usleep(1000);
	tap(!(R64(0x98) & 1), "edu: DMA out of the device completed");
	done = wait_fd(efd, 3000);
	tap(done, "edu: second DMA completion interrupt (MSI)");
	W32(0x64, R32(0x24));
	tap(!memcmp(src, dst, 4096),
	    "edu: 4096 bytes made the round trip through the IOMMU");
	rc = vfk_device_dma_unmap_vaddr(dev, src, 4096);
	rc |= vfk_device_dma_unmap_vaddr(dev, dst, 4096);
	tap(rc == 0, "edu: DMA unmapped");
out_irq:
	vfk_device_irq_disable(dev, VFK_PCI_MSI);
	close(efd);
out:
	vfk_device_close(dev);
	free(src);
	free(dst);
	return failed ? 1 : 0;
}

/* ---- nvme through the passthrough server ---- */

static int cmd_nvme_socket(const char *path)
{
	struct vfk_client_opts o = copts();
	struct vfk_device *dev;
	struct vfk_region_info ri;
	uint64_t cap = 0;
	uint32_t vs = 0;
	uint16_t ids[2] = { 0, 0 }, cmd = 0;
	int rc;

	rc = vfk_device_open_socket(path, &o, &dev);
	tap(rc == 0, "passthrough: connect to %s (%s)", path, vfk_strerror(rc));
	if (rc)
		return 1;
	rc = vfk_device_config_read(dev, 0, ids, 4);
	tap(rc == 0 && ids[0] == 0x1b36 && ids[1] == 0x0010,
	    "passthrough: ids %04x:%04x are the real controller's", ids[0], ids[1]);
	rc = vfk_region_get_info(dev, 0, &ri);
	tap(rc == 0 && ri.size >= 0x2000, "passthrough: BAR0 of %#llx bytes",
	    (unsigned long long)ri.size);
	tap(rc == 0 && ri.mappable, "passthrough: BAR0 offered for mapping (%u area(s))",
	    ri.nr_areas);
	rc = vfk_device_config_read(dev, 4, &cmd, 2);
	cmd |= 0x6;
	rc |= vfk_device_config_write(dev, 4, &cmd, 2);
	tap(rc == 0, "passthrough: memory and bus master enabled");
	rc = vfk_region_read(dev, 0, 0, &cap, 8);
	tap(rc == 0 && cap && cap != ~0ull && (cap & 0xffff) > 0 && (cap >> 37 & 1),
	    "passthrough: CAP %#llx (MQES %llu, NVM command set)", (unsigned long long)cap,
	    (unsigned long long)(cap & 0xffff) + 1);
	rc = vfk_region_read(dev, 0, 8, &vs, 4);
	tap(rc == 0 && vs >= 0x10000 && vs != ~0u, "passthrough: VS %#x (NVMe %u.%u)", vs,
	    vs >> 16, (vs >> 8) & 0xff);
	{
		struct nvd_opts no = { .no_io = true };
		struct nvd *n = NULL;

		rc = nvd_open(dev, &no, &n);
		tap(rc == 0, "passthrough: the NVMe driver enables the controller (%s)",
		    vfk_strerror(rc));
		if (!rc) {
			uint16_t vid = (uint16_t)(n->id_ctrl[0] | n->id_ctrl[1] << 8);
			char sn[21], mn[41];

			memcpy(sn, n->id_ctrl + 4, 20);
			sn[20] = '\0';
			memcpy(mn, n->id_ctrl + 24, 40);
			mn[40] = '\0';
			tap(vid == 0x1b36, "passthrough: Identify Controller VID %#x", vid);
			tap(!strncmp(sn, "vfkpt0001", 9), "passthrough: Identify serial '%.20s'", sn);
			tap(strstr(mn, "QEMU") != NULL, "passthrough: Identify model '%.40s'", mn);
			nvd_close(n);
		}
	}
	vfk_device_close(dev);
	return failed ? 1 : 0;
}

/* ---- vfiokit's nvme and dma-test behind the guest's vfio-pci ---- */

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131 + seed * 7) ^ (i >> 9));
}

static bool same(const uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)((i * 131 + seed * 7) ^ (i >> 9)))
			return false;
	return true;
}

static int nvme_io(struct vfk_device *dev, const char *label)
{
	struct nvd_opts no = { .nr_io_queues = 2, .qsize = 64, .irq = true,
			       .buf_size = 1u << 20 };
	static const uint32_t nlbs[] = { 1, 8, 64, 1024 };
	struct nvd *n = NULL;
	int rc = nvd_open(dev, &no, &n);

	tap(rc == 0, "%s: the NVMe driver enables the controller with 2 I/O queues (%s)", label,
	    vfk_strerror(rc));
	if (rc)
		return 1;
	tap(n->id_ctrl[0] == 0x34 && n->id_ctrl[1] == 0x12, "%s: Identify VID %02x%02x", label,
	    n->id_ctrl[1], n->id_ctrl[0]);
	for (unsigned q = 1; q <= 2; q++) {
		for (unsigned i = 0; i < sizeof(nlbs) / sizeof(nlbs[0]); i++) {
			size_t len = (size_t)nlbs[i] * n->lba_size;
			uint64_t lba = 4096ull * q + 2048ull * i;
			uint32_t seed = q * 10 + i;
			int wrc, wirq, rrc, rirq;

			if (len > no.buf_size)
				continue;
			fill(n->buf, len, seed);
			wrc = nvd_rw(n, q, true, lba, nlbs[i], 0, 0);
			wirq = nvd_wait_irq(n, q, 3000);
			memset(n->buf, 0, len);
			rrc = nvd_rw(n, q, false, lba, nlbs[i], 0, 0);
			rirq = nvd_wait_irq(n, q, 3000);
			tap(wrc == 0 && rrc == 0 && same(n->buf, len, seed),
			    "%s: queue %u, %u blocks at LBA %llu written and read back (%d, %d)",
			    label, q, nlbs[i], (unsigned long long)lba, wrc, rrc);
			tap(wirq == 0 && rirq == 0, "%s: queue %u: both completions came as MSI-X vector %u",
			    label, q, q);
		}
	}
	rc = nvd_flush(n, 1);
	tap(rc == 0, "%s: flush (%d)", label, rc);
	nvd_close(n);
	return 0;
}

static int cmd_nvme_io(const char *where, bool socket)
{
	struct vfk_client_opts o = copts();
	struct vfk_device *dev;
	int rc = socket ? vfk_device_open_socket(where, &o, &dev)
			: vfk_device_open_pci(where, VFK_PCI_OPEN_BIND, &o, &dev);

	tap(rc == 0, "nvme %s: open (%s)", where, vfk_strerror(rc));
	if (rc)
		return 1;
	nvme_io(dev, socket ? "nvme re-exported" : "nvme via vfio-pci");
	vfk_device_close(dev);
	return failed ? 1 : 0;
}

static int cmd_dmatest(const char *bdf)
{
	struct vfk_client_opts o = copts();
	struct vfk_device *dev;
	const size_t len = 256u << 10;
	uint8_t *src = NULL, *dst = NULL;
	uint64_t s_iova = 0, d_iova = 0;
	int efd[DMA_TEST_MSIX_VECTORS], rc;
	uint32_t st = 0;

	rc = vfk_device_open_pci(bdf, VFK_PCI_OPEN_BIND, &o, &dev);
	tap(rc == 0, "dma-test: open %s through the kernel (%s)", bdf, vfk_strerror(rc));
	if (rc)
		return 1;
	rc = dma_test_read32(dev, DMA_TEST_REG_ID, &st);
	tap(rc == 0, "dma-test: ID register read (%s)", vfk_strerror(rc));
	rc = dma_test_enable(dev);
	rc |= dma_test_read32(dev, DMA_TEST_REG_ID, &st);
	tap(rc == 0 && st == DMA_TEST_MAGIC, "dma-test: enabled, ID %#x", st);
	for (unsigned v = 0; v < DMA_TEST_MSIX_VECTORS; v++)
		efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = vfk_device_irq_set_eventfds(dev, VFK_PCI_MSIX, 0, DMA_TEST_MSIX_VECTORS, efd);
	tap(rc == 0, "dma-test: %u MSI-X vectors bound (%s)", DMA_TEST_MSIX_VECTORS,
	    vfk_strerror(rc));
	if (posix_memalign((void **)&src, 4096, len) || posix_memalign((void **)&dst, 4096, len)) {
		tap(false, "dma-test: buffers allocated");
		goto out;
	}
	fill(src, len, 3);
	memset(dst, 0, len);
	rc = vfk_device_dma_map_vaddr(dev, src, len, VFK_DMA_READ, &s_iova);
	rc |= vfk_device_dma_map_vaddr(dev, dst, len, VFK_DMA_WRITE, &d_iova);
	tap(rc == 0, "dma-test: buffers mapped at IOVAs %#llx and %#llx",
	    (unsigned long long)s_iova, (unsigned long long)d_iova);
	for (unsigned v = 0; v < 2 && rc == 0; v++) {
		int w;

		memset(dst, 0, len);
		rc = dma_test_start(dev, s_iova, d_iova, (uint32_t)len,
				    DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(v + 1));
		w = dma_test_wait_irq(dev, efd[v + 1], 10000);
		tap(rc == 0 && w == 0, "dma-test: copy of %zu KiB signalled on MSI-X vector %u (%d)",
		    len >> 10, v + 1, w);
		dma_test_read32(dev, DMA_TEST_REG_STATUS, &st);
		tap(st & DMA_TEST_STATUS_DONE, "dma-test: STATUS %#x says done", st);
		tap(!memcmp(src, dst, len), "dma-test: the copy arrived intact through the IOMMU");
		dma_test_write32(dev, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE | DMA_TEST_STATUS_ERROR);
	}
	rc = vfk_device_dma_unmap_vaddr(dev, src, len);
	rc |= vfk_device_dma_unmap_vaddr(dev, dst, len);
	tap(rc == 0, "dma-test: buffers unmapped");
out:
	vfk_device_irq_disable(dev, VFK_PCI_MSIX);
	for (unsigned v = 0; v < DMA_TEST_MSIX_VECTORS; v++)
		close(efd[v]);
	vfk_device_close(dev);
	free(src);
	free(dst);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct vfk_client_opts o = copts();
	struct vfk_device *dev;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "body")) {
		unsigned flags = VFK_PCI_OPEN_BIND;

		if (argc > 4 && !strcmp(argv[4], "type1"))
			flags |= VFK_PCI_OPEN_TYPE1;
		if (argc > 4 && !strcmp(argv[4], "iommufd"))
			flags |= VFK_PCI_OPEN_IOMMUFD;
		rc = vfk_device_open_pci(argv[2], flags, &o, &dev);
		tap(rc == 0, "open %s (%s) through the kernel (%s)", argv[2], argv[3],
		    vfk_strerror(rc));
		if (rc)
			return 1;
		{
			static char label[64];

			snprintf(label, sizeof(label), "%s %s ", argv[3], argv[2]);
			return cmd_body(dev, argv[3], label);
		}
	}
	if (argc == 4 && !strcmp(argv[1], "body-socket")) {
		rc = vfk_device_open_socket(argv[2], &o, &dev);
		tap(rc == 0, "connect to %s (%s)", argv[2], vfk_strerror(rc));
		if (rc)
			return 1;
		return cmd_body(dev, argv[3], "dma-test ");
	}
	if (argc == 3 && !strcmp(argv[1], "edu"))
		return cmd_edu(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "nvme-socket"))
		return cmd_nvme_socket(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "nvme-io"))
		return cmd_nvme_io(argv[2], false);
	if (argc == 3 && !strcmp(argv[1], "nvme-io-socket"))
		return cmd_nvme_io(argv[2], true);
	if (argc == 3 && !strcmp(argv[1], "dmatest"))
		return cmd_dmatest(argv[2]);
	fprintf(stderr, "usage: see the comment at the top of vfio-client-test.c\n");
	return 2;
}
