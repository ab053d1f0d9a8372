/* SPDX-License-Identifier: Apache-2.0 */
/* The uid behind a loopback TCP connection, through sock_diag (the kernel's
 * socket table: the peer socket's owner), for --listen-tcp. */
#pragma once

#include <sys/types.h>

/* The owner uid of the socket at the other end of the accepted TCP socket
 * fd (found by its exact address/port 4-tuple).  0, or -ENOENT when the
 * peer socket is gone, -EPROTO on a malformed answer, -errno. */
int cb_tcp_peer_uid(int fd, uid_t *ret);
