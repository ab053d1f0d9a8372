# SPDX-License-Identifier: Apache-2.0
"""The spellings of a secret value that libraries write, computed with
Python's own encoders (independently of keys/match*.c): what the redaction
tests echo through the proxy, print from `credbroker exec` and feed to the
scanner.  NAMES in a fixed order; forms(value_bytes) -> {name: bytes}.

Run as a script: `value_forms.py FILE` prints each form of FILE's bytes on
its own line (names in NAMES order), one byte per write, flushed."""
import base64
import html
import json
import sys
import urllib.parse

NAMES = ["raw", "pct-lower", "pct-mixed", "quote", "quote-plus", "json-slash", "json-ascii", "json-all-u",
         "b64-0", "b64-1", "b64-2", "b64url-0", "b64url-1", "b64url-2", "basic-any", "hex", "HEX", "pct-b64",
         "upper", "lower", "hex-mixed", "html-escape", "html-dec", "html-hex", "c-hex", "c-oct", "py-repr",
         "js-brace"]


def forms(vb):
    v = vb.decode("utf-8", "surrogateescape")
    b64 = lambda b: base64.b64encode(b)
    return {
        "raw": vb,
        "pct-lower": "".join("%%%02x" % c for c in vb).encode(),
        "pct-mixed": "".join(("%%%02x" if i % 2 else "%%%02X") % c for i, c in enumerate(vb)).encode(),
        "quote": urllib.parse.quote_from_bytes(vb).encode(),          # keeps '/'
        "quote-plus": urllib.parse.quote_plus(vb).encode(),
        "json-slash": json.dumps(v, ensure_ascii=False)[1:-1].replace("/", "\\/").encode("utf-8", "surrogateescape"),
        "json-ascii": json.dumps(v, ensure_ascii=True)[1:-1].encode(),
        "json-all-u": "".join("\\u%04X" % ord(c) if ord(c) < 0x10000 else
                              "\\u%04X\\u%04X" % (0xD800 + ((ord(c) - 0x10000) >> 10), 0xDC00 + ((ord(c) - 0x10000) & 0x3FF))
                              for c in v).encode(),
        "b64-0": b64(vb), "b64-1": b64(b"x" + vb), "b64-2": b64(b"xy" + vb),
        "b64url-0": base64.urlsafe_b64encode(vb).rstrip(b"="),
        "b64url-1": base64.urlsafe_b64encode(b"x" + vb),
        "b64url-2": base64.urlsafe_b64encode(b"xy" + vb),
        "basic-any": b64(b"anyone:" + vb),
        "hex": vb.hex().encode(), "HEX": vb.hex().upper().encode(),
        "pct-b64": urllib.parse.quote(b64(vb).decode(), safe="").encode(),
        "upper": vb.upper(), "lower": vb.lower(),
        "hex-mixed": "".join(c.upper() if i % 3 == 1 else c for i, c in enumerate(vb.hex())).encode(),
        "html-escape": html.escape(v).encode("utf-8", "surrogateescape"),     # &quot; &amp; &lt; &gt; &#x27;
        "html-dec": "".join("&#%d;" % ord(c) for c in v).encode(),
        "html-hex": "".join("&#x%X;" % ord(c) for c in v).encode(),
        "c-hex": "".join("\\x%02x" % c for c in vb).encode(),
        "c-oct": "".join("\\%03o" % c for c in vb).encode(),
        "py-repr": repr(vb)[2:-1].encode(),                                    # \\ \xc3 ...
        "js-brace": "".join("\\u{%x}" % ord(c) for c in v).encode(),
    }


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        fs = forms(f.read())
    out = sys.stdout.buffer
    for name in NAMES:
        for i in range(len(fs[name])):
            out.write(fs[name][i:i + 1])
            out.flush()
        out.write(b"\n")
        out.flush()
