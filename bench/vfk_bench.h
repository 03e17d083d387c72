/* SPDX-License-Identifier: MIT */
/*
 * vfiokit benchmark: one entry point, used by the `vfiokit-bench` program
 * and by `vfiokit bench`.  See bench/README.md for what it measures.
 *
 * A program that calls it must be linked with bench_dep (bench/meson.build):
 * the link arguments that count heap allocations come with it.
 */
#ifndef VFK_BENCH_H
#define VFK_BENCH_H

/* argv[0] is the command name; returns the process exit status. */
int vfk_bench_main(int argc, char **argv);

#endif
