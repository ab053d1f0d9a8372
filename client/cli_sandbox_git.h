/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: core.hooksPath from git's configuration files
 * (cli_sandbox_git.c has the syntax read and what is not).
 */
#pragma once

#include <stddef.h>

#define SB_GITCONFIG_MAX (1024 * 1024) /* a configuration file larger than this is refused */
#define SB_GITCONFIG_VALUE_MAX 4096

/* The last core.hooksPath value in s (n bytes) into out: 1 found, 0 none,
 * -1 malformed (git would refuse the file too), too large, or a value
 * that does not fit in outlen. */
int sb_git_hookspath(const char *s, size_t n, char *out, size_t outlen);
/* The same for the file at path: 1, 0 (none, or no such file), -errno
 * (-EINVAL malformed, -EFBIG over SB_GITCONFIG_MAX). */
int sb_git_hookspath_file(const char *path, char *out, size_t outlen);
