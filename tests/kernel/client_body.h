/* SPDX-License-Identifier: MIT */
/*
 * One client test body for every transport: what any PCI device reached
 * through vfiokit's client must do, whether it is a vfio-user server or a
 * kernel VFIO device (type1 or iommufd).  It reports each check through a
 * callback, so cmocka tests, TAP programs and guest binaries share it.
 */
#ifndef VFK_CLIENT_BODY_H
#define VFK_CLIENT_BODY_H

#include <stdbool.h>
#include <stdint.h>

#include "vfiokit/vfiokit.h"

struct body_expect {
	uint16_t vendor, device; /* 0: not checked */
	bool irq_required;       /* MSI or MSI-X must exist */
};

/* Called once per check; `what` describes it. */
typedef void (*body_report_fn)(void *arg, bool ok, const char *what);

/* Run every check; returns the number that failed. */
int client_body_run(struct vfk_device *dev, const struct body_expect *exp,
		    body_report_fn report, void *arg);

#endif
