/* SPDX-License-Identifier: MIT */
/*
 * The socket channel over a real socketpair: messages split anywhere or
 * glued together arrive whole, fds reach the message they were sent with,
 * bad framing is reported, sending never blocks, and a blocking receive
 * keeps its deadline however the peer spreads the bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "testlib.h"

struct pair {
	struct vfk_channel *ch; /* receiving side, under test */
	int peer;               /* raw sending side */
};

static int setup(void **state)
{
	static struct pair p;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	assert_int_equal(vfk_sock_channel_create(sv[0], 4096, 8, &p.ch), 0);
	p.peer = sv[1];
	*state = &p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	p->ch->ops->destroy(p->ch);
	close(p->peer);
	return 0;
}

/* Build a message with payload bytes all equal to `fill`. */
static size_t msg(uint8_t *b, uint16_t id, size_t payload, uint8_t fill)
{
	struct vfk_hdr h = { id, VFK_CMD_REGION_WRITE, (uint32_t)(16 + payload), 0, 0 };

	vfk_hdr_encode(b, &h);
	memset(b + 16, fill, payload);
	return 16 + payload;
}

static int recv_one(struct pair *p, struct vfk_msg *m)
{
	for (int i = 0; i < 100; i++) {
		int rc = p->ch->ops->recv(p->ch, m);

		if (rc)
			return rc;
		p->ch->ops->wait(p->ch, 100);
	}
	return 0;
}

static void send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned n)
{
	assert_int_equal(raw_send_bytes(sock, buf, len, fds, n), 0);
}

static void test_split_bytes(void **state)
{
	struct pair *p = *state;
	uint8_t b[200];
	size_t n = msg(b, 5, 100, 0xab);
	struct vfk_msg m;

	/* One byte at a time: recv must report "not yet" until the end. */
	for (size_t i = 0; i < n - 1; i++) {
		assert_int_equal(write(p->peer, b + i, 1), 1);
		assert_int_equal(p->ch->ops->recv(p->ch, &m), 0);
	}
	assert_int_equal(write(p->peer, b + n - 1, 1), 1);
	assert_int_equal(recv_one(p, &m), 1);
	assert_int_equal(m.hdr_err, 0);
	assert_int_equal(m.hdr.id, 5);
	assert_int_equal(m.len, 100);
	assert_int_equal(m.payload[99], 0xab);
}

static void test_glued(void **state)
{
	struct pair *p = *state;
	uint8_t b[1024];
	size_t n = 0;
	struct vfk_msg m;

	for (int i = 0; i < 10; i++)
		n += msg(b + n, (uint16_t)i, (size_t)i * 7, (uint8_t)i);
	assert_int_equal(write(p->peer, b, n), (ssize_t)n);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(recv_one(p, &m), 1);
		assert_int_equal(m.hdr.id, i);
		assert_int_equal(m.len, i * 7);
		if (i)
			assert_int_equal(m.payload[0], i);
		/* After the first, the rest are already buffered. */
		assert_true(i == 9 || p->ch->ops->has_buffered(p->ch));
	}
	assert_false(p->ch->ops->has_buffered(p->ch));
}

static void test_fds_follow_their_message(void **state)
{
	struct pair *p = *state;
	uint8_t a[64], b[64], c[64];
	size_t na = msg(a, 1, 8, 1), nb = msg(b, 2, 8, 2), nc = msg(c, 3, 8, 3);
	int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
	int fds[2] = { e1, e2 };
	struct vfk_msg m;

	/* A (no fds), B (2 fds), C (no fds) sent before the receiver reads:
	 * the kernel may hand A and B over in one read; the fds are B's. */
	send_fds(p->peer, a, na, NULL, 0);
	send_fds(p->peer, b, nb, fds, 2);
	send_fds(p->peer, c, nc, NULL, 0);
	close(e1);
	close(e2);
	assert_int_equal(recv_one(p, &m), 1);
	assert_int_equal(m.hdr.id, 1);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(recv_one(p, &m), 1);
	assert_int_equal(m.hdr.id, 2);
	assert_int_equal(m.nfds, 2);
	vfk_msg_close_fds(&m);
	assert_int_equal(recv_one(p, &m), 1);
	assert_int_equal(m.hdr.id, 3);
	assert_int_equal(m.nfds, 0);
}

static void test_fds_in_continuation(void **state)
{
	struct pair *p = *state;
	uint8_t b[64];
	size_t n = msg(b, 1, 32, 1);
	int e = eventfd(0, EFD_CLOEXEC);
	struct vfk_msg m;

	/* fds on bytes where no message starts: a protocol violation. */
	send_fds(p->peer, b, 20, NULL, 0);
	assert_int_equal(p->ch->ops->recv(p->ch, &m), 0);
	send_fds(p->peer, b + 20, n - 20, &e, 1);
	close(e);
	assert_int_equal(recv_one(p, &m), -EPROTO);
}

