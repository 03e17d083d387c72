/* SPDX-License-Identifier: MIT */
/*
 * VERSION message: version numbers plus a JSON capabilities object (json-c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "vfiokit/proto.h"

void vfk_version_caps_default(struct vfk_version_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->max_msg_fds = VFK_DEFAULT_MAX_MSG_FDS;
	caps->max_data_xfer_size = VFK_DEFAULT_MAX_DATA_XFER;
	caps->pgsizes = VFK_DEFAULT_PGSIZES;
	caps->max_dma_maps = VFK_DEFAULT_MAX_DMA_MAPS;
	caps->twin_socket_fd_index = -1;
}

/* A JSON number that is a non-negative integer; json-c parses integers
 * beyond int64 as doubles, so doubles are refused. */
static int get_uint(struct json_object *o, uint64_t *out)
{
	int64_t v;

	if (!json_object_is_type(o, json_type_int))
		return -EINVAL;
	v = json_object_get_int64(o);
	if (v < 0)
		return -EINVAL;
	/* json-c saturates values above INT64_MAX; it keeps them as uint64
	 * internally, which get_uint64 returns exactly. */
	*out = json_object_get_uint64(o);
	return 0;
}

static uint32_t clamp32(uint64_t v, uint32_t limit)
{
	return v > limit ? limit : (uint32_t)v;
}

