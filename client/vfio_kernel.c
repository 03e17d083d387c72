/* SPDX-License-Identifier: MIT */
/*
 * The kernel's VFIO as a client transport: the type1 container and group
 * (/dev/vfio/vfio, /dev/vfio/N) or iommufd (/dev/iommu with the device's
 * cdev /dev/vfio/devices/vfioN).  Every system call goes through the
 * handle's struct vfk_syscalls, so a test can play the kernel and fail any
 * step; whatever a failed open had opened is closed again.
 *
 * The kernel is trusted less than it deserves: sizes it reports are checked
 * before they are used as allocation sizes or offsets, since a scripted or
 * buggy answer must not make this code read out of bounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "kernel_uapi.h"

#define INFO_MAX (64u * 1024) /* largest info structure we accept */
#define MAX_RANGES 1024u       /* IOVA ranges we accept from iommufd */

struct vk {
	bool iommufd;
	int container;   /* type1: /dev/vfio/vfio; iommufd: /dev/iommu */
	int group;       /* type1 group fd, else -1 */
	int devfd;
	int group_nr;
	unsigned group_devices;
	uint32_t devid, ioas_id;
	bool unmap_all;  /* type1 has VFIO_DMA_UNMAP_FLAG_ALL */
	uint64_t pgsizes;
	unsigned nr_ranges;
	struct vfk_iova_range ranges[CLIENT_MAX_IOVA_RANGES];
	char bdf[16];
	char driver[32];
};

static struct vk *vk(struct vfk_device *d)
{
	return d->tp;
}

static void set_ops(struct vfk_device *d);

static int kclose(struct vfk_device *d, int *fd)
{
	int rc = 0;

	if (*fd >= 0)
		rc = SYS(d, close, *fd);
	*fd = -1;
	return rc;
}

/* ---- sysfs ---- */

/* "0000:00:03.0" or "00:03.0" into the canonical form; only hex digits and
 * the separators, so the result is safe in a path. */
