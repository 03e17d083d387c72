/* SPDX-License-Identifier: MIT */
/*
 * The real system calls behind struct vfk_syscalls.  Everything the kernel
 * transports ask of the kernel goes through such a table, so that tests can
 * put a scripted kernel in its place.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int sys_open(void *user, const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	(void)user;
	return fd < 0 ? -errno : fd;
}

static int sys_close(void *user, int fd)
{
	(void)user;
	return close(fd) < 0 ? -errno : 0;
}

static int sys_ioctl(void *user, int fd, unsigned long request, void *arg)
{
	int rc = ioctl(fd, request, arg);

	(void)user;
	return rc < 0 ? -errno : rc;
}

static long sys_pread(void *user, int fd, void *buf, size_t count, uint64_t offset)
{
	ssize_t n = pread(fd, buf, count, (off_t)offset);

	(void)user;
	return n < 0 ? -errno : (long)n;
}

static long sys_pwrite(void *user, int fd, const void *buf, size_t count,
		       uint64_t offset)
{
	ssize_t n = pwrite(fd, buf, count, (off_t)offset);

	(void)user;
	return n < 0 ? -errno : (long)n;
}

static int sys_mmap(void *user, void *addr, size_t len, int prot, int flags,
		    int fd, uint64_t offset, void **out)
{
	void *p = mmap(addr, len, prot, flags, fd, (off_t)offset);

	(void)user;
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static int sys_munmap(void *user, void *addr, size_t len)
{
	(void)user;
	return munmap(addr, len) < 0 ? -errno : 0;
}

static long sys_read(void *user, int fd, void *buf, size_t count)
{
	ssize_t n = read(fd, buf, count);

	(void)user;
	return n < 0 ? -errno : (long)n;
}

static long sys_write(void *user, int fd, const void *buf, size_t count)
{
	ssize_t n = write(fd, buf, count);

	(void)user;
	return n < 0 ? -errno : (long)n;
}

static long sys_readlink(void *user, const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size);

	(void)user;
	return n < 0 ? -errno : (long)n;
}

static int sys_list_dir(void *user, const char *path,
			int (*fn)(void *arg, const char *name), void *arg)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	(void)user;
	if (!d)
		return -errno;
	while (!rc && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		rc = fn(arg, e->d_name);
	}
	closedir(d);
	return rc;
}

static void sys_sleep_ms(void *user, unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	(void)user;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const struct vfk_syscalls real_syscalls = {
	.version = VFK_SYSCALLS_VERSION,
	.open = sys_open,
	.close = sys_close,
	.ioctl = sys_ioctl,
	.pread = sys_pread,
	.pwrite = sys_pwrite,
	.mmap = sys_mmap,
	.munmap = sys_munmap,
	.read = sys_read,
	.write = sys_write,
	.readlink = sys_readlink,
	.list_dir = sys_list_dir,
	.sleep_ms = sys_sleep_ms,
};

const struct vfk_syscalls *vfk_syscalls_default(void)
{
	return &real_syscalls;
}
