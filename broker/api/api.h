/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api/: the routes, the only layer that composes subsystems.  main.c calls
 * api_routes_register once, at start, before the servers: it hands http/
 * the route table (api_routes.c) and admin.sock's gate.
 */
#pragma once

/* 0, or -EINVAL with cb_error_last() (a table http/ refuses). */
int api_routes_register(void);