static int canon_bdf(const char *in, char out[16])
{
	unsigned dom = 0, bus, slot, fn;
	char tail;

	if (strlen(in) > 12)
		return -EINVAL;
	for (const char *p = in; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
		      (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
			return -EINVAL;
	if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &slot, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(in, "%x:%x.%x%c", &bus, &slot, &fn, &tail) != 3)
			return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || slot > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(out, 16, "%04x:%02x:%02x.%x", dom, bus, slot, fn);
	return 0;
}

static int sysfs_write(struct vfk_device *d, const char *path, const char *text)
{
	int fd = SYS(d, open, path, O_WRONLY);
	long n;

	if (fd < 0)
		return fd;
	n = SYS(d, write, fd, text, strlen(text));
	SYS(d, close, fd);
	if (n < 0)
		return (int)n;
	return (size_t)n == strlen(text) ? 0 : -EIO;
}

/* The last component of a symlink's target, or a negative errno. */
static int link_base(struct vfk_device *d, const char *path, char *out, size_t cap)
{
	char buf[256];
	long n = SYS(d, readlink, path, buf, sizeof(buf) - 1);
	const char *b;

	if (n < 0)
		return (int)n;
	if ((size_t)n >= sizeof(buf) - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	b = strrchr(buf, '/');
	b = b ? b + 1 : buf;
	if (strlen(b) >= cap)
		return -ENAMETOOLONG;
	strcpy(out, b);
	return 0;
}

static int current_driver(struct vfk_device *d, const char *bdf, char *out, size_t cap)
{
	char path[96];
	int rc;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	rc = link_base(d, path, out, cap);
	if (rc == -ENOENT) {
		out[0] = '\0';
		return 0;
	}
	return rc;
}

/* Bind `bdf` to vfio-pci with driver_override, as the kernel documents. */
static int bind_vfio_pci(struct vfk_device *d, const char *bdf)
{
	struct vk *v = vk(d);
	char path[112], drv[32];
	int rc;

	rc = current_driver(d, bdf, v->driver, sizeof(v->driver));
	if (rc) {
		vfk_client_log(d, VFK_LOG_ERR, "%s: no such PCI device (%s)", bdf,
			       vfk_strerror(rc));
		return rc;
	}
	if (!strcmp(v->driver, "vfio-pci"))
		return 0;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	rc = sysfs_write(d, path, "vfio-pci");
	if (rc)
		goto fail;
	if (v->driver[0]) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
		rc = sysfs_write(d, path, bdf);
		if (rc)
			goto fail;
	}
	rc = sysfs_write(d, "/sys/bus/pci/drivers_probe", bdf);
	if (rc)
		goto fail;
	/* The probe is synchronous, but give udev-less systems a moment. */
	for (int i = 0; i < 100; i++) {
		rc = current_driver(d, bdf, drv, sizeof(drv));
		if (rc)
			goto fail;
		if (!strcmp(drv, "vfio-pci")) {
			vfk_client_log(d, VFK_LOG_INFO, "%s: bound to vfio-pci (was %s)", bdf,
				       v->driver[0] ? v->driver : "unbound");
			return 0;
		}
		SYS(d, sleep_ms, 10);
	}
	rc = -ENODEV;
fail:
	vfk_client_log(d, VFK_LOG_ERR, "%s: cannot bind to vfio-pci: %s (is the vfio-pci module loaded?)",
		       bdf, vfk_strerror(rc));
	return rc;
}

static int count_entry(void *arg, const char *name)
{
	(void)name;
	(*(unsigned *)arg)++;
	return 0;
}

/* The IOMMU group number and how many devices share it. */
static int find_group(struct vfk_device *d)
{
	struct vk *v = vk(d);
	char path[96], name[32], *end;
	long nr;
	int rc;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", v->bdf);
	rc = link_base(d, path, name, sizeof(name));
	if (rc) {
		vfk_client_log(d, VFK_LOG_ERR, "%s: no IOMMU group (%s): is an IOMMU enabled?",
			       v->bdf, vfk_strerror(rc));
		return rc == -ENOENT ? -ENODEV : rc;
	}
	nr = strtol(name, &end, 10);
	if (*end || nr < 0 || nr > 1000000)
		return -EPROTO;
	v->group_nr = (int)nr;
	snprintf(path, sizeof(path), "/sys/kernel/iommu_groups/%ld/devices", nr);
	v->group_devices = 0;
	rc = SYS(d, list_dir, path, count_entry, &v->group_devices);
	if (rc < 0)
		v->group_devices = 0; /* not fatal: only informative */
	return 0;
}

struct find_cdev {
	char name[32];
	unsigned found;
};

static int on_vfio_dev(void *arg, const char *name)
{
	struct find_cdev *f = arg;

	if (strncmp(name, "vfio", 4) || strlen(name) >= sizeof(f->name))
		return 0;
	for (const char *p = name + 4; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	if (!name[4])
		return 0;
	strcpy(f->name, name);
	f->found++;
	return 0;
}

/* ---- info with capability chains ---- */

/*
 * ioctl `req` on `fd` with an argsz-first structure whose fixed part is
 * `fixed` bytes (copied from `init`), growing the buffer to the argsz the
 * kernel asks for.  On success `*out` (malloc'ed) holds `*len` valid bytes.
 */
static int info_ioctl(struct vfk_device *d, int fd, unsigned long req,
		      const void *init, size_t fixed, size_t start,
		      uint8_t **out, size_t *len)
{
	size_t cap = start;

	for (int attempt = 0; attempt < 3; attempt++) {
		uint8_t *buf = calloc(1, cap);
		uint32_t argsz = (uint32_t)cap;
		int rc;

		if (!buf)
			return -ENOMEM;
		memcpy(buf, init, fixed);
		memcpy(buf, &argsz, 4);
		rc = SYS(d, ioctl, fd, req, buf);
		if (rc < 0) {
			free(buf);
			return rc;
		}
		memcpy(&argsz, buf, 4);
		if (argsz < fixed) {
			free(buf);
			return -EPROTO;
		}
		if (argsz <= cap) {
			*out = buf;
			*len = argsz;
			return 0;
		}
		free(buf);
		if (argsz > INFO_MAX)
			return -EPROTO;
		cap = argsz;
	}
	return -EPROTO;
}

struct iova_walk {
	struct vk *v;
	bool seen;
};

static int on_iommu_cap(void *arg, uint16_t id, uint16_t version, const uint8_t *body,
			size_t len)
{
	struct iova_walk *w = arg;
	uint32_t n;

	(void)version;
	if (id != VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE)
		return 0;
	if (len < 8 || w->seen)
		return -EPROTO;
	memcpy(&n, body, 4);
	if (n == 0 || n > (len - 8) / 16)
		return -EPROTO;
	w->seen = true;
	w->v->nr_ranges = 0;
	for (uint32_t i = 0; i < n && i < CLIENT_MAX_IOVA_RANGES; i++) {
		struct vfio_iova_range r;

		memcpy(&r, body + 8 + i * sizeof(r), sizeof(r));
		if (r.end < r.start)
			return -EPROTO;
		w->v->ranges[i].start = r.start;
		w->v->ranges[i].last = r.end;
		w->v->nr_ranges++;
	}
	return 0;
}

static int type1_iommu_info(struct vfk_device *d)
{
	struct vk *v = vk(d);
	struct vfio_iommu_type1_info fixed = { 0 };
	struct iova_walk w = { v, false };
	uint8_t *buf;
	size_t len;
	int rc;

	rc = info_ioctl(d, v->container, VFIO_IOMMU_GET_INFO, &fixed,
			offsetof(struct vfio_iommu_type1_info, cap_offset), 512, &buf, &len);
	if (rc) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_IOMMU_GET_INFO: %s", vfk_strerror(rc));
		return rc;
	}
	memcpy(&fixed, buf, len < sizeof(fixed) ? len : sizeof(fixed));
	v->pgsizes = (fixed.flags & VFIO_IOMMU_INFO_PGSIZES) ? fixed.iova_pgsizes : 0;
	if ((fixed.flags & VFIO_IOMMU_INFO_CAPS) && fixed.cap_offset &&
	    len >= sizeof(fixed)) {
		rc = vfk_caps_walk(buf, len, sizeof(fixed), fixed.cap_offset, on_iommu_cap, &w);
		if (rc) {
			free(buf);
			vfk_client_log(d, VFK_LOG_ERR, "VFIO_IOMMU_GET_INFO: malformed capabilities");
			return -EPROTO;
		}
	}
	free(buf);
	if (!w.seen) {
		/* Kernels before 5.4 report no ranges: all of it is allowed. */
		v->ranges[0].start = 0;
		v->ranges[0].last = UINT64_MAX;
		v->nr_ranges = 1;
	}
	return 0;
}

/* ---- opening ---- */

static int open_type1(struct vfk_device *d)
{
	struct vk *v = vk(d);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[48];
	long type;
	int rc;

	rc = find_group(d);
	if (rc)
		return rc;
	rc = SYS(d, open, "/dev/vfio/vfio", O_RDWR);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "/dev/vfio/vfio: %s", vfk_strerror(rc));
		return rc;
	}
	v->container = rc;
	rc = SYS(d, ioctl, v->container, VFIO_GET_API_VERSION, NULL);
	if (rc != VFIO_API_VERSION) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO API version %d, not %d", rc,
			       VFIO_API_VERSION);
		return rc < 0 ? rc : -EPROTO;
	}
	type = VFIO_TYPE1v2_IOMMU;
	rc = SYS(d, ioctl, v->container, VFIO_CHECK_EXTENSION, (void *)type);
	if (rc <= 0) {
		type = VFIO_TYPE1_IOMMU;
		rc = SYS(d, ioctl, v->container, VFIO_CHECK_EXTENSION, (void *)type);
	}
	if (rc <= 0) {
		vfk_client_log(d, VFK_LOG_ERR, "the kernel offers no type1 IOMMU");
		return rc < 0 ? rc : -ENOTSUP;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", v->group_nr);
	rc = SYS(d, open, path, O_RDWR);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "%s: %s%s", path, vfk_strerror(rc),
			       rc == -EBUSY ? " (the group is in use)" :
			       rc == -ENOENT ? " (is the device bound to vfio-pci?)" : "");
		return rc;
	}
	v->group = rc;
	rc = SYS(d, ioctl, v->group, VFIO_GROUP_GET_STATUS, &st);
	if (rc < 0)
		return rc;
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		vfk_client_log(d, VFK_LOG_ERR,
			       "IOMMU group %d is not viable: every device in it must be bound to vfio-pci or to no driver",
			       v->group_nr);
		return -EBUSY;
	}
	rc = SYS(d, ioctl, v->group, VFIO_GROUP_SET_CONTAINER, &v->container);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_GROUP_SET_CONTAINER: %s", vfk_strerror(rc));
		return rc;
	}
	rc = SYS(d, ioctl, v->container, VFIO_SET_IOMMU, (void *)type);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_SET_IOMMU: %s", vfk_strerror(rc));
		return rc;
	}
	rc = SYS(d, ioctl, v->container, VFIO_CHECK_EXTENSION, (void *)(long)VFIO_UNMAP_ALL);
	v->unmap_all = rc > 0;
	rc = type1_iommu_info(d);
	if (rc)
		return rc;
	rc = SYS(d, ioctl, v->group, VFIO_GROUP_GET_DEVICE_FD, v->bdf);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_GROUP_GET_DEVICE_FD %s: %s", v->bdf,
			       vfk_strerror(rc));
		return rc;
	}
	v->devfd = rc;
	return 0;
}

