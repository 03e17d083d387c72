/* SPDX-License-Identifier: MIT */
/*
 * The client test body that the kernel transports pass (in the guest and
 * against the scripted kernel) run over vfio-user, against a real
 * `vfiokit serve dma-test` process.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "client_body.h"
#include "testlib.h"

static void report(void *arg, bool ok, const char *what)
{
	if (!ok) {
		(*(int *)arg)++;
		print_error("body check failed: %s\n", what);
	}
}

static struct tsrv srv;

static int stop_server(void **state)
{
	(void)state;
	if (srv.pid > 0)
		tsrv_stop(&srv);
	srv.pid = 0;
	return 0;
}

static void test_body_dma_test(void **state)
{
	static const char *const args[] = { "dma-test", NULL };
	struct body_expect e = { 0x1234, 0xdf01, true };
	struct vfk_device *d;
	struct tsrv *t = &srv;
	int failed = 0, err = 0;

	(void)state;
	assert_int_equal(tsrv_start_exec(t, args), 0);
	d = tsrv_open(t, &err);
	assert_non_null(d);
	assert_string_equal(vfk_device_transport(d), "vfio-user");
	assert_int_equal(client_body_run(d, &e, report, &failed), 0);
	assert_int_equal(failed, 0);
	vfk_device_close(d);
	assert_int_equal(tsrv_stop(t), 0);
	t->pid = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_body_dma_test, stop_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
