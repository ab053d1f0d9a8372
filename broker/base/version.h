/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's version: --version, GET /v1/health, status, /metrics. */
#pragma once

#define CB_VERSION_STRING "0.1.0"
