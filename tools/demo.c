/* SPDX-License-Identifier: MIT */
/*
 * vfiokit demo: the whole path in one command.  Starts `vfiokit serve
 * dma-test` as a separate process, connects the client library to it, and
 * drives DMA copies: into fd-backed memory the server maps, into memory
 * without an fd that the server reaches by DMA_READ/DMA_WRITE messages,
 * completing through MSI-X and then through INTx.  Prints what happened.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dma_test.h"
#include "driver.h"
#include "tools.h"

#define IOVA_MEMFD 0x100000ull
#define IOVA_ANON 0x40000000ull
#define MEMFD_SIZE (2u << 20)
#define ANON_SIZE (256u << 10)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

#define STEP(...) printf("[demo] " __VA_ARGS__)
#define CHECK(expr, what)                                                       \
	do {                                                                    \
		int rc_ = (expr);                                               \
		if (rc_) {                                                      \
			fprintf(stderr, "[demo] %s failed: %s\n", what,         \
				vfk_strerror(rc_));                             \
			goto out;                                               \
		}                                                               \
	} while (0)

/* Start `vfiokit serve dma-test` (this binary) and wait for its socket. */
static pid_t start_server(const char *sock, bool verbose)
{
	pid_t pid = fork();

	if (pid == 0) {
		char *args[] = { "vfiokit", "serve", "dma-test", "--socket", (char *)sock,
				 "--once", verbose ? "-v" : "-q", NULL };

		execv("/proc/self/exe", args);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 500; i++) {
		struct stat st;

		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return pid;
		usleep(10000);
	}
	return pid > 0 ? -pid : -1;
}

static int run_copy(struct vfk_device *dev, int efd, uint64_t src, uint64_t dst,
		    uint32_t len, uint32_t ctrl, double *us)
{
	double t0 = now_us();
	uint32_t st;
	int rc = dma_test_start(dev, src, dst, len, ctrl);

	if (rc)
		return rc;
	rc = dma_test_wait_irq(dev, efd, 5000);
	if (rc)
		return rc;
	*us = now_us() - t0;
	rc = dma_test_read32(dev, DMA_TEST_REG_STATUS, &st);
	if (rc)
		return rc;
	if (!(st & DMA_TEST_STATUS_DONE)) {
		uint32_t e = 0;

		dma_test_read32(dev, DMA_TEST_REG_ERRNO, &e);
		return e ? -(int)e : -EIO;
	}
	/* Acknowledge: clears DONE and, for INTx, lowers the line. */
	return dma_test_write32(dev, DMA_TEST_REG_STATUS, DMA_TEST_STATUS_DONE);
}

