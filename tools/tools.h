/* SPDX-License-Identifier: MIT */
/* The subcommands of the vfiokit tool. */
#ifndef VFK_TOOLS_H
#define VFK_TOOLS_H

#include "vfiokit/vfiokit.h"

int cmd_serve(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_models(int argc, char **argv);

/* Log callback printing to stderr with a timestamp; `user` is a prefix. */
void tool_log(void *user, enum vfk_log_level level, const char *msg);

#endif
