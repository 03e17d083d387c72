/* SPDX-License-Identifier: MIT */
/*
 * passthrough: a kernel VFIO device (vfio-pci, type1 or iommufd) served
 * again over vfio-user.  Config space is vfiokit's model, filled from the
 * real one; BARs are the real ones (mapped by the client where the kernel
 * allows mmap, reached by pread/pwrite with the client's access width
 * elsewhere); MSI-X/MSI/INTx vectors go to the kernel as the client's own
 * eventfds; DMA windows go into the kernel IOMMU at the client's IOVAs;
 * resets are the kernel's VFIO_DEVICE_RESET.
 */
#ifndef VFK_PASSTHROUGH_H
#define VFK_PASSTHROUGH_H

#include "vfiokit/vfiokit.h"

struct passthrough_opts {
	const char *device;     /* PCI address, e.g. "0000:00:03.0" */
	unsigned open_flags;    /* VFK_PCI_OPEN_* */
	vfk_log_fn log;         /* for what happens before a server exists */
	void *log_user;
	const struct vfk_syscalls *sys; /* NULL: the real kernel */
};

int passthrough_create(const struct passthrough_opts *o, struct vfk_dev **out);
void passthrough_destroy(struct vfk_dev *dev);

#endif
