/* SPDX-License-Identifier: MIT */
/*
 * The invariant check of the newer fuzz harnesses: a violation prints the
 * harness's name, the condition and where, and aborts, which libFuzzer
 * records as a crash with the input that caused it.
 */
#ifndef VFK_FUZZ_CHECK_H
#define VFK_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME (the harness's name) before including fuzz_check.h"
#endif

#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, FUZZ_NAME ": invariant violated: %s (%s:%d)\n", \
				#c, __FILE__, __LINE__);                          \
			abort();                                                  \
		}                                                                 \
	} while (0)

#endif
