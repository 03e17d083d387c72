/* SPDX-License-Identifier: MIT */
/*
 * Hostile servers: a scripted vfio-user server (a thread speaking the raw
 * protocol on a socket) answers the client library with values a real
 * server never sends, and the client must refuse each with -EPROTO before
 * using it; `vfiokit info` on the same server must exit non-zero with a
 * message.  The server answers VERSION, DEVICE_GET_INFO, config space and
 * every region but BAR0 correctly; BAR0's region info is the case's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "testlib.h"
#include "vfiokit/vfiokit.h"

/* What the scripted server answers for BAR0's DEVICE_GET_REGION_INFO. */
struct bad_region {
	const char *what;
	struct vfk_region_info_wire w; /* argsz 0: the request's argsz */
	const uint8_t *caps;           /* bytes after the structure */
	size_t caps_len;
	size_t pad;                    /* extra payload bytes past argsz */
	bool with_fd;                  /* a memfd comes with the reply */
};

struct script {
	int lfd;                       /* listening socket; -1: use `fd` */
	int fd;
	const struct bad_region *bar0;
	unsigned clients;              /* connections to serve, then stop */
};

static void answer(int fd, const struct vfk_hdr *h, const void *p, size_t len, int mfd)
{
	assert_int_equal(raw_send(fd, h->id, h->cmd, VFK_F_TYPE_REPLY, p, len,
				  mfd >= 0 ? &mfd : NULL, mfd >= 0 ? 1 : 0), 0);
}

static void answer_err(int fd, const struct vfk_hdr *h, int err)
{
	uint8_t b[16];
	struct vfk_hdr r = { .id = h->id, .cmd = h->cmd, .size = 16,
			     .flags = VFK_F_TYPE_REPLY | VFK_F_ERROR, .error = (uint32_t)err };

	memcpy(b, &r, 16);
	assert_int_equal(raw_send_bytes(fd, b, 16, NULL, 0), 0);
}

static void serve_one(int fd, const struct bad_region *bar0)
{
	static uint8_t in[4096], out[8192];
	int mfd = -1;

	for (;;) {
		struct vfk_hdr h;
		int n = raw_recv(fd, &h, in, sizeof(in), NULL, NULL, 5000);

		if (n < 0)
			break;
		switch (h.cmd) {
		case VFK_CMD_VERSION: {
			static const char js[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
			uint16_t v[2] = { 0, 0 };

			memcpy(out, v, 4);
			memcpy(out + 4, js, sizeof(js));
			answer(fd, &h, out, 4 + sizeof(js), -1);
			break;
		}
		case VFK_CMD_DEVICE_GET_INFO: {
			struct vfk_device_info_wire w = { sizeof(w), VFK_DEVICE_FLAGS_PCI, 9, 5 };

			answer(fd, &h, &w, sizeof(w), -1);
			break;
		}
		case VFK_CMD_DEVICE_GET_REGION_INFO: {
			struct vfk_region_info_wire req, w = { 0 };
			size_t len;

			memcpy(&req, in, sizeof(req));
			w.argsz = sizeof(w);
			w.index = req.index;
			if (req.index == VFK_PCI_CONFIG) {
				w.flags = VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE;
				w.size = 256;
			}
			len = sizeof(w);
			memset(out, 0, sizeof(out));
			if (req.index == 0) {
				w = bar0->w;
				if (!w.argsz)
					w.argsz = req.argsz;
				if (bar0->caps_len)
					memcpy(out + sizeof(w), bar0->caps, bar0->caps_len);
				len = sizeof(w) + bar0->caps_len + bar0->pad;
				if (bar0->with_fd) {
					mfd = memfd_create("bar0", MFD_CLOEXEC);
					assert_int_equal(ftruncate(mfd, 0x10000), 0);
				}
			}
			memcpy(out, &w, sizeof(w));
			answer(fd, &h, out, len, mfd);
			if (mfd >= 0)
				close(mfd);
			mfd = -1;
			break;
		}
		case VFK_CMD_REGION_READ: {
			struct vfk_region_rw_wire *a = (void *)in;
			uint32_t count = a->count < 4096 ? a->count : 4096;

			memcpy(out, in, sizeof(*a));
			((struct vfk_region_rw_wire *)out)->count = count;
			memset(out + sizeof(*a), 0, count);
			if (a->region == VFK_PCI_CONFIG && a->offset == 0 && count >= 4)
				memcpy(out + sizeof(*a), "\x34\x12\x99\x99", 4);
			answer(fd, &h, out, sizeof(*a) + count, -1);
			break;
		}
		default:
			answer_err(fd, &h, ENOSYS);
			break;
		}
	}
	close(fd);
}

static void *server_main(void *arg)
{
	struct script *s = arg;

	if (s->lfd < 0) {
		serve_one(s->fd, s->bar0);
		return NULL;
	}
	for (unsigned i = 0; i < s->clients; i++) {
		int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			break;
		serve_one(c, s->bar0);
	}
	return NULL;
}

/* The client library must refuse BAR0's info with -EPROTO. */
static void refused_by_library(const struct bad_region *bar0)
{
	struct script s = { .lfd = -1, .bar0 = bar0 };
	struct vfk_client_opts o = { .version = VFK_CLIENT_OPTS_VERSION };
	struct vfk_device *d = NULL;
	struct vfk_region_info ri;
	pthread_t t;
	int sv[2], rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, server_main, &s), 0);
	rc = vfk_device_open_fd(sv[0], &o, &d);
	if (rc)
		fail_msg("%s: open: %s", bar0->what, vfk_strerror(rc));
	rc = vfk_region_get_info(d, 0, &ri);
	if (rc != -EPROTO)
		fail_msg("%s: region info answered %d (%s), not -EPROTO", bar0->what, rc,
			 vfk_strerror(rc));
	/* The device stays usable for what was sound. */
	assert_int_equal(vfk_region_get_info(d, VFK_PCI_CONFIG, &ri), 0);
	vfk_device_close(d);
	pthread_join(t, NULL);
}

