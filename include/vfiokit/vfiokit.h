/* SPDX-License-Identifier: MIT */
/* vfiokit: everything.  See common.h for the conventions. */
#ifndef VFIOKIT_H
#define VFIOKIT_H
#include "common.h"
#include "proto.h"
#include "server.h"
#include "client.h"
#endif
