/* SPDX-License-Identifier: MIT */
/*
 * vfiokit serve MODEL: a vfio-user backend program.  Follows the spec's
 * conventions: never daemonizes, honours SIGTERM, accepts --socket-path or
 * --fd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"
#include "tools.h"

static struct vfk_server *g_srv;

static void on_signal(int sig)
{
	(void)sig;
	if (g_srv)
		vfk_server_stop(g_srv); /* async-signal-safe: an eventfd write */
}

void tool_log(void *user, enum vfk_log_level level, const char *msg)
{
	static const char *names[8] = { [VFK_LOG_ERR] = "error", [VFK_LOG_WARN] = "warning",
					[VFK_LOG_INFO] = "info", [VFK_LOG_DEBUG] = "debug" };
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "%s[%ld.%03ld] %s: %s\n", user ? (const char *)user : "",
		(long)ts.tv_sec, ts.tv_nsec / 1000000, names[level & 7] ? names[level & 7] : "log",
		msg);
}

static void serve_usage(FILE *f)
{
	fprintf(f,
		"usage: vfiokit serve MODEL (--socket PATH | --fd N) [options]\n"
		"\n"
		"Serve device MODEL over vfio-user until SIGTERM or SIGINT.\n"
		"\n"
		"  --socket PATH, --socket-path PATH\n"
		"                        listen on a new UNIX socket at PATH (a stale\n"
		"                        socket file is replaced, a live one refused)\n"
		"  --fd N                serve the already listening or connected\n"
		"                        UNIX stream socket N\n"
		"  --page-size N         host page size to assume for mmap decisions:\n"
		"                        4096, 16384 or 65536 (default: the real one)\n"
		"  --disabled-access P   BAR access with decoding off: 'eio' (vfio-pci,\n"
		"                        default) or 'ones' (all-ones reads, dropped writes)\n"
		"  --backing PATH        backing file for models that store data\n"
		"  --msix LAYOUT         where the MSI-X table is for a mapping client:\n"
		"                        'mappable' (default, vfio-pci since Linux 4.16:\n"
		"                        the BAR offered whole with MSIX_MAPPABLE),\n"
		"                        'trapped' (vfio-pci before 4.16: the table's\n"
		"                        pages never mapped) or 'relocated' (table and\n"
		"                        PBA in a BAR of their own, as QEMU's\n"
		"                        x-msix-relocation); models with MSI-X\n"
		"  --revoke-on-disable   while memory decoding is off, shared-memory BARs\n"
		"                        show all-ones and discard writes made through\n"
		"                        a client's mapping\n"
		"  --dma-mask BITS       the device's DMA address width (32..64)\n"
		"  --size BYTES          size of a memory-backed store (nvme without\n"
		"                        --backing), with an optional K, M or G suffix\n"
		"  --poll-us N           how long an I/O thread spins after its last work\n"
		"                        before it backs off to sleeping (nvme)\n"
		"  --trap-doorbells      doorbells by message instead of a mapped page;\n"
		"                        the I/O thread then sleeps until one is written\n"
		"  --device BDF          passthrough: the PCI function to re-export\n"
		"  --iommu KIND          passthrough: 'type1' or 'iommufd' (default: iommufd\n"
		"                        when the kernel has it, else type1)\n"
		"  --bind                passthrough: bind the function to vfio-pci first\n"
		"  --once                exit when the first client disconnects\n"
		"  --keep-state          keep the device's state when a client leaves\n"
		"                        (default: reset it, as vfio-pci does on close)\n"
		"  --stop-grace-ms N     on SIGTERM, ask a client that holds the device to\n"
		"                        release it (the REQ interrupt; QEMU's source\n"
		"                        answers it with an unplug) and wait N ms\n"
		"                        (default 10000; 0: do not ask); a second\n"
		"                        SIGTERM stops at once\n"
		"\n"
		"--page-size, --disabled-access, --revoke-on-disable and --dma-mask apply\n"
		"to every emulated model; an option a model cannot take is refused.\n"
		"  -v, --verbose         log every message\n"
		"  -q, --quiet           log errors only\n"
		"\nmodels:\n");
	for (size_t i = 0; vfk_model_at(i); i++)
		fprintf(f, "  %-12s %s\n", vfk_model_at(i)->name, vfk_model_at(i)->summary);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "page-size", required_argument, NULL, 'p' },
		{ "disabled-access", required_argument, NULL, 'd' },
		{ "backing", required_argument, NULL, 'b' },
		{ "msix", required_argument, NULL, 'm' },
		{ "revoke-on-disable", no_argument, NULL, 'r' },
		{ "dma-mask", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 'z' },
		{ "poll-us", required_argument, NULL, 'u' },
		{ "trap-doorbells", no_argument, NULL, 't' },
		{ "device", required_argument, NULL, 'D' },
		{ "iommu", required_argument, NULL, 'I' },
		{ "bind", no_argument, NULL, 'B' },
		{ "once", no_argument, NULL, 'o' },
		{ "keep-state", no_argument, NULL, 'K' },
		{ "stop-grace-ms", required_argument, NULL, 'G' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vfk_model_opts mo = { 0 };
	struct vfk_server_opts so = { .version = VFK_SERVER_OPTS_VERSION,
				      .log = tool_log, .log_level = VFK_LOG_INFO };
	const struct vfk_model *model;
	const char *path = NULL;
	struct vfk_dev *dev = NULL;
	struct sigaction sa;
	unsigned given = 0; /* enum vfk_model_opt bits of the options used */
	const char *given_name[16] = { 0 };
	int fd = -1, c, rc, li = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "vqh", lo, &li)) != -1) {
		static const struct { int c; unsigned bit; } bits[] = {
			{ 'p', VFK_OPT_PAGE_SIZE }, { 'd', VFK_OPT_DISABLED_ACCESS },
			{ 'm', VFK_OPT_MSIX }, { 'r', VFK_OPT_REVOKE }, { 'k', VFK_OPT_DMA_MASK },
			{ 'b', VFK_OPT_BACKING }, { 'z', VFK_OPT_SIZE }, { 'u', VFK_OPT_POLL_US },
			{ 't', VFK_OPT_TRAP_DOORBELLS }, { 'D', VFK_OPT_DEVICE },
			{ 'I', VFK_OPT_DEVICE }, { 'B', VFK_OPT_DEVICE },
		};
		char *end;

		for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
			if (bits[i].c == c) {
				given |= bits[i].bit;
				given_name[__builtin_ctz(bits[i].bit)] = li >= 0 ? lo[li].name : "?";
			}
		}
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'f':
			fd = (int)strtol(optarg, &end, 10);
			if (*end || fd < 0) {
				fprintf(stderr, "vfiokit serve: bad --fd '%s'\n", optarg);
				return 2;
			}
			break;
		case 'p':
			mo.page_size = strtoul(optarg, &end, 0);
			if (*end || (mo.page_size != 4096 && mo.page_size != 16384 &&
				     mo.page_size != 65536)) {
				fprintf(stderr, "vfiokit serve: --page-size must be 4096, 16384 or 65536\n");
				return 2;
			}
			break;
		case 'd':
			if (!strcmp(optarg, "eio")) {
				mo.policy.disabled_access = VFK_DISABLED_EIO;
			} else if (!strcmp(optarg, "ones")) {
				mo.policy.disabled_access = VFK_DISABLED_ALL_ONES;
			} else {
				fprintf(stderr, "vfiokit serve: --disabled-access is 'eio' or 'ones'\n");
				return 2;
			}
			break;
		case 'b':
			mo.backing = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "mappable")) {
				mo.policy.msix = VFK_MSIX_MAPPABLE;
			} else if (!strcmp(optarg, "trapped")) {
				mo.policy.msix = VFK_MSIX_TRAPPED;
			} else if (!strcmp(optarg, "relocated")) {
				mo.policy.msix = VFK_MSIX_RELOCATED;
			} else {
				fprintf(stderr, "vfiokit serve: --msix is 'mappable', 'trapped' or 'relocated'\n");
				return 2;
			}
			break;
		case 'r':
			mo.policy.revoke_on_disable = true;
			break;
		case 'k':
			mo.policy.dma_mask_bits = (unsigned)strtoul(optarg, &end, 10);
			if (*end || mo.policy.dma_mask_bits < 32 || mo.policy.dma_mask_bits > 64) {
				fprintf(stderr, "vfiokit serve: --dma-mask is 32..64\n");
				return 2;
			}
			break;
		case 'z': {
			unsigned long long v = strtoull(optarg, &end, 0);
			unsigned sh = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;

			if (sh)
				end++;
			if (*end || v == 0 || v > (~0ull >> sh)) {
				fprintf(stderr, "vfiokit serve: bad --size '%s'\n", optarg);
				return 2;
			}
			mo.size = v << sh;
			break;
		}
		case 'u':
			mo.poll_us = (unsigned)strtoul(optarg, &end, 10);
			mo.poll_us_set = true;
			if (*end) {
				fprintf(stderr, "vfiokit serve: bad --poll-us '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			mo.trap_doorbells = true;
			break;
		case 'D':
			mo.device = optarg;
			break;
		case 'I':
			if (!strcmp(optarg, "type1")) {
				mo.open_flags |= VFK_PCI_OPEN_TYPE1;
			} else if (!strcmp(optarg, "iommufd")) {
				mo.open_flags |= VFK_PCI_OPEN_IOMMUFD;
			} else {
				fprintf(stderr, "vfiokit serve: --iommu is 'type1' or 'iommufd'\n");
				return 2;
			}
			break;
		case 'B':
			mo.open_flags |= VFK_PCI_OPEN_BIND;
			break;
		case 'o':
			so.exit_on_disconnect = true;
			break;
		case 'K':
			so.keep_state_on_disconnect = true;
			break;
		case 'G': {
			long ms = strtol(optarg, &end, 10);

			if (*end || ms < 0 || ms > 3600000) {
				fprintf(stderr, "vfiokit serve: --stop-grace-ms is 0..3600000\n");
				return 2;
			}
			so.stop_grace_ms = ms ? (int)ms : -1;
			break;
		}
		case 'v':
			so.log_level = VFK_LOG_DEBUG;
			break;
		case 'q':
			so.log_level = VFK_LOG_ERR;
			break;
		case 'h':
			serve_usage(stdout);
			return 0;
		default:
			serve_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		serve_usage(stderr);
		return 2;
	}
	model = vfk_model_find(argv[optind]);
	if (!model) {
		fprintf(stderr, "vfiokit serve: unknown model '%s'\n", argv[optind]);
		serve_usage(stderr);
		return 2;
	}
	if (given & ~model->takes) {
		unsigned bit = given & ~model->takes;

		fprintf(stderr, "vfiokit serve: --%s does not apply to model %s%s\n",
			given_name[__builtin_ctz(bit)], model->name,
			(bit & VFK_OPT_MSIX) && (model->takes & VFK_OPT_DEVICE_WIDE)
				? " (it has no MSI-X)" : "");
		return 2;
	}
	if ((path == NULL) == (fd < 0)) {
		fprintf(stderr, "vfiokit serve: give exactly one of --socket and --fd\n");
		return 2;
	}
	so.log_user = "";
	mo.log = tool_log;
	mo.log_user = "";
	rc = model->create(&mo, &dev);
	if (rc) {
		fprintf(stderr, "vfiokit serve: cannot create %s: %s%s\n", model->name,
			vfk_strerror(rc),
			rc == -ENOSPC && mo.policy.msix == VFK_MSIX_RELOCATED
				? " (no free BAR slot for the relocated MSI-X table)" : "");
		return 1;
	}
	rc = vfk_server_create(dev, &so, &g_srv);
	if (rc) {
		fprintf(stderr, "vfiokit serve: cannot create server: %s\n", vfk_strerror(rc));
		model->destroy(dev);
		return 1;
	}
	rc = path ? vfk_server_listen(g_srv, path) : vfk_server_adopt_fd(g_srv, fd);
	if (rc) {
		fprintf(stderr, "vfiokit serve: cannot use %s%s: %s\n",
			path ? "socket " : "fd ", path ? path : argv[optind], vfk_strerror(rc));
		vfk_server_destroy(g_srv);
		model->destroy(dev);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (path)
		fprintf(stderr, "vfiokit: serving %s on %s\n", model->name, path);
	else
		fprintf(stderr, "vfiokit: serving %s on fd %d\n", model->name, fd);

	rc = vfk_server_run(g_srv);
	if (rc < 0)
		fprintf(stderr, "vfiokit serve: %s\n", vfk_strerror(rc));
	else
		fprintf(stderr, "vfiokit: stopped\n");
	vfk_server_destroy(g_srv);
	g_srv = NULL;
	model->destroy(dev);
	return rc < 0 ? 1 : 0;
}

int cmd_models(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; vfk_model_at(i); i++)
		printf("%-12s %s\n", vfk_model_at(i)->name, vfk_model_at(i)->summary);
	return 0;
}
