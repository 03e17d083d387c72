/* SPDX-License-Identifier: MIT */
/* devmem device model: see devmem.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devmem.h"

struct devmem {
	struct vfk_shm *usemem, *resmem;
};

static int bar_read(struct vfk_dev *dev, unsigned bar, uint64_t off, void *buf,
		    uint32_t count)
{
	uint64_t regs[3] = { DEVMEM_MAGIC, DEVMEM_USEMEM_LEN, DEVMEM_RESMEM_LEN };
	uint8_t *b = buf;

	(void)dev;
	if (bar != 0)
		return -EINVAL;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t o = off + i;

		b[i] = o < sizeof(regs) ? (uint8_t)(regs[o / 8] >> (8 * (o % 8))) : 0;
	}
	return 0;
}

static const struct vfk_dev_ops devmem_ops = {
	.version = VFK_DEV_OPS_VERSION,
	.name = "devmem",
	.bar_read = bar_read,
};

/* Open (or create) the backing file and make it at least `len` bytes. */
static int open_backing(const char *path, size_t len, struct vfk_shm **out)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		rc = -EINVAL;
		goto fail;
	}
	if (S_ISREG(st.st_mode) && (size_t)st.st_size < len &&
	    ftruncate(fd, (off_t)len) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = vfk_shm_from_fd(fd, len, out);
	if (rc)
		goto fail;
	return 0;
fail:
	close(fd);
	return rc;
}

int devmem_create(const struct devmem_opts *o, struct vfk_dev **out)
{
	static const struct vfk_pci_id id = {
		.vendor = DEVMEM_VENDOR, .device = DEVMEM_DEVICE,
		.subsys_vendor = DEVMEM_VENDOR, .subsys_device = 0x0001,
		.class_code = 0x030200, /* 3D controller, as a GPU would be */
		.revision = 1,
	};
	struct devmem_opts defaults = { 0 };
	struct devmem *m;
	struct vfk_dev *dev = NULL;
	int rc;

	if (!o)
		o = &defaults;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if ((rc = vfk_dev_create(&devmem_ops, m, &dev)))
		goto fail;
	if (o->page_size && (rc = vfk_dev_set_page_size(dev, o->page_size)))
		goto fail;
	if ((rc = vfk_pci_set_id(dev, &id)) ||
	    (rc = vfk_dev_set_policy(dev, &o->policy)))
		goto fail;
	rc = o->backing ? open_backing(o->backing, DEVMEM_USEMEM_LEN, &m->usemem)
			: vfk_shm_create(DEVMEM_USEMEM_LEN, "devmem-usemem", &m->usemem);
	if (rc)
		goto fail;
	if ((rc = vfk_shm_create(DEVMEM_RESMEM_LEN, "devmem-resmem", &m->resmem)))
		goto fail;
	if ((rc = vfk_dev_set_bar(dev, 0, &(struct vfk_bar_desc){ .size = 4096 })) ||
	    (rc = vfk_dev_set_memory_bar(dev, 2, m->resmem, 0, DEVMEM_RESMEM_LEN,
					 VFK_MAP_WC)) ||
	    (rc = vfk_dev_set_memory_bar(dev, 4, m->usemem, 0, DEVMEM_USEMEM_LEN,
					 VFK_MAP_WC | VFK_MAP_CACHED)) ||
	    (rc = vfk_pci_add_pm(dev)) ||
	    (rc = vfk_pci_add_express(dev, VFK_PCIE_ENDPOINT, VFK_PCIE_FLR)) ||
	    (rc = vfk_dev_realize(dev)))
		goto fail;
	*out = dev;
	return 0;
fail:
	vfk_dev_destroy(dev);
	vfk_shm_put(m->usemem);
	vfk_shm_put(m->resmem);
	free(m);
	return rc;
}

void devmem_destroy(struct vfk_dev *dev)
{
	struct devmem *m;

	if (!dev)
		return;
	m = vfk_dev_user(dev);
	vfk_dev_destroy(dev);
	vfk_shm_put(m->usemem);
	vfk_shm_put(m->resmem);
	free(m);
}
