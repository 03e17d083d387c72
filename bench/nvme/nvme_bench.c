/* SPDX-License-Identifier: MIT */
/*
 * vfiokit-nvme-bench: a userspace NVMe driver on the client library
 * (devices/nvme/nvme_drv.c) against `vfiokit serve nvme`, host only.
 *
 * For each backing (memory, file), completion mode (polled, MSI-X
 * interrupt), queue depth (1, 32) and workload (4 KiB random read, random
 * write) it reports IOPS, the latency seen by the driver (p50/p99, from
 * writing the SQE to seeing the CQE), the device's own time per command
 * (fetch to completion, sampled, from its statistics log page), the
 * vfio-user messages per I/O, and the server's CPU use.  Then the server's
 * CPU use while idle, with mapped and with trapped doorbells.
 *
 * The server is a child process (`$VFIOKIT serve nvme`, or --vfiokit
 * PATH) pinned to the last CPU; this process is pinned to the first.
 * Nothing here fails because something is slow.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nvme_drv.h"

#define BS 4096u
#define MAX_SAMPLES (8u << 20)

static const char *vfiokit = "vfiokit";
static double seconds = 3.0;
static unsigned file_mb = 1024;
static const char *file_dir = "/var/tmp";
static bool quick;
static int nr_cpus = 1;   /* CPUs this process may use, before pinning */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ncpus(void)
{
	cpu_set_t s;

	if (sched_getaffinity(0, sizeof(s), &s))
		return 1;
	return CPU_COUNT(&s);
}

static void pin(pid_t pid, int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(pid, sizeof(s), &s);
}

struct server {
	pid_t pid;
	char dir[64], sock[96];
};

static int server_stop(struct server *s);

static int server_start(struct server *s, const char *const *extra)
{
	const char *argv[24];
	int n = 0;

	strcpy(s->dir, "/tmp/vfk-nvme-bench.XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->sock, sizeof(s->sock), "%s/s.sock", s->dir);
	argv[n++] = vfiokit;
	argv[n++] = "serve";
	argv[n++] = "nvme";
	argv[n++] = "-q";
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	while (extra && *extra && n < 22)
		argv[n++] = *extra++;
	argv[n] = NULL;
	s->pid = fork();
	if (s->pid < 0) {
		int err = -errno;

		server_stop(s);
		return err;
	}
	if (s->pid == 0) {
		if (nr_cpus > 1)
			pin(0, nr_cpus - 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 400; i++) {
		struct stat st;

		if (stat(s->sock, &st) == 0)
			return 0;
		usleep(5000);
	}
	server_stop(s);
	return -ETIMEDOUT;
}

static int server_stop(struct server *s)
{
	int st = 0;

	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, &st, 0);
	}
	unlink(s->sock);
	rmdir(s->dir);
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* utime + stime of a process, in seconds. */
static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * What a process that never stops running reads as, in CPU seconds per
 * second, on the server's CPU.  On a shared virtual machine this can be
 * well under 1 (the hypervisor runs something else on that CPU); the
 * server's figures are divided by it so that 100% means one whole core.
 */
static double calibrate(void)
{
	int pfd[2];
	pid_t pid;
	double c0, r;
	uint64_t t0;

	if (pipe(pfd))
		return 1;
	pid = fork();
	if (pid == 0) {
		if (nr_cpus > 1)
			pin(0, nr_cpus - 1);
		close(pfd[1]);
		fcntl(pfd[0], F_SETFL, O_NONBLOCK);
		for (char ch;;)
			if (read(pfd[0], &ch, 1) == 0)
				_exit(0);
	}
	close(pfd[0]);
	usleep(100000);
	c0 = cpu_seconds(pid);
	t0 = now_ns();
	usleep(quick ? 500000 : 2000000);
	r = (cpu_seconds(pid) - c0) / ((now_ns() - t0) / 1e9);
	close(pfd[1]);
	waitpid(pid, NULL, 0);
	return r > 0.05 ? r : 1;
}

static double core = 1; /* calibrate() */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double iops, p50_us, p99_us, srv_p50_us, srv_p99_us, msgs_per_io, cpu;
	uint64_t ios;
};

