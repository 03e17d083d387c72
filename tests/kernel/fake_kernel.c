/* SPDX-License-Identifier: MIT */
/* A scripted kernel for the VFIO transports; see fake_kernel.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "kernel_uapi.h"

#define NUM_REGIONS 10
#define NUM_IRQS 5

static struct fake_kernel *K(void *user)
{
	return user;
}

/* Record a call; true if it must fail (then *err is set). */
static bool step(struct fake_kernel *k, int *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool step(struct fake_kernel *k, int *err, const char *fmt, ...)
{
	char name[112];
	va_list ap;
	int idx = (int)k->ncalls;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (k->ncalls < FK_MAX_CALLS)
		snprintf(k->calls[k->ncalls].name, sizeof(k->calls[0].name), "%s", name);
	k->ncalls++;
	if ((k->fail_at >= 0 && idx == k->fail_at) ||
	    (k->fail_name && !strncmp(name, k->fail_name, strlen(k->fail_name)))) {
		*err = -k->fail_err;
		return true;
	}
	return false;
}

static struct fk_fd *lookup(struct fake_kernel *k, int fd)
{
	for (unsigned i = 0; i < FK_MAX_FDS; i++)
		if (k->fds[i].kind != FK_FREE && k->fds[i].real == fd)
			return &k->fds[i];
	return NULL;
}

static int hand_out(struct fake_kernel *k, enum fk_kind kind, const char *path)
{
	for (unsigned i = 0; i < FK_MAX_FDS; i++) {
		if (k->fds[i].kind != FK_FREE)
			continue;
		if (kind == FK_DEVICE) {
			k->fds[i].real = dup(k->device_real);
		} else {
			k->fds[i].real = memfd_create("fake-kernel", MFD_CLOEXEC);
		}
		if (k->fds[i].real < 0)
			return -EMFILE;
		k->fds[i].kind = kind;
		snprintf(k->fds[i].path, sizeof(k->fds[i].path), "%s", path);
		return k->fds[i].real;
	}
	return -EMFILE;
}

/* ---- sysfs and /dev ---- */

static int f_open(void *user, const char *path, int flags)
{
	struct fake_kernel *k = K(user);
	char group_path[32];
	int err;

	if (step(k, &err, "open %s", path))
		return err;
	snprintf(group_path, sizeof(group_path), "/dev/vfio/%d", FK_GROUP);
	if (!strcmp(path, "/dev/vfio/vfio"))
		return hand_out(k, FK_CONTAINER, path);
	if (!strcmp(path, group_path)) {
		if (strcmp(k->driver, "vfio-pci"))
			return -ENOENT;
		for (unsigned i = 0; i < FK_MAX_FDS; i++)
			if (k->fds[i].kind == FK_GROUP_FD)
				return -EBUSY; /* one opener at a time */
		return hand_out(k, FK_GROUP_FD, path);
	}
	if (!strcmp(path, "/dev/iommu"))
		return k->iommufd ? hand_out(k, FK_IOMMUFD, path) : -ENOENT;
	if (!strcmp(path, "/dev/vfio/devices/vfio3"))
		return k->iommufd && !strcmp(k->driver, "vfio-pci") ?
			       hand_out(k, FK_DEVICE, path) : -ENOENT;
	if (!strncmp(path, "/sys/", 5) && (flags & O_ACCMODE) == O_WRONLY)
		return hand_out(k, FK_SYSFS, path);
	return -ENOENT;
}

static int f_close(void *user, int fd)
{
	struct fake_kernel *k = K(user);
	struct fk_fd *f = lookup(k, fd);
	int err;

	/* Linux frees the fd even when close reports an error. */
	if (!f)
		return -EBADF;
	close(f->real);
	f->kind = FK_FREE;
	if (step(k, &err, "close"))
		return err;
	return 0;
}

static long f_write(void *user, int fd, const void *buf, size_t count)
{
	struct fake_kernel *k = K(user);
	struct fk_fd *f = lookup(k, fd);
	char text[32];
	int err;

	if (!f || f->kind != FK_SYSFS)
		return -EBADF;
	if (step(k, &err, "write %s", f->path))
		return err;
	snprintf(text, sizeof(text), "%.*s", count < 31 ? (int)count : 31, (const char *)buf);
	snprintf(k->written, sizeof(k->written), "%s=%s", f->path, text);
	if (strstr(f->path, "/driver_override"))
		snprintf(k->override, sizeof(k->override), "%s", text);
	else if (strstr(f->path, "/driver/unbind"))
		k->driver[0] = '\0';
	else if (!strcmp(f->path, "/sys/bus/pci/drivers_probe") && !k->driver[0])
		snprintf(k->driver, sizeof(k->driver), "%s", k->override[0] ? k->override : "nvme");
	return (long)count;
}

static long f_read(void *user, int fd, void *buf, size_t count)
{
	(void)user;
	(void)fd;
	(void)buf;
	(void)count;
	return -EINVAL;
}

static long f_readlink(void *user, const char *path, char *buf, size_t size)
{
	struct fake_kernel *k = K(user);
	char target[128];
	int err;

	if (step(k, &err, "readlink %s", path))
		return err;
	if (!strcmp(path, "/sys/bus/pci/devices/" FK_BDF "/iommu_group"))
		snprintf(target, sizeof(target), "../../../kernel/iommu_groups/%d", FK_GROUP);
	else if (!strcmp(path, "/sys/bus/pci/devices/" FK_BDF "/driver") && k->driver[0])
		snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", k->driver);
	else
		return -ENOENT;
	if (strlen(target) < size)
		size = strlen(target);
	memcpy(buf, target, size);
	return (long)size;
}

static int f_list_dir(void *user, const char *path, int (*fn)(void *, const char *),
		      void *arg)
{
	struct fake_kernel *k = K(user);
	char gdir[64];
	int err;

	if (step(k, &err, "list %s", path))
		return err;
	snprintf(gdir, sizeof(gdir), "/sys/kernel/iommu_groups/%d/devices", FK_GROUP);
	if (!strcmp(path, gdir)) {
		for (unsigned i = 0; i < k->group_devices; i++) {
			char name[16];
			int rc;

			snprintf(name, sizeof(name), "0000:00:0%u.0", 3 + i);
			rc = fn(arg, name);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!strcmp(path, "/sys/bus/pci/devices/" FK_BDF "/vfio-dev")) {
		if ((!k->iommufd && !k->sysfs_cdev) || strcmp(k->driver, "vfio-pci"))
			return -ENOENT;
		return fn(arg, "vfio3");
	}
	return -ENOENT;
}

static void f_sleep(void *user, unsigned ms)
{
	(void)user;
	(void)ms;
}

/* ---- the device ---- */

struct fk_region {
	uint32_t flags;
	uint64_t size;
	unsigned nsparse;
	uint64_t sparse[2][2];
	bool msix_mappable;
	bool type;
};

static const struct fk_region regions[NUM_REGIONS] = {
	[0] = { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			VFIO_REGION_INFO_FLAG_MMAP, 0x4000, 2,
		{ { 0, 0x1000 }, { 0x3000, 0x1000 } }, false, false },
	[2] = { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			VFIO_REGION_INFO_FLAG_MMAP, 0x4000, 0, { { 0 } }, true, false },
	[4] = { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 0x20, 0,
		{ { 0 } }, false, false },
	[6] = { VFIO_REGION_INFO_FLAG_READ, 0x800, 0, { { 0 } }, false, false },
	[7] = { VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 0x100, 0,
		{ { 0 } }, false, false },
	[9] = { VFIO_REGION_INFO_FLAG_READ, 0x1000, 0, { { 0 } }, false, true },
};

/* Linux's answer: the caps after the structure, or, if argsz is too small,
 * the needed argsz with CAPS set and cap_offset 0. */
static int region_info(struct fake_kernel *k, struct vfio_region_info *ri)
{
	const struct fk_region *r;
	uint8_t caps[256];
	size_t n = 0, need;
	uint32_t prev = 0;

	k->region_info_calls++;
	if (ri->argsz < sizeof(*ri) || ri->index >= NUM_REGIONS)
		return -EINVAL;
	/* vfio-pci's answer for the VGA region of a non-VGA function. */
	if (ri->index == VFIO_PCI_VGA_REGION_INDEX)
		return -EINVAL;
	r = &regions[ri->index];
	memset(caps, 0, sizeof(caps));
#define ADD_CAP(id, ver, body, blen)                                               \
	do {                                                                       \
		struct vfio_info_cap_header h = { id, ver, 0 };                    \
		uint32_t here = (uint32_t)(sizeof(*ri) + n);                        \
		if (prev)                                                          \
			memcpy(caps + prev - sizeof(*ri) + 4, &here, 4);           \
		memcpy(caps + n, &h, sizeof(h));                                   \
		memcpy(caps + n + sizeof(h), body, blen);                          \
		prev = here;                                                       \
		n += sizeof(h) + (blen);                                           \
	} while (0)
	if (r->nsparse) {
		uint8_t b[8 + 2 * 16] = { 0 };
		uint32_t cnt = r->nsparse;

		memcpy(b, &cnt, 4);
		memcpy(b + 8, r->sparse, 16 * r->nsparse);
		ADD_CAP(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, b, 8 + 16 * r->nsparse);
	}
	if (r->msix_mappable)
		ADD_CAP(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, "", 0);
	if (r->type) {
		uint32_t t[2] = { (1u << 31) | 0x8086, 1 };

		ADD_CAP(VFIO_REGION_INFO_CAP_TYPE, 1, t, 8);
	}
#undef ADD_CAP
	need = sizeof(*ri) + n;
	ri->flags = r->flags;
	ri->size = r->size;
	ri->offset = (uint64_t)ri->index << FK_REGION_SHIFT;
	ri->cap_offset = 0;
	if (n) {
		ri->flags |= VFIO_REGION_INFO_FLAG_CAPS;
		if (ri->argsz < need) {
			ri->argsz = (uint32_t)need;
			return 0;
		}
		ri->cap_offset = sizeof(*ri);
		memcpy(ri + 1, caps, n);
	}
	ri->argsz = (uint32_t)need;
	return 0;
}

static int iommu_info(struct fake_kernel *k, struct vfio_iommu_type1_info *ii)
{
	size_t need = sizeof(*ii) + 16 + 16 * k->nr_ranges;

	if (ii->argsz < offsetof(struct vfio_iommu_type1_info, cap_offset))
		return -EINVAL;
	ii->flags = VFIO_IOMMU_INFO_PGSIZES;
	ii->iova_pgsizes = k->pgsizes;
	if (!k->nr_ranges)
		return 0;
	ii->flags |= VFIO_IOMMU_INFO_CAPS;
	if (ii->argsz < need) {
		ii->argsz = (uint32_t)need;
		ii->cap_offset = 0;
		return 0;
	}
	{
		uint8_t *c = (uint8_t *)(ii + 1);
		struct vfio_info_cap_header h = { VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 1, 0 };
		uint32_t nr = k->nr_ranges, zero = 0;

		memcpy(c, &h, sizeof(h));
		memcpy(c + 8, &nr, 4);
		memcpy(c + 12, &zero, 4);
		for (unsigned i = 0; i < k->nr_ranges; i++) {
			memcpy(c + 16 + 16 * i, &k->ranges[i].start, 8);
			memcpy(c + 24 + 16 * i, &k->ranges[i].last, 8);
		}
		ii->cap_offset = sizeof(*ii);
		ii->argsz = (uint32_t)need;
	}
	return 0;
}

static bool in_ranges(struct fake_kernel *k, uint64_t iova, uint64_t size)
{
	for (unsigned i = 0; i < k->nr_ranges; i++)
		if (iova >= k->ranges[i].start && iova <= k->ranges[i].last &&
		    size - 1 <= k->ranges[i].last - iova)
			return true;
	return k->nr_ranges == 0;
}

static int do_map(struct fake_kernel *k, uint64_t vaddr, uint64_t iova, uint64_t size,
		  uint32_t flags)
{
	if (!size || (iova | size | vaddr) & 0xfff)
		return -EINVAL;
	if (!in_ranges(k, iova, size))
		return -EINVAL;
	for (unsigned i = 0; i < k->nmaps; i++)
		if (iova <= k->maps[i].iova + k->maps[i].size - 1 &&
		    k->maps[i].iova <= iova + size - 1)
			return -EEXIST;
	if (k->nmaps == 64)
		return -ENOSPC;
	k->maps[k->nmaps].iova = iova;
	k->maps[k->nmaps].size = size;
	k->nmaps++;
	k->map_dma++;
	k->last_map_iova = iova;
	k->last_map_size = size;
	k->last_map_vaddr = vaddr;
	k->last_map_flags = flags;
	return 0;
}

static uint64_t do_unmap(struct fake_kernel *k, uint64_t iova, uint64_t size, bool all)
{
	uint64_t done = 0;
	unsigned j = 0;

	k->unmap_dma++;
	for (unsigned i = 0; i < k->nmaps; i++) {
		if (all || (k->maps[i].iova >= iova &&
			    k->maps[i].iova + k->maps[i].size - 1 <= iova + size - 1)) {
			done += k->maps[i].size;
			continue;
		}
		k->maps[j++] = k->maps[i];
	}
	k->nmaps = j;
	return done;
}

static int dev_ioctl(struct fake_kernel *k, struct fk_fd *f, unsigned long req, void *arg)
{
	switch (req) {
	case VFIO_DEVICE_GET_INFO: {
		struct vfio_device_info *i = arg;

		if (i->argsz < 16)
			return -EINVAL;
		i->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
		i->num_regions = NUM_REGIONS;
		i->num_irqs = NUM_IRQS;
		return 0;
	}
	case VFIO_DEVICE_GET_REGION_INFO:
		return region_info(k, arg);
	case VFIO_DEVICE_GET_IRQ_INFO: {
		struct vfio_irq_info *i = arg;
		static const uint32_t counts[NUM_IRQS] = { 1, 1, 4, 1, 1 };

		if (i->argsz < sizeof(*i) || i->index >= NUM_IRQS)
			return -EINVAL;
		i->count = counts[i->index];
		i->flags = VFIO_IRQ_INFO_EVENTFD;
		if (i->index == 0)
			i->flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
		else
			i->flags |= VFIO_IRQ_INFO_NORESIZE;
		return 0;
	}
	case VFIO_DEVICE_SET_IRQS: {
		struct vfio_irq_set *s = arg;

		k->set_irqs++;
		k->last_irq.flags = s->flags;
		k->last_irq.index = s->index;
		k->last_irq.start = s->start;
		k->last_irq.count = s->count;
		if ((s->flags & VFIO_IRQ_SET_DATA_EVENTFD) && s->count <= 8) {
			if (s->argsz < sizeof(*s) + 4 * s->count)
				return -EINVAL;
			memcpy(k->last_irq.fds, s->data, 4 * s->count);
		}
		return k->set_irqs_ret;
	}
	case VFIO_DEVICE_RESET:
		k->resets++;
		return 0;
	case VFK_VFIO_DEVICE_BIND_IOMMUFD: {
		struct vfk_vfio_bind_iommufd *b = arg;
		struct fk_fd *i = lookup(k, b->iommufd);

		if (b->argsz < sizeof(*b) || !i || i->kind != FK_IOMMUFD)
			return -EINVAL;
		b->out_devid = 0x11;
		return 0;
	}
	case VFK_VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
		struct vfk_vfio_attach_pt *a = arg;

		return a->pt_id == 0x22 ? 0 : -ENOENT;
	}
	}
	(void)f;
	return -ENOTTY;
}

static int f_ioctl(void *user, int fd, unsigned long req, void *arg)
{
	struct fake_kernel *k = K(user);
	struct fk_fd *f = lookup(k, fd);
	int err;

	if (!f)
		return -EBADF;
	if (step(k, &err, "ioctl %s %#lx", f->kind == FK_CONTAINER ? "container" :
					    f->kind == FK_GROUP_FD ? "group" :
					    f->kind == FK_DEVICE ? "device" :
					    f->kind == FK_IOMMUFD ? "iommufd" : "other", req))
		return err;
	switch (f->kind) {
	case FK_CONTAINER:
		switch (req) {
		case VFIO_GET_API_VERSION:
			return VFIO_API_VERSION;
		case VFIO_CHECK_EXTENSION: {
			long ext = (long)arg;

			if (ext == VFIO_TYPE1v2_IOMMU || ext == VFIO_TYPE1_IOMMU)
				return 1;
			if (ext == VFIO_UNMAP_ALL)
				return k->unmap_all_ext;
			return 0;
		}
		case VFIO_SET_IOMMU:
			return (long)arg == VFIO_TYPE1v2_IOMMU ? 0 : -EINVAL;
		case VFIO_IOMMU_GET_INFO:
			return iommu_info(k, arg);
		case VFIO_IOMMU_MAP_DMA: {
			struct vfio_iommu_type1_dma_map *m = arg;

			if (m->argsz < sizeof(*m))
				return -EINVAL;
			return do_map(k, m->vaddr, m->iova, m->size, m->flags);
		}
		case VFIO_IOMMU_UNMAP_DMA: {
			struct vfio_iommu_type1_dma_unmap *u = arg;
			bool all = u->flags & VFIO_DMA_UNMAP_FLAG_ALL;

			if (all && !k->unmap_all_ext)
				return -EINVAL;
			u->size = do_unmap(k, u->iova, u->size, all);
			return 0;
		}
		}
		return -ENOTTY;
	case FK_GROUP_FD:
		switch (req) {
		case VFIO_GROUP_GET_STATUS: {
			struct vfio_group_status *s = arg;

			s->flags = k->viable ? VFIO_GROUP_FLAGS_VIABLE : 0;
			return 0;
		}
		case VFIO_GROUP_SET_CONTAINER: {
			struct fk_fd *c = lookup(k, *(int *)arg);

			return c && c->kind == FK_CONTAINER ? 0 : -EBADF;
		}
		case VFIO_GROUP_GET_DEVICE_FD:
			if (strcmp(arg, FK_BDF))
				return -ENODEV;
			return hand_out(k, FK_DEVICE, FK_BDF);
		}
		return -ENOTTY;
	case FK_DEVICE:
		return dev_ioctl(k, f, req, arg);
	case FK_IOMMUFD:
		switch (req) {
		case VFK_IOMMU_IOAS_ALLOC: {
			struct vfk_iommu_ioas_alloc *a = arg;

			a->out_ioas_id = 0x22;
			return 0;
		}
		case VFK_IOMMU_IOAS_IOVA_RANGES: {
			struct vfk_iommu_ioas_iova_ranges *q = arg;
			struct vfk_iommu_iova_range *r = (void *)(uintptr_t)q->allowed_iovas;

			if (q->ioas_id != 0x22)
				return -ENOENT;
			if (q->num_iovas < k->nr_ranges) {
				q->num_iovas = k->nr_ranges;
				return -EMSGSIZE;
			}
			for (unsigned i = 0; i < k->nr_ranges; i++) {
				r[i].start = k->ranges[i].start;
				r[i].last = k->ranges[i].last;
			}
			q->num_iovas = k->nr_ranges;
			q->out_iova_alignment = 4096;
			return 0;
		}
		case VFK_IOMMU_IOAS_MAP: {
			struct vfk_iommu_ioas_map *m = arg;

			if (m->ioas_id != 0x22 || !(m->flags & VFK_IOMMU_IOAS_MAP_FIXED_IOVA))
				return -EINVAL;
			return do_map(k, m->user_va, m->iova, m->length, m->flags);
		}
		case VFK_IOMMU_IOAS_UNMAP: {
			struct vfk_iommu_ioas_unmap *u = arg;
			bool all = u->iova == 0 && u->length == UINT64_MAX;

			u->length = do_unmap(k, u->iova, u->length, all);
			return u->length ? 0 : -ENOENT;
		}
		}
		return -ENOTTY;
	default:
		return -ENOTTY;
	}
}

static long f_pread(void *user, int fd, void *buf, size_t count, uint64_t off)
{
	struct fake_kernel *k = K(user);
	struct fk_fd *f = lookup(k, fd);
	ssize_t n;
	int err;

	if (!f || f->kind != FK_DEVICE)
		return -EBADF;
	if (step(k, &err, "pread %#llx", (unsigned long long)off))
		return err;
	n = pread(f->real, buf, count, (off_t)off);
	return n < 0 ? -errno : (long)n;
}

static long f_pwrite(void *user, int fd, const void *buf, size_t count, uint64_t off)
{
	struct fake_kernel *k = K(user);
	struct fk_fd *f = lookup(k, fd);
	ssize_t n;
	int err;

	if (!f || f->kind != FK_DEVICE)
		return -EBADF;
	if (step(k, &err, "pwrite %#llx", (unsigned long long)off))
		return err;
	n = pwrite(f->real, buf, count, (off_t)off);
	return n < 0 ? -errno : (long)n;
}

static int f_mmap(void *user, void *addr, size_t len, int prot, int flags, int fd,
		  uint64_t off, void **out)
{
	struct fake_kernel *k = K(user);
	void *p;
	int err;

	if (step(k, &err, "mmap %#llx", (unsigned long long)off))
		return err;
	if (fd >= 0) {
		struct fk_fd *f = lookup(k, fd);

		if (!f || f->kind != FK_DEVICE)
			return -EBADF;
		fd = f->real;
	}
	p = mmap(addr, len, prot, flags, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	if (!(flags & MAP_FIXED))
		k->maps_live++;
	*out = p;
	return 0;
}

static int f_munmap(void *user, void *addr, size_t len)
{
	if (munmap(addr, len) < 0)
		return -errno;
	K(user)->maps_live--;
	return 0;
}

void fk_init(struct fake_kernel *k)
{
	uint8_t cfg[64] = { 0x34, 0x12, 0xe8, 0x11 };

	memset(k, 0, sizeof(*k));
	k->sys = (struct vfk_syscalls){
		.version = VFK_SYSCALLS_VERSION, .user = k,
		.open = f_open, .close = f_close, .ioctl = f_ioctl,
		.pread = f_pread, .pwrite = f_pwrite, .mmap = f_mmap,
		.munmap = f_munmap, .read = f_read, .write = f_write,
		.readlink = f_readlink, .list_dir = f_list_dir, .sleep_ms = f_sleep,
	};
	strcpy(k->driver, "vfio-pci");
	k->viable = true;
	k->group_devices = 1;
	k->unmap_all_ext = true;
	k->nr_ranges = 2;
	k->ranges[0].start = 0;
	k->ranges[0].last = 0xfedfffff;
	k->ranges[1].start = 0xfef00000;
	k->ranges[1].last = (1ull << 39) - 1;
	k->pgsizes = 0x40201000;
	k->fail_at = -1;
	k->device_real = memfd_create("fake-vfio-device", MFD_CLOEXEC);
	if (k->device_real >= 0) {
		if (ftruncate(k->device_real, (off_t)(10ull << FK_REGION_SHIFT)) < 0) {
			close(k->device_real);
			k->device_real = -1;
		} else {
			pwrite(k->device_real, cfg, sizeof(cfg), (off_t)(7ull << FK_REGION_SHIFT));
		}
	}
}

void fk_fini(struct fake_kernel *k)
{
	for (unsigned i = 0; i < FK_MAX_FDS; i++)
		if (k->fds[i].kind != FK_FREE)
			close(k->fds[i].real);
	if (k->device_real >= 0)
		close(k->device_real);
	k->device_real = -1;
}

unsigned fk_open_fds(const struct fake_kernel *k)
{
	unsigned n = 0;

	for (unsigned i = 0; i < FK_MAX_FDS; i++)
		n += k->fds[i].kind != FK_FREE;
	return n;
}

int fk_call_index(const struct fake_kernel *k, const char *prefix)
{
	for (unsigned i = 0; i < k->ncalls && i < FK_MAX_CALLS; i++)
		if (!strncmp(k->calls[i].name, prefix, strlen(prefix)))
			return (int)i;
	return -1;
}
