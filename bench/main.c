/* SPDX-License-Identifier: MIT */
/* vfiokit-bench: the benchmark as a program of its own. */
#include "vfk_bench.h"

int main(int argc, char **argv)
{
	return vfk_bench_main(argc, argv);
}