static uint32_t *samples;

static int server_latency(struct nvd *d, double *p50, double *p99)
{
	static struct nvme_vfk_stats st;
	struct nvme_sqe cmd = { .opc = NVME_ADM_GET_LOG, .nsid = 0xffffffffu };
	uint32_t numd = (uint32_t)(sizeof(st) / 4 - 1);
	struct nvme_cqe cqe;
	uint64_t iova;
	void *buf = nvd_alloc(d, sizeof(st), &iova);
	unsigned n;

	*p50 = *p99 = 0;
	if (!buf)
		return -ENOMEM;
	cmd.cdw10 = NVME_LOG_VFK_STATS | ((numd & 0xffff) << 16);
	cmd.cdw11 = numd >> 16;
	nvd_build_prp(d, &cmd, iova, sizeof(st), d->list, d->list_iova);
	if (nvd_cmd(d, 0, &cmd, &cqe) || nvd_status(&cqe))
		return -EIO;
	memcpy(&st, buf, sizeof(st));
	n = st.nr_samples;
	if (!n)
		return 0;
	qsort(st.lat_ns, n, sizeof(st.lat_ns[0]), cmp_u32);
	*p50 = st.lat_ns[n / 2] / 1000.0;
	*p99 = st.lat_ns[n * 99 / 100] / 1000.0;
	return 0;
}

/* Queue a 4 KiB read or write with CID `cid` at a random 4 KiB-aligned
 * block below `span_blocks`, into buffer slot `cid`; *x is the xorshift
 * state. */
static void push_random(struct nvd *d, struct nvd_queue *q, bool write, uint16_t cid,
			uint64_t span_blocks, uint64_t *x)
{
	struct nvme_sqe c = { .opc = write ? NVME_CMD_WRITE : NVME_CMD_READ, .nsid = 1 };
	uint64_t slba;

	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	slba = (*x % (span_blocks / 8)) * 8;
	c.cid = cid;
	c.cdw10 = (uint32_t)slba;
	c.cdw11 = (uint32_t)(slba >> 32);
	c.cdw12 = BS / 512 - 1;
	c.prp1 = d->buf_iova + (uint64_t)cid * BS;
	nvd_sq_push(d, q, &c);
}

/* One measurement: `qd` commands kept in flight on I/O queue 1. */
static int run(struct nvd *d, pid_t srv, bool write, unsigned qd, bool irq, uint64_t span_blocks,
	       double secs, struct result *r)
{
	struct nvd_queue *q = &d->ioq[1];
	uint64_t sub[256], x = 0x2545f4914f6cdd1dull ^ now_ns();
	uint64_t t_end, t0, req0, nsamp = 0, ios = 0;
	struct vfk_client_stats cs;
	double cpu0;
	bool measuring = false;

	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < qd; i++) {
		sub[i] = now_ns();
		push_random(d, q, write, (uint16_t)i, span_blocks, &x);
	}
	nvd_sq_ring(d, q);
	/* Warm-up, then the measurement. */
	t0 = now_ns();
	t_end = t0 + (uint64_t)(0.2e9);
	vfk_device_get_stats(d->dev, &cs);
	req0 = cs.requests;
	cpu0 = cpu_seconds(srv);
	for (;;) {
		struct nvme_cqe e;
		unsigned got = 0;
		uint64_t now;

		while (nvd_cq_pop(d, q, &e)) {
			uint16_t i = e.cid;

			now = now_ns();
			if (nvd_status(&e)) {
				fprintf(stderr, "nvme-bench: command failed, status %#x\n", nvd_status(&e));
				return -EIO;
			}
			if (measuring) {
				if (nsamp < MAX_SAMPLES)
					samples[nsamp++] = (uint32_t)(now - sub[i]);
				ios++;
			}
			sub[i] = now_ns();
			push_random(d, q, write, i, span_blocks, &x);
			got++;
		}
		if (got) {
			nvd_cq_ring(d, q);
			nvd_sq_ring(d, q);
		} else if (irq) {
			struct pollfd p = { d->efd[1], POLLIN, 0 };
			uint64_t v;

			if (poll(&p, 1, 1000) == 1 && read(d->efd[1], &v, 8) < 0)
				return -errno;
		}
		now = now_ns();
		if (now < t_end)
			continue;
		if (!measuring) {
			measuring = true;
			t0 = now;
			t_end = t0 + (uint64_t)(secs * 1e9);
			vfk_device_get_stats(d->dev, &cs);
			req0 = cs.requests;
			cpu0 = cpu_seconds(srv);
			continue;
		}
		break;
	}
	{
		double el = (now_ns() - t0) / 1e9;

		vfk_device_get_stats(d->dev, &cs);
		r->cpu = (cpu_seconds(srv) - cpu0) / el / core;
		r->iops = ios / el;
		r->ios = ios;
		r->msgs_per_io = ios ? (double)(cs.requests - req0) / ios : 0;
	}
	/* Drain what is still in flight. */
	for (unsigned left = qd; left;) {
		struct nvme_cqe e;

		if (nvd_wait_cqe(d, q, &e, 5000))
			return -ETIMEDOUT;
		left--;
	}
	nvd_cq_ring(d, q);
	qsort(samples, nsamp, sizeof(samples[0]), cmp_u32);
	if (nsamp) {
		r->p50_us = samples[nsamp / 2] / 1000.0;
		r->p99_us = samples[nsamp * 99 / 100] / 1000.0;
	}
	return server_latency(d, &r->srv_p50_us, &r->srv_p99_us);
}

