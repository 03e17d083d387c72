/* SPDX-License-Identifier: MIT */
/*
 * vfiokit: conventions shared by every part of the API.
 *
 * Error convention (the only one in vfiokit): a function that returns int
 * returns 0, or a non-negative count where its comment says so, on success,
 * and a negative errno value (-EINVAL, -ENOMEM, ...) on failure.  errno is
 * never the channel for a result.  A function that fails leaves its output
 * parameters untouched unless its comment says otherwise, and never calls a
 * callback it was given.
 *
 * Handles are opaque.  Every handle takes a `void *user` pointer at creation
 * that vfiokit hands back to callbacks and never dereferences.
 *
 * The library is silent: it writes nothing to stdout or stderr.  Diagnostics
 * go to the log callback set on a handle, if any.
 */
#ifndef VFIOKIT_COMMON_H
#define VFIOKIT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFK_VERSION_MAJOR 0
#define VFK_VERSION_MINOR 1
#define VFK_VERSION_PATCH 0

/* Severity of a log message, numerically equal to syslog(3) priorities. */
enum vfk_log_level {
	VFK_LOG_ERR = 3,   /* an operation failed or a peer misbehaved */
	VFK_LOG_WARN = 4,  /* something is off but the operation went on */
	VFK_LOG_INFO = 6,  /* lifecycle events: connect, disconnect, reset */
	VFK_LOG_DEBUG = 7, /* per-message detail; costs time when enabled */
};

/*
 * Log callback.  `msg` is a NUL-terminated line without a trailing newline,
 * valid only during the call.  Called on the thread that caused the event;
 * must not call back into the handle that logged.
 */
typedef void (*vfk_log_fn)(void *user, enum vfk_log_level level,
			   const char *msg);

/* A human-readable name for a negative errno value returned by vfiokit. */
const char *vfk_strerror(int err);

/* The library's version as "MAJOR.MINOR.PATCH". */
const char *vfk_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