static int iommufd_ranges(struct vfk_device *d)
{
	struct vk *v = vk(d);
	struct vfk_iommu_ioas_iova_ranges q;
	struct vfk_iommu_iova_range *r = NULL;
	uint32_t want = 8;
	int rc = -EPROTO;

	for (int attempt = 0; attempt < 3; attempt++) {
		free(r);
		r = calloc(want, sizeof(*r));
		if (!r)
			return -ENOMEM;
		memset(&q, 0, sizeof(q));
		q.size = sizeof(q);
		q.ioas_id = v->ioas_id;
		q.num_iovas = want;
		q.allowed_iovas = (uintptr_t)r;
		rc = SYS(d, ioctl, v->container, VFK_IOMMU_IOAS_IOVA_RANGES, &q);
		if (rc == -EMSGSIZE && q.num_iovas > want && q.num_iovas <= MAX_RANGES) {
			want = q.num_iovas;
			rc = -EPROTO;
			continue;
		}
		break;
	}
	if (rc < 0 || q.num_iovas == 0 || q.num_iovas > want) {
		free(r);
		rc = rc < 0 ? rc : -EPROTO;
		vfk_client_log(d, VFK_LOG_ERR, "IOMMU_IOAS_IOVA_RANGES: %s", vfk_strerror(rc));
		return rc;
	}
	v->nr_ranges = 0;
	for (uint32_t i = 0; i < q.num_iovas && i < CLIENT_MAX_IOVA_RANGES; i++) {
		if (r[i].last < r[i].start) {
			free(r);
			return -EPROTO;
		}
		v->ranges[i].start = r[i].start;
		v->ranges[i].last = r[i].last;
		v->nr_ranges++;
	}
	free(r);
	/* iommufd reports only the smallest alignment; large pages are the
	 * IOMMU's business, so offer the sizes that help it if used. */
	v->pgsizes = (q.out_iova_alignment > 1 ? q.out_iova_alignment : 4096) |
		     (1ull << 21) | (1ull << 30);
	return 0;
}