static int make_file(char *path, size_t cap)
{
	size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk);
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	snprintf(path, cap, "%s/vfk-nvme-bench.XXXXXX", file_dir);
	fd = mkstemp(path);
	if (fd < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	/* Real data, so that reads reach the disk rather than holes. */
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (unsigned i = 0; i < file_mb && !rc; i++)
		if (write(fd, buf, chunk) != (ssize_t)chunk)
			rc = -EIO;
	fsync(fd);
	close(fd);
	free(buf);
	if (rc)
		unlink(path);
	return rc;
}

static int bench_backing(const char *name, const char *const *args)
{
	static const unsigned qds[] = { 1, 32 };
	struct server s;
	int rc, st;

	rc = server_start(&s, args);
	if (rc) {
		fprintf(stderr, "nvme-bench: cannot start %s serve nvme: %s\n", vfiokit,
			vfk_strerror(rc));
		return rc;
	}
	for (int irq = 0; irq < 2; irq++) {
		struct vfk_device *dev;
		struct nvd *d;
		struct nvd_opts o = { .nr_io_queues = 1, .qsize = 64, .irq = irq,
				      .buf_size = 64 * BS };

		rc = vfk_device_open_socket(s.sock, NULL, &dev);
		if (rc)
			break;
		rc = nvd_open(dev, &o, &d);
		if (rc) {
			vfk_device_close(dev);
			break;
		}
		for (unsigned k = 0; k < 2 && !rc; k++)
			for (int w = 0; w < 2 && !rc; w++) {
				struct result r;

				rc = run(d, s.pid, w, qds[k], irq, d->nsze, quick ? 0.3 : seconds, &r);
				if (rc)
					break;
				printf("%-6s %-9s %-5s QD%-3u %9.0f %8.2f %8.2f %8.2f %8.2f %8.3f %6.0f%%\n",
				       name, irq ? "interrupt" : "polled", w ? "write" : "read", qds[k],
				       r.iops, r.p50_us, r.p99_us, r.srv_p50_us, r.srv_p99_us,
				       r.msgs_per_io, r.cpu * 100);
				fflush(stdout);
			}
		nvd_close(d);
		vfk_device_close(dev);
	}
	st = server_stop(&s);
	if (!rc && st)
		rc = -ECHILD;
	return rc;
}

