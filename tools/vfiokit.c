/* SPDX-License-Identifier: MIT */
/* vfiokit: the command-line tool.  One binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "tools.h"
#include "vfiokit/common.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "serve", cmd_serve, "serve a device model over vfio-user" },
	{ "info", cmd_info, "describe a vfio-user device (config space, regions, IRQs)" },
	{ "demo", cmd_demo, "start a dma-test server and drive a DMA copy through it" },
	{ "bench", cmd_bench, "measure the request path next to raw floors (bench/README.md)" },
	{ "models", cmd_models, "list the device models" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vfiokit COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`vfiokit COMMAND --help` describes each command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vfiokit %s\n", vfk_version_string());
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vfiokit: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
