#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Make a credbroker cbseal1 blob with PyNaCl only (no credbroker code): the
reference for README's "Sealed provisioning" format section, and the
cross-implementation check in test-provision.sh.

  provision-seal.py cbpk1.KEY NAME [--host H]... [--inject T] [--not-after UNIXTIME] < VALUE
"""
import argparse
import base64
import hashlib
import struct
import sys
import time

from nacl.public import PublicKey, SealedBox


def lv(b):
    return struct.pack(">I", len(b)) + b


def meta(inject=None, hosts=(), methods=(), prefixes=(), not_after=0):
    # keys/meta.h: (u8 tag, u32 length, bytes) in increasing tag order; a
    # list field's bytes are (u32 length, text) per entry; absent = omitted.
    out = b""
    if inject:
        out += bytes([1]) + lv(inject.encode())
    for tag, items in ((2, hosts), (3, methods), (4, prefixes)):
        if items:
            out += bytes([tag]) + lv(b"".join(lv(i.encode()) for i in items))
    if not_after:
        out += bytes([5]) + lv(struct.pack(">Q", not_after))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipient")
    ap.add_argument("name")
    ap.add_argument("--host", action="append", default=[])
    ap.add_argument("--inject")
    ap.add_argument("--not-after", type=int, default=0)
    a = ap.parse_args()
    if not a.recipient.startswith("cbpk1."):
        sys.exit("recipient must be cbpk1.…")
    pk = base64.urlsafe_b64decode(a.recipient[6:] + "=")
    assert len(pk) == 32
    key_id = hashlib.blake2b(pk, digest_size=32).digest()[:8]
    value = sys.stdin.buffer.read()
    payload = (bytes([1]) + key_id + struct.pack(">QQ", int(time.time()), a.not_after)
               + lv(a.name.encode()) + lv(meta(a.inject, a.host)) + lv(value))
    box = key_id + SealedBox(PublicKey(pk)).encrypt(payload)
    print("cbseal1." + base64.urlsafe_b64encode(box).decode().rstrip("="))


main()
