/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

const char *vfiokit_path(void)
{
	const char *p = getenv("VFIOKIT");

	return p ? p : "vfiokit";
}

static int make_dir(struct tsrv *t)
{
	strcpy(t->dir, "/tmp/vfk-test.XXXXXX");
	if (!mkdtemp(t->dir))
		return -errno;
	snprintf(t->path, sizeof(t->path), "%s/s.sock", t->dir);
	return 0;
}

static int wait_socket(struct tsrv *t)
{
	for (int i = 0; i < 1000; i++) {
		struct stat st;

		if (stat(t->path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (!tsrv_alive(t))
			return -ECHILD;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

int tsrv_start_exec(struct tsrv *t, const char *const *args)
{
	const char *argv[32];
	int n = 0, rc;

	rc = make_dir(t);
	if (rc)
		return rc;
	argv[n++] = vfiokit_path();
	argv[n++] = "serve";
	while (args && *args && n < 28)
		argv[n++] = *args++;
	argv[n++] = "--socket";
	argv[n++] = t->path;
	argv[n] = NULL;
	t->pid = fork();
	if (t->pid < 0)
		return -errno;
	if (t->pid == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return wait_socket(t);
}

static volatile sig_atomic_t child_stop;
static struct vfk_server *child_srv;

static void child_term(int sig)
{
	(void)sig;
	child_stop = 1;
	if (child_srv)
		vfk_server_stop(child_srv);
}

int tsrv_start_fork(struct tsrv *t, tsrv_setup_fn setup, tsrv_teardown_fn teardown,
		    void *arg)
{
	int rc = make_dir(t);

	if (rc)
		return rc;
	t->pid = fork();
	if (t->pid < 0)
		return -errno;
	if (t->pid == 0) {
		struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION };
		struct vfk_dev *dev = NULL;
		struct sigaction sa = { .sa_handler = child_term };

		sigaction(SIGTERM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		if (setup(arg, &dev, &so))
			exit(90);
		if (vfk_server_create(dev, &so, &child_srv))
			exit(91);
		if (vfk_server_listen(child_srv, t->path))
			exit(92);
		rc = vfk_server_run(child_srv);
		vfk_server_destroy(child_srv);
		if (teardown)
			teardown(arg, dev);
		/* exit(), not _exit(): LeakSanitizer checks at exit. */
		exit(rc ? 93 : 0);
	}
	return wait_socket(t);
}

bool tsrv_alive(struct tsrv *t)
{
	return t->pid > 0 && waitpid(t->pid, NULL, WNOHANG) == 0;
}

int tsrv_stop(struct tsrv *t)
{
	int st = 0;

	if (t->pid <= 0)
		return -1;
	kill(t->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(t->pid, &st, WNOHANG);

		if (r == t->pid)
			break;
		if (i == 999) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &st, 0);
			st = 0xff00; /* report as exit status 255 */
		}
		usleep(10000);
	}
	t->pid = 0;
	unlink(t->path);
	rmdir(t->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int tsrv_fd_count(struct tsrv *t)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)t->pid);
	return count_dir(p);
}

long tsrv_cpu_ms(struct tsrv *t)
{
	char path[64], buf[1024];
	unsigned long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)t->pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: state is
	 * field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

int tsrv_connect(struct tsrv *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, t->path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

struct vfk_device *tsrv_open(struct tsrv *t, int *err)
{
	struct vfk_client_opts co = { .version = VFK_CLIENT_OPTS_VERSION,
				      .timeout_ms = 5000 };
	struct vfk_device *d = NULL;
	int rc = vfk_device_open_socket(t->path, &co, &d);

	if (err)
		*err = rc;
	return rc ? NULL : d;
}

int raw_send_bytes(int fd, const void *buf, size_t len, const int *fds,
		   unsigned nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(RAW_MAX_FDS * sizeof(int))];
	} cb;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t done = 0;

	if (nfds > RAW_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	while (done < len || (len == 0 && nfds)) {
		ssize_t n;

		iov.iov_base = (uint8_t *)buf + done;
		iov.iov_len = len - done;
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* The fds went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		done += (size_t)n;
		if (len == 0)
			break;
	}
	return 0;
}

int raw_send(int fd, uint16_t id, uint16_t cmd, uint32_t flags,
	     const void *payload, size_t len, const int *fds, unsigned nfds)
{
	struct vfk_hdr h = { .id = id, .cmd = cmd, .size = (uint32_t)(16 + len),
			     .flags = flags };
	uint8_t *m = malloc(16 + len);
	int rc;

	if (!m)
		return -ENOMEM;
	vfk_hdr_encode(m, &h);
	if (len)
		memcpy(m + 16, payload, len);
	rc = raw_send_bytes(fd, m, 16 + len, fds, nfds);
	free(m);
	return rc;
}

static int read_full(int fd, void *buf, size_t len, int timeout_ms, int *fds,
		     unsigned *nfds)
{
	uint8_t *b = buf;
	size_t got = 0;

	while (got < len) {
		union {
			struct cmsghdr a;
			char c[CMSG_SPACE(64 * sizeof(int))];
		} cb;
		struct iovec iov = { b + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cb.c, .msg_controllen = sizeof(cb.c) };
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			return n == 0 ? -EPIPE : -errno;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			for (unsigned i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (fds && nfds && *nfds < 8)
					fds[(*nfds)++] = f;
				else
					close(f);
			}
		}
		got += (size_t)n;
	}
	return 0;
}

int raw_recv(int fd, struct vfk_hdr *h, void *buf, size_t cap, int *fds,
	     unsigned *nfds, int timeout_ms)
{
	uint8_t hb[16];
	size_t len;
	int rc;

	if (nfds)
		*nfds = 0;
	rc = read_full(fd, hb, 16, timeout_ms, fds, nfds);
	if (rc)
		return rc;
	memcpy(&h->id, hb, 2);
	memcpy(&h->cmd, hb + 2, 2);
	memcpy(&h->size, hb + 4, 4);
	memcpy(&h->flags, hb + 8, 4);
	memcpy(&h->error, hb + 12, 4);
	if (h->size < 16)
		return -EPROTO;
	len = h->size - 16;
	if (len > cap) {
		/* Drain what does not fit so the stream stays framed. */
		uint8_t sink[4096];

		while (len) {
			size_t k = len < sizeof(sink) ? len : sizeof(sink);

			rc = read_full(fd, sink, k, timeout_ms, NULL, NULL);
			if (rc)
				return rc;
			len -= k;
		}
		return -E2BIG;
	}
	rc = read_full(fd, buf, len, timeout_ms, fds, nfds);
	return rc ? rc : (int)len;
}

int raw_negotiate(int fd)
{
	uint8_t buf[256];
	struct vfk_version v = { .major = 0, .minor = 0 };
	struct vfk_hdr h;
	int n;

	vfk_version_caps_default(&v.caps);
	v.caps.present = VFK_CAP_MAX_MSG_FDS | VFK_CAP_MAX_DATA_XFER;
	v.caps.max_msg_fds = 16;
	v.caps.max_data_xfer_size = 1 << 20;
	n = vfk_version_encode(buf, sizeof(buf), &v);
	if (n < 0 || raw_send(fd, 1, VFK_CMD_VERSION, 0, buf, (size_t)n, NULL, 0))
		return -EIO;
	n = raw_recv(fd, &h, buf, sizeof(buf), NULL, NULL, 5000);
	if (n < 0)
		return n;
	if (h.cmd != VFK_CMD_VERSION)
		return -EPROTO;
	if (h.flags & VFK_F_ERROR)
		return h.error ? -(int)h.error : -EPROTO;
	return 0;
}
