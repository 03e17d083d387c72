/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "vfiokit/common.h"

#define STR2(x) #x
#define STR(x) STR2(x)

const char *vfk_strerror(int err)
{
	/* strerror() names every errno the library returns; its buffer is
	 * static in glibc for known values, which is all we pass. */
	return strerror(err < 0 ? -err : err);
}

const char *vfk_version_string(void)
{
	return STR(VFK_VERSION_MAJOR) "." STR(VFK_VERSION_MINOR) "." STR(VFK_VERSION_PATCH);
}
