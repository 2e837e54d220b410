"""Where events travel between the adapter and the sidecar, and how they are framed.

Socket protocol (Unix stream socket, NDJSON): the adapter sends complete event lines; the sidecar
persists them to its own spool segment and only then answers ``ACK <n>\\n`` for the ``n`` lines it
persisted from that connection, in order. Lines the sidecar never acknowledged are the adapter's to
write to the spool itself, so a sidecar crash between receipt and persistence loses nothing.
"""

from __future__ import annotations

__all__ = [
    "ACK_PREFIX",
    "MAX_LINE_BYTES",
    "SOCKET_ENV",
    "SPOOL_ENV",
    "format_ack",
]

SOCKET_ENV = "FLOE_SOCKET"  # path of the sidecar's socket; unset → spool only
SPOOL_ENV = "FLOE_SPOOL_DIR"
MAX_LINE_BYTES = 1024 * 1024  # a longer line is refused (socket) or dead-lettered (spool)
ACK_PREFIX = b"ACK "


def format_ack(count: int) -> bytes:
    return ACK_PREFIX + str(count).encode() + b"\n"