static int open_iommufd(struct vfk_device *d, const char *cdev)
{
	struct vk *v = vk(d);
	struct vfk_vfio_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfk_iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfk_vfio_attach_pt att = { .argsz = sizeof(att) };
	char path[64];
	int rc;

	(void)find_group(d); /* informative only on this path */
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", cdev);
	rc = SYS(d, open, path, O_RDWR);
	if (rc < 0) {
		vfk_client_log(d, rc == -ENOENT ? VFK_LOG_DEBUG : VFK_LOG_ERR, "%s: %s", path,
			       vfk_strerror(rc));
		return rc;
	}
	v->devfd = rc;
	rc = SYS(d, open, "/dev/iommu", O_RDWR);
	if (rc < 0) {
		vfk_client_log(d, rc == -ENOENT ? VFK_LOG_DEBUG : VFK_LOG_ERR, "/dev/iommu: %s",
			       vfk_strerror(rc));
		return rc;
	}
	v->container = rc;
	bind.iommufd = v->container;
	rc = SYS(d, ioctl, v->devfd, VFK_VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_DEVICE_BIND_IOMMUFD: %s", vfk_strerror(rc));
		return rc;
	}
	v->devid = bind.out_devid;
	rc = SYS(d, ioctl, v->container, VFK_IOMMU_IOAS_ALLOC, &alloc);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "IOMMU_IOAS_ALLOC: %s", vfk_strerror(rc));
		return rc;
	}
	v->ioas_id = alloc.out_ioas_id;
	att.pt_id = v->ioas_id;
	rc = SYS(d, ioctl, v->devfd, VFK_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &att);
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_ERR, "VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s",
			       vfk_strerror(rc));
		return rc;
	}
	/* Ranges narrow as devices attach: ask after the attach. */
	return iommufd_ranges(d);
}