/* `vfiokit info` on the same server: non-zero, with a message. */
static void refused_by_info(const struct bad_region *bar0)
{
	struct script s = { .bar0 = bar0, .clients = 1 };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/vfk-hsrv.XXXXXX", cmd[512], line[256] = "";
	pthread_t t;
	FILE *p;
	int st;

	assert_non_null(mkdtemp(dir));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/s.sock", dir);
	s.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s.lfd >= 0);
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.lfd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, server_main, &s), 0);
	snprintf(cmd, sizeof(cmd), "%s info %s 2>&1 >/dev/null", vfiokit_path(), a.sun_path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p) && !strstr(line, "vfiokit info:"))
		;
	st = pclose(p);
	pthread_join(t, NULL);
	close(s.lfd);
	unlink(a.sun_path);
	rmdir(dir);
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
		fail_msg("%s: vfiokit info exited %d", bar0->what, st);
	if (!strstr(line, "vfiokit info:"))
		fail_msg("%s: vfiokit info said nothing", bar0->what);
}

static void check_case(const struct bad_region *b)
{
	refused_by_library(b);
	refused_by_info(b);
}

#define MAPPABLE (VFK_REGION_FLAG_READ | VFK_REGION_FLAG_WRITE | VFK_REGION_FLAG_MMAP)

/* The region's mmap range wraps past 2^64: mapping it would alias the
 * start of the fd (QEMU 11.1's client hands the guest wrong data here). */
static void test_region_offset_wraps(void **state)
{
	static const struct bad_region b = {
		.what = "offset + size wraps",
		.w = { .flags = MAPPABLE, .size = 0x10000, .offset = UINT64_MAX - 0xfff },
		.with_fd = true,
	};

	(void)state;
	check_case(&b);
}

/* A region of 2^64 - 1 bytes at offset 2: its last byte is past 2^64. */
static void test_region_size_wraps(void **state)
{
	static const struct bad_region b = {
		.what = "size wraps from offset 2",
		.w = { .flags = VFK_REGION_FLAG_READ, .size = UINT64_MAX, .offset = 2 },
	};

	(void)state;
	check_case(&b);
}

/* A reply longer than the argsz the client asked for. */
static void test_reply_longer_than_argsz(void **state)
{
	static const struct bad_region b = {
		.what = "reply longer than argsz",
		.w = { .flags = VFK_REGION_FLAG_READ, .size = 0x1000 },
		.pad = 512,
	};

	(void)state;
	check_case(&b);
}

/* A reply whose own argsz is smaller than the structure. */
static void test_reply_argsz_too_small(void **state)
{
	static const struct bad_region b = {
		.what = "reply argsz below the structure",
		.w = { .argsz = 8, .flags = VFK_REGION_FLAG_READ, .size = 0x1000 },
	};

	(void)state;
	check_case(&b);
}

/* A sparse area past the region's end. */
static void test_sparse_area_past_end(void **state)
{
	static const uint8_t caps[] = {
		/* header: id 1 (sparse mmap), version 1, next 0 */
		1, 0, 1, 0, 0, 0, 0, 0,
		/* nr_areas 1, reserved */
		1, 0, 0, 0, 0, 0, 0, 0,
		/* area: offset 0x8000, size 0x10000 (the region is 0x10000) */
		0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
	};
	static const struct bad_region b = {
		.what = "sparse area past the end",
		.w = { .flags = MAPPABLE | VFK_REGION_FLAG_CAPS, .cap_offset = 32, .size = 0x10000 },
		.caps = caps, .caps_len = sizeof(caps), .with_fd = true,
	};

	(void)state;
	check_case(&b);
}

/* Another region's index in the reply. */
static void test_wrong_index(void **state)
{
	static const struct bad_region b = {
		.what = "another region's index",
		.w = { .index = 2, .flags = VFK_REGION_FLAG_READ, .size = 0x1000 },
	};

	(void)state;
	check_case(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_region_offset_wraps),
		cmocka_unit_test(test_region_size_wraps),
		cmocka_unit_test(test_reply_longer_than_argsz),
		cmocka_unit_test(test_reply_argsz_too_small),
		cmocka_unit_test(test_sparse_area_past_end),
		cmocka_unit_test(test_wrong_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
