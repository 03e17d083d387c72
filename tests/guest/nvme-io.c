/*
 * nvme-io: O_DIRECT pattern I/O and a small timed workload, for vfiokit's
 * NVMe guest test.  Built static (it runs in the busybox guest), and the
 * host runs the same binary to check the backing file afterwards.
 *
 *   nvme-io write  DEV OFFSET LEN SEED    write the pattern (O_DIRECT)
 *   nvme-io verify DEV OFFSET LEN SEED    read it back and compare
 *   nvme-io bench  DEV read|write BS COUNT [SPAN]
 *                                         COUNT O_DIRECT I/Os of BS bytes at
 *                                         random BS-aligned offsets in the
 *                                         first SPAN bytes (default: the
 *                                         device), one at a time; prints
 *                                         "bench MODE BS COUNT usec IOPS
 *                                         p50_us p99_us"
 *   nvme-io stats CTRL                    the vfiokit controller's statistics
 *                                         log page (LID 0xC0) through the
 *                                         admin passthrough ioctl of CTRL
 *                                         (/dev/nvme0): "stats commands
 *                                         io_commands messages irqs sleeps
 *                                         server_p50_ns server_p99_ns"
 *
 * The pattern is a function of the byte's absolute offset and the seed,
 * so a block found at the wrong place does not match.  Exit status 0 on
 * success, 1 on a mismatch or an I/O error (message on stderr), 2 on
 * usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/nvme_ioctl.h>

#include "nvme_spec.h"

#define CHUNK (1u << 20)

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(uint8_t *p, uint64_t off, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = mix(((off + i) >> 3) ^ (seed << 40));

		memcpy(p + i, &v, 8);
	}
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M')
		v <<= 20, end++;
	else if (*end == 'G')
		v <<= 30, end++;
	if (*end) {
		fprintf(stderr, "nvme-io: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int open_dev(const char *path, int flags)
{
	int fd = open(path, flags | O_DIRECT);

	if (fd < 0) {
		fprintf(stderr, "nvme-io: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static uint64_t dev_size(int fd)
{
	struct stat st;
	uint64_t sz = 0;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
		return 0;
	return sz;
}

static int pattern(const char *dev, uint64_t off, uint64_t len, uint64_t seed, int verify)
{
	int fd = open_dev(dev, verify ? O_RDONLY : O_WRONLY);
	uint8_t *buf, *want;
	uint64_t done = 0;

	if ((off | len) & 4095) {
		fprintf(stderr, "nvme-io: offset and length must be 4 KiB multiples\n");
		return 2;
	}
	if (posix_memalign((void **)&buf, 4096, CHUNK) || posix_memalign((void **)&want, 4096, CHUNK))
		return 1;
	while (done < len) {
		size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
		ssize_t r;

		fill(want, off + done, n, seed);
		if (verify) {
			r = pread(fd, buf, n, (off_t)(off + done));
			if (r != (ssize_t)n) {
				fprintf(stderr, "nvme-io: read at %" PRIu64 ": %s\n", off + done,
					r < 0 ? strerror(errno) : "short");
				return 1;
			}
			if (memcmp(buf, want, n)) {
				size_t i = 0;

				while (buf[i] == want[i])
					i++;
				fprintf(stderr, "nvme-io: mismatch at byte %" PRIu64 "\n", off + done + i);
				return 1;
			}
		} else {
			r = pwrite(fd, want, n, (off_t)(off + done));
			if (r != (ssize_t)n) {
				fprintf(stderr, "nvme-io: write at %" PRIu64 ": %s\n", off + done,
					r < 0 ? strerror(errno) : "short");
				return 1;
			}
		}
		done += n;
	}
	if (!verify && fsync(fd) < 0) {
		fprintf(stderr, "nvme-io: fsync: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	free(buf);
	free(want);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int bench(const char *dev, int write, uint64_t bs, uint64_t count, uint64_t span)
{
	int fd = open_dev(dev, write ? O_WRONLY : O_RDONLY);
	uint64_t size = dev_size(fd), slots, t0, total, x = 88172645463325252ull;
	uint32_t *lat = calloc(count, sizeof(*lat));
	uint8_t *buf;

	if (!span || span > size)
		span = size;
	slots = span / bs;
	if (!lat || !slots || posix_memalign((void **)&buf, 4096, bs))
		return 1;
	memset(buf, 0x5a, bs);
	t0 = now_ns();
	for (uint64_t i = 0; i < count; i++) {
		uint64_t s, off;
		ssize_t r;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = (x % slots) * bs;
		s = now_ns();
		r = write ? pwrite(fd, buf, bs, (off_t)off) : pread(fd, buf, bs, (off_t)off);
		if (r != (ssize_t)bs) {
			fprintf(stderr, "nvme-io: bench I/O at %" PRIu64 ": %s\n", off,
				r < 0 ? strerror(errno) : "short");
			return 1;
		}
		lat[i] = (uint32_t)((now_ns() - s) / 1000);
	}
	total = now_ns() - t0;
	qsort(lat, count, sizeof(*lat), cmp_u32);
	printf("bench %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %.0f %u %u\n", write ? "write" : "read",
	       bs, count, total / 1000, count * 1e9 / (double)total, lat[count / 2],
	       lat[count * 99 / 100]);
	close(fd);
	free(lat);
	free(buf);
	return 0;
}

static int stats(const char *ctrl)
{
	static struct nvme_vfk_stats st;
	struct nvme_admin_cmd cmd;
	uint32_t numd = (uint32_t)(sizeof(st) / 4 - 1);
	int fd = open(ctrl, O_RDONLY);
	unsigned n;

	if (fd < 0) {
		fprintf(stderr, "nvme-io: %s: %s\n", ctrl, strerror(errno));
		return 1;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = NVME_ADM_GET_LOG;
	cmd.nsid = 0xffffffffu;
	cmd.addr = (uintptr_t)&st;
	cmd.data_len = sizeof(st);
	cmd.cdw10 = NVME_LOG_VFK_STATS | ((numd & 0xffff) << 16);
	cmd.cdw11 = numd >> 16;
	if (ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd) != 0) {
		fprintf(stderr, "nvme-io: Get Log Page 0xc0: %s\n", strerror(errno));
		return 1;
	}
	n = st.nr_samples;
	qsort(st.lat_ns, n, sizeof(st.lat_ns[0]), cmp_u32);
	printf("stats %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u\n",
	       st.commands, st.io_commands, st.messages, st.irqs, st.sleeps,
	       n ? st.lat_ns[n / 2] : 0, n ? st.lat_ns[n * 99 / 100] : 0);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "stats"))
		return stats(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "write"))
		return pattern(argv[2], num(argv[3]), num(argv[4]), num(argv[5]), 0);
	if (argc == 6 && !strcmp(argv[1], "verify"))
		return pattern(argv[2], num(argv[3]), num(argv[4]), num(argv[5]), 1);
	if ((argc == 6 || argc == 7) && !strcmp(argv[1], "bench"))
		return bench(argv[2], !strcmp(argv[3], "write"), num(argv[4]), num(argv[5]),
			     argc == 7 ? num(argv[6]) : 0);
	fprintf(stderr, "usage: nvme-io write|verify DEV OFFSET LEN SEED\n"
			"       nvme-io bench DEV read|write BS COUNT [SPAN]\n"
			"       nvme-io stats CTRL\n");
	return 2;
}