static void vk_release(struct vfk_device *d)
{
	struct vk *v = vk(d);

	for (unsigned i = 0; i < CLIENT_MAX_REGIONS; i++)
		d->regions[i].map_fd = -1; /* the device fd, borrowed */
	/* The device first: a group or container outlives its devices. */
	kclose(d, &v->devfd);
	kclose(d, &v->group);
	kclose(d, &v->container);
}

int vfk_kernel_attach(struct vfk_device *d, const char *bdf, unsigned flags)
{
	struct vk *v = calloc(1, sizeof(*v));
	struct find_cdev cdev = { .found = 0 };
	char path[96];
	int rc;

	if (!v)
		return -ENOMEM;
	v->container = v->group = v->devfd = -1;
	v->group_nr = -1;
	d->tp = v;
	rc = canon_bdf(bdf, v->bdf);
	if (rc) {
		vfk_client_log(d, VFK_LOG_ERR, "'%s' is not a PCI address", bdf);
		goto fail;
	}
	if (flags & VFK_PCI_OPEN_BIND) {
		rc = bind_vfio_pci(d, v->bdf);
		if (rc)
			goto fail;
	}
	if (!(flags & VFK_PCI_OPEN_TYPE1)) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", v->bdf);
		rc = SYS(d, list_dir, path, on_vfio_dev, &cdev);
		if (rc < 0 && rc != -ENOENT) {
			vfk_client_log(d, VFK_LOG_ERR, "%s: %s", path, vfk_strerror(rc));
			goto fail;
		}
		if (cdev.found == 1) {
			v->iommufd = true;
		} else if (flags & VFK_PCI_OPEN_IOMMUFD) {
			vfk_client_log(d, VFK_LOG_ERR,
				       "%s: no VFIO device cdev (kernel without CONFIG_VFIO_DEVICE_CDEV/IOMMUFD, or not bound to vfio-pci)",
				       v->bdf);
			rc = -ENODEV;
			goto fail;
		}
	}
	if (v->iommufd) {
		rc = open_iommufd(d, cdev.name);
		/* The vfio-dev sysfs entry exists whenever vfio-pci has the
		 * device; the cdev node and /dev/iommu only with IOMMUFD
		 * (Debian's kernels have neither): then type1, unless asked. */
		if (rc == -ENOENT && (v->devfd < 0 || v->container < 0) &&
		    !(flags & VFK_PCI_OPEN_IOMMUFD)) {
			vfk_client_log(d, VFK_LOG_INFO, "%s: no iommufd, using type1", v->bdf);
			vk_release(d);
			v->iommufd = false;
			rc = open_type1(d);
		}
	} else {
		rc = open_type1(d);
	}
	if (rc)
		goto fail;
	set_ops(d);
	vfk_client_log(d, VFK_LOG_INFO, "%s: opened through %s (group %d, %u device%s)",
		       v->bdf, v->iommufd ? "iommufd" : "the type1 container", v->group_nr,
		       v->group_devices, v->group_devices == 1 ? "" : "s");
	return 0;
