/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: core.hooksPath from git's configuration files
 * (cli_sandbox_git.c has the syntax read and what is not).
 */
#pragma once

#include <stddef.h>

#define SB_GITCONFIG_MAX (1024 * 1024) /* a configuration file larger than this is refused */
#define SB_GITCONFIG_VALUE_MAX 4096

enum { SB_GIT_HOOKSPATH, SB_GIT_INCLUDE, SB_GIT_SUBMODULE, SB_GIT_KEY };
/* Called for each core.hooksPath value (SB_GIT_HOOKSPATH), each
 * include.path / includeIf.*.path value (SB_GIT_INCLUDE) and each
 * submodule.*.path value (SB_GIT_SUBMODULE: .gitmodules), in order;
 * a negative return stops the scan (-1). */
typedef int (*sb_git_config_cb)(void *ud, int kind, const char *value);
/* Scan s (n bytes): 0, or -1 malformed (git would refuse the file too),
 * too large, a value over SB_GITCONFIG_VALUE_MAX, or stopped by cb. */
int sb_git_config_scan(const char *s, size_t n, sb_git_config_cb cb, void *ud);
/* The same for the file at path: 1 read, 0 no such file (or not a regular
 * file), -errno (-EINVAL malformed, -EFBIG over SB_GITCONFIG_MAX). */
int sb_git_config_scan_file(const char *path, sb_git_config_cb cb, void *ud);
/* The last core.hooksPath value in s into out: 1 found, 0 none, -1 as
 * sb_git_config_scan or a value that does not fit in outlen. */
int sb_git_hookspath(const char *s, size_t n, char *out, size_t outlen);
/* Whether every key in s is one git init, git clone or a commit's
 * identity sets (cli_sandbox_git.c lists them): 1 yes, 0 no, -1 malformed. */
int sb_git_config_safe(const char *s, size_t n);