static void test_too_many_fds(void **state)
{
	struct pair *p = *state;
	uint8_t b[64];
	size_t n = msg(b, 9, 4, 1);
	int fds[12];
	struct vfk_msg m;

	for (int i = 0; i < 12; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	send_fds(p->peer, b, n, fds, 12); /* the channel takes 8 */
	for (int i = 0; i < 12; i++)
		close(fds[i]);
	assert_int_equal(recv_one(p, &m), 1);
	assert_int_equal(m.hdr_err, -EMSGSIZE);
	vfk_msg_close_fds(&m);
}

static void test_oversized_then_ok(void **state)
{
	struct pair *p = *state;
	uint8_t big[5000], small[64];
	size_t n = msg(big, 1, 5000 - 16, 0xee), ns = msg(small, 2, 4, 0x11);
	struct vfk_msg m;

	/* Larger than the 4096-byte limit: reported, skipped, and the next
	 * message is framed correctly. */
	assert_int_equal(write(p->peer, big, n), (ssize_t)n);
	assert_int_equal(write(p->peer, small, ns), (ssize_t)ns);
	assert_int_equal(recv_one(p, &m), 1);
	assert_true(m.oversized);
	assert_int_equal(m.hdr.id, 1);
	assert_int_equal(recv_one(p, &m), 1);
	assert_false(m.oversized);
	assert_int_equal(m.hdr.id, 2);
	assert_int_equal(m.payload[0], 0x11);
}

static void test_unframeable(void **state)
{
	struct pair *p = *state;
	uint8_t b[16];
	struct vfk_hdr h = { 1, 1, 8, 0, 0 }; /* size below the header */
	struct vfk_msg m;

	vfk_hdr_encode(b, &h);
	assert_int_equal(write(p->peer, b, 16), 16);
	assert_int_equal(recv_one(p, &m), -EPROTO);
}

static void test_eof_mid_message(void **state)
{
	struct pair *p = *state;
	uint8_t b[64];
	size_t n = msg(b, 1, 40, 1);
	struct vfk_msg m;

	assert_int_equal(write(p->peer, b, n - 10), (ssize_t)(n - 10));
	shutdown(p->peer, SHUT_WR);
	assert_int_equal(recv_one(p, &m), -EPIPE);
}

static void test_send_never_blocks(void **state)
{
	struct pair *p = *state;
	uint8_t payload[3000];
	struct iovec iov = { payload, sizeof(payload) };
	int e = eventfd(0, EFD_CLOEXEC), sent = 0;
	uint8_t sink[65536];
	ssize_t total = 0, want;

	memset(payload, 0x5a, sizeof(payload));
	/* The peer reads nothing: the socket fills, then sends queue. */
	for (int i = 0; i < 400; i++) {
		struct vfk_hdr h = { .id = (uint16_t)i, .cmd = VFK_CMD_REGION_READ,
				     .flags = VFK_F_TYPE_REPLY };

		assert_int_equal(p->ch->ops->send(p->ch, &h, &iov, 1, i == 399 ? &e : NULL,
						  i == 399 ? 1 : 0), 0);
		sent++;
	}
	close(e); /* the queued copy of the fd must survive this */
	assert_true(p->ch->ops->tx_pending(p->ch));
	assert_int_equal(p->ch->ops->flush(p->ch, 0), -EAGAIN);
	want = (ssize_t)sent * (16 + (ssize_t)sizeof(payload));
	fcntl(p->peer, F_SETFL, O_NONBLOCK);
	while (total < want) {
		struct vfk_hdr h;
		int fds[8];
		unsigned nf = 0;
		int n = raw_recv(p->peer, &h, sink, sizeof(sink), fds, &nf, 1000);

		if (n == -ETIMEDOUT || n == -EAGAIN) {
			p->ch->ops->flush(p->ch, 0);
			continue;
		}
		assert_true(n >= 0);
		total += 16 + n;
		if (h.id == 399) {
			assert_int_equal(nf, 1); /* the fd travelled with its message */
			close(fds[0]);
		} else {
			assert_int_equal(nf, 0);
		}
		p->ch->ops->flush(p->ch, 0);
	}
	assert_int_equal(total, want);
	assert_false(p->ch->ops->tx_pending(p->ch));
}

static int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A child that writes `n` bytes of `b`, `chunk` bytes every `gap_ms`. */
static pid_t dribble(int sock, const uint8_t *b, size_t n, size_t chunk, int gap_ms)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (size_t i = 0; i < n; i += chunk) {
			size_t k = n - i < chunk ? n - i : chunk;

			if (write(sock, b + i, k) != (ssize_t)k)
				_exit(1);
			usleep((useconds_t)gap_ms * 1000);
		}
		_exit(0);
	}
	return pid;
}

/* A message that keeps arriving a byte at a time must not hold a blocking
 * receive past its timeout (each byte would otherwise restart the wait). */
static void test_recv_wait_trickle(void **state)
{
	struct pair *p = *state;
	static uint8_t b[1100];
	size_t n = msg(b, 9, 1000, 7);
	struct vfk_msg m;
	int64_t t0, took;
	pid_t pid;

	fcntl(p->ch->ops->fd(p->ch), F_SETFL, 0); /* recv_wait needs blocking */
	pid = dribble(p->peer, b, n, 1, 50); /* about 50 s for the whole message */
	t0 = ms_now();
	assert_int_equal(p->ch->ops->recv_wait(p->ch, &m, 300), -ETIMEDOUT);
	took = ms_now() - t0;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	print_message("# trickled message: timed out after %lld ms of 300\n", (long long)took);
	assert_true(took >= 250 && took < 1000);
}

/* A message in two halves 100 ms apart still arrives whole: the deadline
 * check between them does not cut a wait that has time left. */
static void test_recv_wait_split(void **state)
{
	struct pair *p = *state;
	static uint8_t b[1100];
	size_t n = msg(b, 10, 1000, 8);
	struct vfk_msg m;
	pid_t pid;
	int st;

	fcntl(p->ch->ops->fd(p->ch), F_SETFL, 0);
	pid = dribble(p->peer, b, n, n / 2 + 1, 100);
	assert_int_equal(p->ch->ops->recv_wait(p->ch, &m, 2000), 1);
	assert_int_equal(m.hdr.id, 10);
	assert_int_equal(m.payload[999], 8);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_split_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_glued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_follow_their_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_in_continuation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_then_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unframeable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_mid_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_never_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recv_wait_trickle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recv_wait_split, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