/* The server's CPU use while a controller is enabled but idle. */
static int bench_idle(const char *what, const char *const *args)
{
	struct vfk_device *dev;
	struct nvd *d;
	struct nvd_opts o = { .nr_io_queues = 1, .dbbuf = true };
	struct server s;
	double c0, secs = quick ? 1.0 : 5.0;
	uint64_t t0;
	int rc;

	if ((rc = server_start(&s, args)))
		return rc;
	rc = vfk_device_open_socket(s.sock, NULL, &dev);
	if (!rc) {
		rc = nvd_open(dev, &o, &d);
		if (!rc) {
			/* One I/O, then nothing: the thread backs off. */
			nvd_rw(d, 1, false, 0, 8, 0, 0);
			usleep(200000);
			c0 = cpu_seconds(s.pid);
			t0 = now_ns();
			usleep((useconds_t)(secs * 1e6));
			printf("idle, %-32s server CPU %5.2f%% of one core\n", what,
			       100 * (cpu_seconds(s.pid) - c0) / ((now_ns() - t0) / 1e9) / core);
			/* And how fast it answers the first I/O after idling
			 * (median of 5, 300 ms of idleness before each). */
			{
				uint32_t lat[5];

				for (unsigned i = 0; i < 5; i++) {
					uint64_t a;

					usleep(300000);
					a = now_ns();
					nvd_rw(d, 1, false, 0, 8, 0, 0);
					lat[i] = (uint32_t)(now_ns() - a);
				}
				qsort(lat, 5, sizeof(lat[0]), cmp_u32);
				printf("idle, %-32s first I/O after idling: %.1f us (median of 5)\n",
				       what, lat[2] / 1e3);
			}
			nvd_close(d);
		}
		vfk_device_close(dev);
	}
	if (server_stop(&s) && !rc)
		rc = -ECHILD;
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vfiokit", required_argument, NULL, 'v' },
		{ "seconds", required_argument, NULL, 's' },
		{ "file-mb", required_argument, NULL, 'f' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char file[128], size_arg[32];
	int c, rc;

	if (getenv("VFIOKIT"))
		vfiokit = getenv("VFIOKIT");
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'v':
			vfiokit = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'f':
			file_mb = (unsigned)atoi(optarg);
			break;
		case 'd':
			file_dir = optarg;
			break;
		case 'q':
			quick = true;
			break;
		default:
			printf("usage: vfiokit-nvme-bench [--vfiokit PATH] [--seconds S] [--file-mb N]\n"
			       "                          [--dir DIR] [--quick]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (quick && file_mb > 64)
		file_mb = 64;
	samples = malloc(MAX_SAMPLES * sizeof(*samples));
	if (!samples)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	nr_cpus = ncpus();
	if (nr_cpus > 1)
		pin(0, 0); /* the server goes to the last CPU */
	printf("vfiokit nvme benchmark: 4 KiB random I/O, one I/O queue, %.1f s per point, %d CPUs\n",
	       quick ? 0.3 : seconds, nr_cpus);
	core = calibrate();
	printf("latency: driver-side from SQE written to CQE seen; server: fetch to CQE (sampled)\n");
	printf("CPU: a busy loop on the server's CPU reads as %.0f%%; server CPU is scaled by it\n",
	       core * 100);
	printf("%-6s %-9s %-5s %-5s %9s %8s %8s %8s %8s %8s %7s\n", "store", "completion", "op", "QD",
	       "IOPS", "p50 us", "p99 us", "srv p50", "srv p99", "msg/IO", "srv CPU");
	snprintf(size_arg, sizeof(size_arg), "%uM", 1024u);
	{
		const char *args[] = { "--size", size_arg, NULL };

		rc = bench_backing("memory", args);
	}
	if (!rc && (rc = make_file(file, sizeof(file))) == 0) {
		const char *args[] = { "--backing", file, NULL };

		rc = bench_backing("file", args);
		unlink(file);
	}
	if (!rc) {
		const char *a1[] = { "--size", "64M", NULL };
		const char *a2[] = { "--size", "64M", "--trap-doorbells", NULL };

		rc = bench_idle("mapped doorbells (default):", a1);
		if (!rc)
			rc = bench_idle("trapped doorbells:", a2);
	}
	free(samples);
	if (rc)
		fprintf(stderr, "nvme-bench: %s\n", vfk_strerror(rc));
	return rc ? 1 : 0;
}