static int parse_caps(struct json_object *caps, struct vfk_version_caps *c)
{
	struct json_object *v, *m;
	uint64_t n;

	if (!json_object_is_type(caps, json_type_object))
		return -EINVAL;
	if (json_object_object_get_ex(caps, "max_msg_fds", &v)) {
		if (get_uint(v, &n))
			return -EINVAL;
		c->max_msg_fds = clamp32(n, VFK_LIMIT_MSG_FDS);
		c->present |= VFK_CAP_MAX_MSG_FDS;
	}
	if (json_object_object_get_ex(caps, "max_data_xfer_size", &v)) {
		if (get_uint(v, &n) || n == 0)
			return -EINVAL;
		c->max_data_xfer_size = clamp32(n, VFK_LIMIT_DATA_XFER);
		c->present |= VFK_CAP_MAX_DATA_XFER;
	}
	if (json_object_object_get_ex(caps, "pgsizes", &v)) {
		if (get_uint(v, &n) || n == 0)
			return -EINVAL;
		c->pgsizes = n;
		c->present |= VFK_CAP_PGSIZES;
	}
	if (json_object_object_get_ex(caps, "max_dma_maps", &v)) {
		if (get_uint(v, &n))
			return -EINVAL;
		c->max_dma_maps = clamp32(n, UINT32_MAX);
		c->present |= VFK_CAP_MAX_DMA_MAPS;
	}
	if (json_object_object_get_ex(caps, "write_multiple", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		c->write_multiple = json_object_get_boolean(v);
		c->present |= VFK_CAP_WRITE_MULTIPLE;
	}
	if (json_object_object_get_ex(caps, "migration", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return -EINVAL;
		if (json_object_object_get_ex(v, "pgsize", &m)) {
			if (get_uint(m, &n))
				return -EINVAL;
			c->mig_pgsize = n;
		}
		if (json_object_object_get_ex(v, "max_bitmap_size", &m)) {
			if (get_uint(m, &n))
				return -EINVAL;
			c->mig_max_bitmap_size = n;
		}
		c->present |= VFK_CAP_MIGRATION;
	}
	if (json_object_object_get_ex(caps, "twin_socket", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return -EINVAL;
		if (json_object_object_get_ex(v, "supported", &m)) {
			if (!json_object_is_type(m, json_type_boolean))
				return -EINVAL;
			c->twin_socket = json_object_get_boolean(m);
		}
		if (json_object_object_get_ex(v, "fd_index", &m)) {
			if (get_uint(m, &n) || n > VFK_LIMIT_MSG_FDS)
				return -EINVAL;
			c->twin_socket_fd_index = (int32_t)n;
		}
		c->present |= VFK_CAP_TWIN_SOCKET;
	}
	return 0;
}

int vfk_version_decode(const void *payload, size_t len, struct vfk_version *out)
{
	const uint8_t *p = payload;
	struct vfk_version v;
	struct json_tokener *tok;
	struct json_object *root, *caps;
	size_t json_len;
	int rc = 0;

	if (len < 4)
		return -EINVAL;
	memcpy(&v.major, p, 2);
	memcpy(&v.minor, p + 2, 2);
	vfk_version_caps_default(&v.caps);
	if (len == 4) {
		*out = v;
		return 0;
	}
	/* The JSON text must end with the payload's last byte, a NUL, and hold
	 * no other NUL. */
	json_len = len - 4;
	if (p[len - 1] != '\0' || strnlen((const char *)p + 4, json_len) != json_len - 1)
		return -EINVAL;
	if (json_len == 1) { /* just the NUL */
		*out = v;
		return 0;
	}
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, (const char *)p + 4, (int)(json_len - 1));
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)json_tokener_get_parse_end(tok) != json_len - 1) {
		rc = -EINVAL;
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		rc = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(root, "capabilities", &caps))
		rc = parse_caps(caps, &v.caps);
	if (!rc)
		*out = v;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

int vfk_version_encode(void *buf, size_t cap, const struct vfk_version *v)
{
	const struct vfk_version_caps *c = &v->caps;
	char *out = (char *)buf + 4;
	size_t room, used = 0;
	int n;

	if (cap < 5)
		return -ENOSPC;
	memcpy(buf, &v->major, 2);
	memcpy((uint8_t *)buf + 2, &v->minor, 2);
	room = cap - 4;

	/* Written by hand rather than with json-c: the members and their
	 * order are fixed, and it keeps encoding allocation-free. */
#define EMIT(...)                                                              \
	do {                                                                   \
		n = snprintf(out + used, room - used, __VA_ARGS__);            \
		if (n < 0 || (size_t)n >= room - used)                         \
			return -ENOSPC;                                        \
		used += (size_t)n;                                             \
	} while (0)

	EMIT("{\"capabilities\":{");
	const char *sep = "";
	if (c->present & VFK_CAP_MAX_MSG_FDS) {
		EMIT("%s\"max_msg_fds\":%u", sep, c->max_msg_fds);
		sep = ",";
	}
	if (c->present & VFK_CAP_MAX_DATA_XFER) {
		EMIT("%s\"max_data_xfer_size\":%u", sep, c->max_data_xfer_size);
		sep = ",";
	}
	if (c->present & VFK_CAP_PGSIZES) {
		EMIT("%s\"pgsizes\":%llu", sep, (unsigned long long)c->pgsizes);
		sep = ",";
	}
	if (c->present & VFK_CAP_MAX_DMA_MAPS) {
		EMIT("%s\"max_dma_maps\":%u", sep, c->max_dma_maps);
		sep = ",";
	}
	if (c->present & VFK_CAP_WRITE_MULTIPLE) {
		EMIT("%s\"write_multiple\":%s", sep,
		     c->write_multiple ? "true" : "false");
		sep = ",";
	}
	if (c->present & VFK_CAP_MIGRATION) {
		EMIT("%s\"migration\":{\"pgsize\":%llu,\"max_bitmap_size\":%llu}",
		     sep, (unsigned long long)c->mig_pgsize,
		     (unsigned long long)c->mig_max_bitmap_size);
		sep = ",";
	}
	if (c->present & VFK_CAP_TWIN_SOCKET) {
		EMIT("%s\"twin_socket\":{\"supported\":%s", sep,
		     c->twin_socket ? "true" : "false");
		if (c->twin_socket_fd_index >= 0)
			EMIT(",\"fd_index\":%d", c->twin_socket_fd_index);
		EMIT("}");
	}
	EMIT("}}");
#undef EMIT
	if (used + 1 > room)
		return -ENOSPC;
	out[used] = '\0';
	return (int)(4 + used + 1);
}