fail:
	vk_release(d);
	free(v);
	d->tp = NULL;
	return rc;
}

/* ---- transport ops ---- */

struct kdev_info {
	uint32_t argsz, flags, num_regions, num_irqs;
};

static int vk_get_info(struct vfk_device *d, struct vfk_device_info *out)
{
	struct kdev_info i = { .argsz = sizeof(i) };
	int rc = SYS(d, ioctl, vk(d)->devfd, VFIO_DEVICE_GET_INFO, &i);

	if (rc < 0)
		return rc;
	if (i.num_regions > CLIENT_MAX_REGIONS) {
		vfk_client_log(d, VFK_LOG_WARN, "%u regions, using the first %u",
			       i.num_regions, CLIENT_MAX_REGIONS);
		i.num_regions = CLIENT_MAX_REGIONS;
	}
	if (i.num_irqs > CLIENT_MAX_IRQS)
		i.num_irqs = CLIENT_MAX_IRQS;
	out->flags = i.flags;
	out->num_regions = i.num_regions;
	out->num_irqs = i.num_irqs;
	return 0;
}

static int vk_get_region_info(struct vfk_device *d, uint32_t index,
			      struct region_cache *rc)
{
	struct vk *v = vk(d);
	struct vfio_region_info fixed = { .index = index };
	bool has_sparse = false;
	uint8_t *buf;
	size_t len;
	int err;

	err = info_ioctl(d, v->devfd, VFIO_DEVICE_GET_REGION_INFO, &fixed, sizeof(fixed),
			 256, &buf, &len);
	if (err == -EINVAL) {
		/* vfio-pci's answer for a region the function does not have
		 * (the VGA region of a non-VGA device): absent, like a BAR
		 * it reports with size 0, not a failure of the device. */
		vfk_client_log(d, VFK_LOG_DEBUG, "region %u: the kernel has none (EINVAL)", index);
		memset(&rc->info, 0, sizeof(rc->info));
		rc->info.index = index;
		vfk_region_set_areas(d, rc, false, false);
		rc->map_fd = -1;
		return 0;
	}
	if (err) {
		vfk_client_log(d, VFK_LOG_ERR, "region %u: VFIO_DEVICE_GET_REGION_INFO: %s",
			       index, vfk_strerror(err));
		return err;
	}
	memcpy(&fixed, buf, sizeof(fixed));
	if (fixed.index != index) {
		err = -EPROTO;
		goto out;
	}
	memset(&rc->info, 0, sizeof(rc->info));
	rc->info.index = index;
	rc->info.flags = fixed.flags & VFK_REGION_FLAGS_KNOWN;
	rc->info.size = fixed.size;
	rc->info.offset = fixed.offset;
	if ((fixed.flags & VFIO_REGION_INFO_FLAG_CAPS) && fixed.cap_offset) {
		err = vfk_region_parse_caps(d, rc, buf, len, fixed.cap_offset, &has_sparse);
		if (err) {
			vfk_client_log(d, VFK_LOG_ERR, "region %u: malformed capabilities", index);
			goto out;
		}
	}
	vfk_region_set_areas(d, rc, (fixed.flags & VFIO_REGION_INFO_FLAG_MMAP) && fixed.size,
			     has_sparse);
	rc->map_fd = rc->info.mappable ? v->devfd : -1;
	err = 0;
out:
	free(buf);
	return err;
}

static int vk_region_rw(struct vfk_device *d, bool write, bool posted,
			uint32_t index, uint64_t off, void *buf, size_t count)
{
	uint64_t base = d->regions[index].info.offset;
	long n;

	(void)posted;
	if (write)
		n = SYS(d, pwrite, vk(d)->devfd, buf, count, base + off);
	else
		n = SYS(d, pread, vk(d)->devfd, buf, count, base + off);
	if (n < 0)
		return (int)n;
	return (size_t)n == count ? 0 : -EIO;
}

