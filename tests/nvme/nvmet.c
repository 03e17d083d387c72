/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvmet.h"

int nvt_file(struct nvt *t, uint64_t size)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	snprintf(t->file, sizeof(t->file), "%s/vfk-nvme.XXXXXX", dir ? dir : "/var/tmp");
	fd = mkstemp(t->file);
	if (fd < 0) {
		t->file[0] = 0;
		return -errno;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int rc = -errno;

		close(fd);
		unlink(t->file);
		t->file[0] = 0;
		return rc;
	}
	close(fd);
	return 0;
}

int nvt_start(struct nvt *t, const char *const *args)
{
	const char *argv[24];
	int n = 0, err;

	argv[n++] = "nvme";
	argv[n++] = "-q";
	while (args && *args && n < 20)
		argv[n++] = *args++;
	if (t->file[0]) {
		argv[n++] = "--backing";
		argv[n++] = t->file;
	}
	argv[n] = NULL;
	err = tsrv_start_exec(&t->srv, argv);
	if (err)
		return err;
	t->dev = tsrv_open(&t->srv, &err);
	return t->dev ? 0 : err;
}

int nvt_open(struct nvt *t, const struct nvd_opts *o)
{
	return nvd_open(t->dev, o, &t->d);
}

void nvt_close(struct nvt *t)
{
	nvd_close(t->d);
	t->d = NULL;
	if (t->dev)
		vfk_device_close(t->dev);
	t->dev = NULL;
}

int nvt_stop(struct nvt *t)
{
	int st = 0; /* no server left to stop: nothing failed here */

	nvt_close(t);
	if (t->srv.pid > 0)
		st = tsrv_stop(&t->srv);
	if (t->file[0])
		unlink(t->file);
	t->file[0] = 0;
	return st;
}

void nvt_pattern(uint8_t *p, size_t len, uint64_t lba, uint32_t seed)
{
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = (uint32_t)(lba + i / 512) * 2654435761u ^ (uint32_t)(i % 512) ^ seed;

		memcpy(p + i, &v, len - i < 4 ? len - i : 4);
	}
}

bool nvt_check(const uint8_t *p, size_t len, uint64_t lba, uint32_t seed)
{
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = (uint32_t)(lba + i / 512) * 2654435761u ^ (uint32_t)(i % 512) ^ seed;

		if (memcmp(p + i, &v, len - i < 4 ? len - i : 4))
			return false;
	}
	return true;
}

uint64_t nvt_requests(struct nvt *t)
{
	struct vfk_client_stats st;

	vfk_device_get_stats(t->dev, &st);
	return st.requests;
}

int nvt_admin(struct nvt *t, struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvme_cqe cqe;
	int rc = nvd_cmd(t->d, 0, cmd, &cqe);

	if (rc)
		return rc;
	if (dw0)
		*dw0 = cqe.dw0;
	return nvd_status(&cqe);
}

int nvt_get_log(struct nvt *t, uint8_t lid, void *buf, uint32_t len, bool rae)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_GET_LOG, .nsid = 0xffffffffu };
	uint32_t numd = len / 4 - 1;

	cmd.cdw10 = lid | (rae ? 1u << 15 : 0) | ((numd & 0xffff) << 16);
	cmd.cdw11 = numd >> 16;
	nvd_build_prp(t->d, &cmd, t->d->buf_iova, len, t->d->list, t->d->list_iova);
	memset(t->d->buf, 0xee, len);
	{
		int rc = nvt_admin(t, &cmd, NULL);

		if (rc == 0)
			memcpy(buf, t->d->buf, len);
		return rc;
	}
}

int nvt_identify(struct nvt *t, uint8_t cns, uint32_t nsid, void *buf)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid, .cdw10 = cns };
	int rc;

	nvd_build_prp(t->d, &cmd, t->d->buf_iova, 4096, t->d->list, t->d->list_iova);
	rc = nvt_admin(t, &cmd, NULL);
	if (rc == 0 && buf)
		memcpy(buf, t->d->buf, 4096);
	return rc;
}

int nvt_set_feature(struct nvt *t, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_SET_FEAT, .cdw10 = fid, .cdw11 = cdw11 };

	return nvt_admin(t, &cmd, dw0);
}

int nvt_get_feature(struct nvt *t, uint8_t fid, uint8_t sel, uint32_t cdw11, uint32_t *dw0)
{
	struct nvme_sqe cmd = { .opc = NVME_ADM_GET_FEAT, .cdw10 = fid | ((uint32_t)sel << 8),
				.cdw11 = cdw11 };

	return nvt_admin(t, &cmd, dw0);
}