int cmd_demo(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION,
				      .log = tool_log, .log_user = "client ",
				      .log_level = VFK_LOG_WARN };
	char dir[] = "/tmp/vfiokit-demo.XXXXXX", sock[64];
	struct vfk_device *dev = NULL;
	struct vfk_device_info di;
	struct vfk_region_info ri;
	struct vfk_client_stats cs;
	uint8_t *mem = MAP_FAILED, *anon = NULL;
	int memfd = -1, efd = -1, status, c, result = 1;
	bool verbose = false;
	double us;
	pid_t pid = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		if (c == 'v') {
			verbose = true;
		} else if (c == 'h') {
			printf("usage: vfiokit demo [--verbose]\n\n"
			       "Start `vfiokit serve dma-test` on a temporary socket and drive\n"
			       "DMA copies through it with the client library: MSI-X completion,\n"
			       "memory without an fd (DMA_READ/DMA_WRITE messages), and INTx.\n");
			return 0;
		} else {
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/dma-test.sock", dir);
	pid = start_server(sock, verbose);
	if (pid <= 0) {
		fprintf(stderr, "[demo] the server did not start\n");
		if (pid < 0)
			pid = -pid;
		goto out;
	}
	STEP("started `vfiokit serve dma-test` (pid %d) on %s\n", (int)pid, sock);

	CHECK(vfk_device_open_socket(sock, &co, &dev), "connect");
	CHECK(vfk_device_get_info(dev, &di), "DEVICE_GET_INFO");
	STEP("connected over %s: %u regions, %u IRQ types, reset %s\n",
	     vfk_device_transport(dev), di.num_regions, di.num_irqs,
	     (di.flags & VFK_DEVICE_FLAGS_RESET) ? "supported" : "unsupported");
	CHECK(vfk_region_get_info(dev, 2, &ri), "region info BAR2");
	STEP("BAR2: %llu KiB, %u mmap area(s):", (unsigned long long)ri.size >> 10, ri.nr_areas);
	for (unsigned i = 0; i < ri.nr_areas; i++)
		printf(" [%#llx, +%#llx)", (unsigned long long)ri.areas[i].offset,
		       (unsigned long long)ri.areas[i].size);
	printf(" (the MSI-X table at %#x and PBA at %#x stay trapped)\n",
	       DMA_TEST_MSIX_TABLE, DMA_TEST_MSIX_PBA);
	CHECK(dma_test_enable(dev), "enable decoding and bus mastering");

	/* Client memory the server can map: a memfd. */
	memfd = memfd_create("demo-dma", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, MEMFD_SIZE) < 0) {
		perror("memfd");
		goto out;
	}
	mem = mmap(NULL, MEMFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		goto out;
	}
	CHECK(vfk_device_dma_map(dev, &(struct vfk_dma_mapping){
			.iova = IOVA_MEMFD, .size = MEMFD_SIZE, .vaddr = mem, .fd = memfd,
			.prot = VFK_DMA_READ | VFK_DMA_WRITE }), "DMA_MAP (memfd)");
	STEP("DMA-mapped %u MiB of memfd memory at IOVA %#llx\n", MEMFD_SIZE >> 20,
	     (unsigned long long)IOVA_MEMFD);

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(vfk_device_irq_set_eventfds(dev, VFK_PCI_MSIX, 0, 1, &efd), "SET_IRQS MSI-X");
	STEP("MSI-X vector 0 -> eventfd %d\n", efd);

	fill(mem, MEMFD_SIZE / 2, 1);
	memset(mem + MEMFD_SIZE / 2, 0, MEMFD_SIZE / 2);
	CHECK(run_copy(dev, efd, IOVA_MEMFD, IOVA_MEMFD + MEMFD_SIZE / 2, MEMFD_SIZE / 2,
		       DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(0), &us), "copy 1");
	if (memcmp(mem, mem + MEMFD_SIZE / 2, MEMFD_SIZE / 2)) {
		fprintf(stderr, "[demo] copy 1: destination differs from source\n");
		goto out;
	}
	STEP("copy 1: %u KiB memfd -> memfd, MSI-X interrupt after %.0f us; data verified\n",
	     MEMFD_SIZE / 2 >> 10, us);

	/* Client memory with no fd: the server must ask for every byte. */
	anon = aligned_alloc(4096, ANON_SIZE);
	if (!anon)
		goto out;
	memset(anon, 0, ANON_SIZE);
	CHECK(vfk_device_dma_map(dev, &(struct vfk_dma_mapping){
			.iova = IOVA_ANON, .size = ANON_SIZE, .vaddr = anon, .fd = -1,
			.prot = VFK_DMA_READ | VFK_DMA_WRITE }), "DMA_MAP (no fd)");
	fill(mem, ANON_SIZE, 2);
	CHECK(run_copy(dev, efd, IOVA_MEMFD, IOVA_ANON, ANON_SIZE,
		       DMA_TEST_CTRL_IRQ | DMA_TEST_CTRL_VECTOR(0), &us), "copy 2");
	vfk_device_get_stats(dev, &cs);
	if (memcmp(mem, anon, ANON_SIZE)) {
		fprintf(stderr, "[demo] copy 2: destination differs from source\n");
		goto out;
	}
	STEP("copy 2: %u KiB memfd -> memory without fd, through %llu DMA_WRITE message(s) "
	     "the client answered, %.0f us; data verified\n",
	     ANON_SIZE >> 10, (unsigned long long)cs.dma_served, us);

	/* INTx: level-triggered, automasked, unmasked by the client. */
	CHECK(vfk_device_irq_disable(dev, VFK_PCI_MSIX), "disable MSI-X");
	CHECK(vfk_device_irq_set_eventfds(dev, VFK_PCI_INTX, 0, 1, &efd), "SET_IRQS INTx");
	fill(anon, 4096, 3);
	CHECK(run_copy(dev, efd, IOVA_ANON, IOVA_MEMFD, 4096, DMA_TEST_CTRL_IRQ, &us),
	      "copy 3");
	CHECK(vfk_device_irq_mask(dev, VFK_PCI_INTX, 0, 1, false), "INTx unmask");
	if (memcmp(mem, anon, 4096)) {
		fprintf(stderr, "[demo] copy 3: destination differs from source\n");
		goto out;
	}
	STEP("copy 3: 4 KiB without fd -> memfd, INTx interrupt after %.0f us, "
	     "acknowledged and unmasked; data verified\n", us);
	result = 0;
out:
	if (dev)
		vfk_device_close(dev);
	if (pid > 0) {
		kill(pid, SIGTERM);
		if (waitpid(pid, &status, 0) == pid)
			STEP("server exited with status %d\n",
			     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	if (mem != MAP_FAILED)
		munmap(mem, MEMFD_SIZE);
	if (memfd >= 0)
		close(memfd);
	if (efd >= 0)
		close(efd);
	free(anon);
	unlink(sock);
	rmdir(dir);
	STEP("%s\n", result ? "FAILED" : "all steps passed");
	return result;
}