static int vk_get_irq_info(struct vfk_device *d, uint32_t index,
			   struct vfk_irq_info *out)
{
	struct vfio_irq_info i = { .argsz = sizeof(i), .index = index };
	int rc = SYS(d, ioctl, vk(d)->devfd, VFIO_DEVICE_GET_IRQ_INFO, &i);

	if (rc < 0)
		return rc;
	if (i.index != index || i.count > 65536)
		return -EPROTO;
	out->flags = i.flags;
	out->count = i.count;
	return 0;
}

static int vk_set_irqs(struct vfk_device *d, uint32_t flags, uint32_t index,
		       uint32_t start, uint32_t count, const int *fds,
		       const uint8_t *bools)
{
	size_t each = (flags & VFIO_IRQ_SET_DATA_EVENTFD) ? 4 :
		      (flags & VFIO_IRQ_SET_DATA_BOOL) ? 1 : 0;
	size_t sz = sizeof(struct vfio_irq_set) + each * count;
	struct vfio_irq_set *s;
	int rc;

	if (count > 65536)
		return -EINVAL;
	s = calloc(1, sz);
	if (!s)
		return -ENOMEM;
	s->argsz = (uint32_t)sz;
	s->flags = flags;
	s->index = index;
	s->start = start;
	s->count = count;
	if (each == 4)
		memcpy(s->data, fds, 4 * (size_t)count);
	else if (each == 1)
		memcpy(s->data, bools, count);
	rc = SYS(d, ioctl, vk(d)->devfd, VFIO_DEVICE_SET_IRQS, s);
	free(s);
	if (rc > 0) {
		/* vfio-pci: fewer vectors than asked can be allocated, and
		 * it says how many. */
		vfk_client_log(d, VFK_LOG_WARN, "IRQ %u: only %d vectors available", index, rc);
		return -ENOSPC;
	}
	return rc;
}

static int vk_dma_map(struct vfk_device *d, const struct vfk_dma_mapping *m)
{
	struct vk *v = vk(d);
	int rc;

	if (!m->vaddr)
		return -EINVAL; /* the kernel's IOMMU maps addresses, not fds */
	if (v->iommufd) {
		struct vfk_iommu_ioas_map q = {
			.size = sizeof(q), .flags = VFK_IOMMU_IOAS_MAP_FIXED_IOVA,
			.ioas_id = v->ioas_id, .user_va = (uintptr_t)m->vaddr,
			.length = m->size, .iova = m->iova,
		};

		if (m->prot & VFK_DMA_READ)
			q.flags |= VFK_IOMMU_IOAS_MAP_READABLE;
		if (m->prot & VFK_DMA_WRITE)
			q.flags |= VFK_IOMMU_IOAS_MAP_WRITEABLE;
		rc = SYS(d, ioctl, v->container, VFK_IOMMU_IOAS_MAP, &q);
	} else {
		struct vfio_iommu_type1_dma_map q = {
			.argsz = sizeof(q), .vaddr = (uintptr_t)m->vaddr,
			.iova = m->iova, .size = m->size,
		};

		if (m->prot & VFK_DMA_READ)
			q.flags |= VFIO_DMA_MAP_FLAG_READ;
		if (m->prot & VFK_DMA_WRITE)
			q.flags |= VFIO_DMA_MAP_FLAG_WRITE;
		rc = SYS(d, ioctl, v->container, VFIO_IOMMU_MAP_DMA, &q);
	}
	if (rc < 0) {
		vfk_client_log(d, VFK_LOG_WARN, "DMA map of %#llx+%#llx: %s",
			       (unsigned long long)m->iova, (unsigned long long)m->size,
			       vfk_strerror(rc));
		return rc;
	}
	return 0;
}

