/* SPDX-License-Identifier: MIT */
/*
 * vfiokit bench: runs the benchmark program.  It is a separate binary
 * (bench/) because it links the allocator through counters, to measure
 * "no heap allocation on the request path" instead of assuming it; the
 * tool itself should not carry that.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

int cmd_bench(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	const char *dir;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	static const char *const rel[] = { "vfiokit-bench", "../bench/vfiokit-bench" };

	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, rel[i]);
			if (access(path, X_OK) == 0) {
				argv[0] = path;
				execv(path, argv);
			}
		}
	}
	argv[0] = "vfiokit-bench";
	execvp("vfiokit-bench", argv);
	fprintf(stderr, "vfiokit bench: cannot run vfiokit-bench: %s\n", strerror(errno));
	return 1;
}
