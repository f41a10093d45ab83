"""How deep a request body nests, measured on its bytes before any parser sees them. Pure.

Python's json parser (and every walk over what it returns) recurses once per level of arrays
and objects; about a thousand levels exhaust the interpreter's stack (RecursionError), and a
100k-level body is only ~200 kB, well under the body size limit. So the depth is measured first,
without recursion, and a body that nests too deep is refused before it is parsed.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have. Real bodies need far fewer: a
feedback batch is body > events > event > metadata (4 levels, plus the client's own metadata
shape), a chat request with tools carries a JSON schema a few levels deep. 64 keeps every such
body and stays far below the ~1000 levels where recursion fails."""

# A JSON string: brackets inside it are text, not structure. Escapes (\" and \\) are consumed
# whole so an escaped quote does not end the string. A string left open runs to the end of the
# body: then every quote matches in one pass, where a pattern that needed the closing quote would
# be retried from each later quote (quadratic: 9 s for a 40 kB body of escaped quotes).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_OPEN = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `raw` opens more than `limit` arrays/objects inside each other.

    Malformed text is measured as best it can be: the parser refuses it afterwards anyway.
    """
    # A body with at most `limit` opening brackets cannot nest deeper (most bodies stop here).
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    structure = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in structure:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False