static int type1_unmap(struct vfk_device *d, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_iommu_type1_dma_unmap q = {
		.argsz = sizeof(q), .flags = flags, .iova = iova, .size = size,
	};
	int rc = SYS(d, ioctl, vk(d)->container, VFIO_IOMMU_UNMAP_DMA, &q);

	return rc < 0 ? rc : 0;
}

static int vk_dma_unmap(struct vfk_device *d, uint64_t iova, uint64_t size, bool all)
{
	struct vk *v = vk(d);
	int rc = 0;

	if (v->iommufd) {
		struct vfk_iommu_ioas_unmap q = {
			.size = sizeof(q), .ioas_id = v->ioas_id,
			.iova = all ? 0 : iova, .length = all ? UINT64_MAX : size,
		};

		rc = SYS(d, ioctl, v->container, VFK_IOMMU_IOAS_UNMAP, &q);
		/* Unmapping nothing is not an error for "all". */
		if (all && rc == -ENOENT)
			rc = 0;
	} else if (!all) {
		rc = type1_unmap(d, iova, size, 0);
	} else if (v->unmap_all) {
		rc = type1_unmap(d, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL);
	} else {
		/* Old kernels: what this handle mapped, one by one. */
		for (size_t i = 0; i < d->nents && !rc; i++)
			rc = type1_unmap(d, d->ents[i].iova, d->ents[i].size, 0);
	}
	return rc < 0 ? rc : 0;
}

static int vk_reset(struct vfk_device *d)
{
	int rc = SYS(d, ioctl, vk(d)->devfd, VFIO_DEVICE_RESET, NULL);

	return rc < 0 ? rc : 0;
}

static int vk_poll_fd(struct vfk_device *d)
{
	(void)d;
	return -ENOTSUP; /* the kernel sends no requests */
}

static int vk_dispatch(struct vfk_device *d)
{
	(void)d;
	return 0;
}

static void vk_close(struct vfk_device *d)
{
	struct vk *v = vk(d);

	vk_release(d);
	free(v);
	d->tp = NULL;
}

static int vk_iova_ranges(struct vfk_device *d, struct vfk_iova_range *out,
			  unsigned max, unsigned *n, uint64_t *pgsizes)
{
	struct vk *v = vk(d);

	for (unsigned i = 0; i < v->nr_ranges && i < max; i++)
		out[i] = v->ranges[i];
	*n = v->nr_ranges;
	*pgsizes = v->pgsizes;
	return 0;
}

static int vk_kernel_info(struct vfk_device *d, struct vfk_kernel_info *out)
{
	struct vk *v = vk(d);

	memset(out, 0, sizeof(*out));
	out->iommufd = v->iommufd;
	out->group = v->group_nr;
	out->group_devices = v->group_devices;
	out->device_fd = v->devfd;
	out->iova_pgsizes = v->pgsizes;
	snprintf(out->driver, sizeof(out->driver), "%s", v->driver);
	return 0;
}

#define KERNEL_OPS(nm)                                   \
	{                                                \
		.version = 2,                            \
		.name = nm,                              \
		.get_info = vk_get_info,                 \
		.get_region_info = vk_get_region_info,   \
		.region_rw = vk_region_rw,               \
		.get_irq_info = vk_get_irq_info,         \
		.set_irqs = vk_set_irqs,                 \
		.dma_map = vk_dma_map,                   \
		.dma_unmap = vk_dma_unmap,               \
		.reset = vk_reset,                       \
		.poll_fd = vk_poll_fd,                   \
		.dispatch = vk_dispatch,                 \
		.close = vk_close,                       \
		.iova_ranges = vk_iova_ranges,           \
		.kernel_info = vk_kernel_info,           \
	}

/* Two tables only for vfk_device_transport()'s name. */
const struct vfk_transport_ops vfk_kernel_ops = KERNEL_OPS("vfio-type1");
static const struct vfk_transport_ops kernel_iommufd_ops = KERNEL_OPS("vfio-iommufd");

static void set_ops(struct vfk_device *d)
{
	if (vk(d)->iommufd)
		d->ops = &kernel_iommufd_ops;
}
