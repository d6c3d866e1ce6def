"""JSON from untrusted clients, with its nesting bounded before it is parsed.

Python's parser recurses once per level: a few KiB of ``[[[[...`` raise RecursionError
(an unexpected error, a 500), and deep documents make everything built from them slow.
One linear scan counts the depth first; strings (and their escapes) are skipped.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class TooDeep(ValueError):
    pass


def depth_of(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings, counting stops past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def loads(text: str, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` for text nested at most ``limit`` deep: TooDeep or ValueError otherwise."""
    if depth_of(text, limit) > limit:
        raise TooDeep(f"the JSON document nests deeper than {limit} levels")
    return json.loads(text)
