"""Noticing spool writes within milliseconds: file-system notifications, tuned for latency.

watchfiles (inotify on Linux) wakes every consumer when a segment appears or grows. It only says
*that* something changed: consumers always read from their own positions. ``step`` is how long a
burst of changes is collected before waking (the latency floor); ``debounce`` caps it while writes
keep coming. The consumers' periodic rescan is the safety net for a missed or unavailable
notification (network file systems, exhausted inotify watches).
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from floe_core.spool import is_segment_name
from floe_sidecar.engine.wakeup import Wakeup

__all__ = ["watch_spool"]

log = logging.getLogger("floe_sidecar.watch")


async def watch_spool(
    spool_dir: Path,
    wakeup: Wakeup,
    stop: anyio.Event,
    *,
    step_ms: int = 5,
    debounce_ms: int = 20,
) -> None:
    """Notify ``wakeup`` on every segment change until ``stop`` is set."""
    directory = str(spool_dir.resolve())

    def is_segment(change: Change, path: str) -> bool:
        head, _, name = path.rpartition("/")
        return head == directory and is_segment_name(name)

    try:
        async for _ in awatch(
            directory,
            watch_filter=is_segment,
            step=step_ms,
            debounce=debounce_ms,
            stop_event=stop,
            recursive=False,
            rust_timeout=1000,
        ):
            wakeup.notify()
    except Exception as exc:  # the rescan keeps things moving; say why latency got worse
        log.warning(
            "spool watching failed; falling back to periodic rescans",
            extra={"spool": directory, "error": f"{type(exc).__name__}: {exc}"},
        )
