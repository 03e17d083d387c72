/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the nvme tests: a real `vfiokit serve nvme` process, a client
 * handle and the userspace driver (devices/nvme/nvme_drv.h) on top.
 */
#ifndef VFK_NVMET_H
#define VFK_NVMET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvme_drv.h"
#include "testlib.h"

struct nvt {
	struct tsrv srv;
	struct vfk_device *dev;
	struct nvd *d;
	char file[64];          /* backing file made by nvt_file(), or "" */
};

/* A sparse temporary file of `size` bytes in $TMPDIR (default /var/tmp,
 * a real file system: O_DIRECT works there, not on tmpfs). */
int nvt_file(struct nvt *t, uint64_t size);
/* exec `vfiokit serve nvme -q ARGS... [--backing FILE]`, connect. */
int nvt_start(struct nvt *t, const char *const *args);
/* nvd_open() on the connection. */
int nvt_open(struct nvt *t, const struct nvd_opts *o);
/* Close the driver and the connection (not the server). */
void nvt_close(struct nvt *t);
/* Close everything; the server's exit status (0 expected), or -1. */
int nvt_stop(struct nvt *t);

/* Fill / check a pattern that depends on the byte's LBA and offset. */
void nvt_pattern(uint8_t *p, size_t len, uint64_t lba, uint32_t seed);
bool nvt_check(const uint8_t *p, size_t len, uint64_t lba, uint32_t seed);

/* Client requests sent so far (vfio-user messages). */
uint64_t nvt_requests(struct nvt *t);

/* Admin command helpers returning the NVMe status (0 = success) or
 * -errno; dw0 of the completion in *dw0 when not NULL. */
int nvt_admin(struct nvt *t, struct nvme_sqe *cmd, uint32_t *dw0);
int nvt_get_log(struct nvt *t, uint8_t lid, void *buf, uint32_t len, bool rae);
int nvt_identify(struct nvt *t, uint8_t cns, uint32_t nsid, void *buf);
int nvt_set_feature(struct nvt *t, uint8_t fid, uint32_t cdw11, uint32_t *dw0);
int nvt_get_feature(struct nvt *t, uint8_t fid, uint8_t sel, uint32_t cdw11, uint32_t *dw0);

#define NVT_SC(sct, sc) ((uint16_t)(((sct) << 8) | (sc)))
/* The status without DNR/M/CRD bits. */
#define NVT_CODE(st) ((st) & 0x7ff)

#endif
