"""Reading an NDJSON file line by line, never holding more than one bounded line.

Every tool that reads a file of lines it did not write itself (``floe-sidecar replay``, ``floe
show``) goes through :func:`bounded_lines`, so a file without newlines (``/dev/zero``, a torn or
hostile file) costs at most ``max_line_bytes`` of memory, and through :func:`loads_or_none` for
JSON, so no line (nested deeper than the decoder's stack, say) can stop the reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from floe_core.transport import MAX_LINE_BYTES

__all__ = ["READ_BLOCK_BYTES", "bounded_lines", "loads_or_none"]

READ_BLOCK_BYTES = 1024 * 1024


def bounded_lines(
    handle: IO[bytes], max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | None, str | None]]:
    """``(offset, line, problem)`` per line: ``line`` without its newline, or None and why (the
    file ends mid-line, or the line is over the limit: skipped to its end, never held)."""
    offset = 0
    while line := handle.readline(max_line_bytes + 1):
        start = offset
        offset += len(line)
        if line.endswith(b"\n"):
            yield start, line[:-1], None
        elif len(line) <= max_line_bytes:
            yield start, None, "the file ends in the middle of a line"
        else:
            newline = False
            while not newline and (more := handle.readline(READ_BLOCK_BYTES)):
                offset += len(more)
                newline = more.endswith(b"\n")
            length = offset - start - (1 if newline else 0)
            yield start, None, f"line of {length} bytes exceeds the {max_line_bytes}-byte limit"


def loads_or_none(line: bytes) -> Any:
    """The JSON value of ``line``, or None when it is not JSON this reader can hold."""
    try:
        return json.loads(line)
    except (ValueError, RecursionError, MemoryError):
        return None
