"""Hand-off: what a run pod's floe-sidecar has not delivered when the pod ends goes on to a
long-lived floe-sidecar on the same node, with nothing lost and nothing delivered twice.

Why the pod's spool lives on the node from the first event. A copy made when the pod's sidecar
gets SIGTERM cannot be lossless: whatever is not copied yet when the copy is cut short (kill -9,
the OOM killer, the grace period running out) is gone with the pod's ``emptyDir``, and the kubelet
does not restart a sidecar container once the run's main container has exited. So the pod keeps
its spool in its own directory of a node volume (``<root>/<pod>/spool``; the run worker's
``FLOE_SPOOL_DIR`` and the sidecar's ``--spool``), and only the socket in the ``emptyDir``. Every
line the sidecar acknowledges is already in that spool, so the hand-off itself copies nothing:

* the pod's sidecar (``--handoff``) delivers as usual; on a clean stop it saves its cursors and
  writes ``.sidecar/released`` (:func:`mark_released`) before it lets go of the spool's lock;
* the node's sidecar (``--adopt ROOT``) looks at every ``ROOT/*/spool``. One whose lock it can
  take (its sidecar has exited or died), whose segments are all sealed (no writer is alive) and
  that is released, or has not changed for ``adopt_after`` seconds (its sidecar died and was not
  restarted), is adopted (:class:`Adopter`): every sink's position in each segment is copied into
  the node's cursors first, then the segment is moved into the node's spool (a ``rename``: same
  file system, same inode, so the positions stay true; across file systems a durable copy,
  seeded instead), then the pod's dead-letter records are appended to the node's, and the pod's
  sidecar state is removed (the directory goes once it has stayed empty for an hour: it is the
  mount point of a pod that may still run).

Idempotent: a segment is moved, not copied, so it exists in one spool at a time, and a kill -9
of either side at any point leaves it in the pod's spool or in the node's, never in neither (the
positions are saved before the move, the ledger after it). The node keeps a ledger of the
segments it adopted (``.sidecar/adopted.json``: name, size and a fingerprint of the first bytes,
kept for a week); a segment offered again, still waiting in the node's spool or long delivered,
is recognised and dropped, so it is delivered once per event id. What the pod had delivered is
skipped by the node (its positions, per sink), so the only duplicates are the one batch per sink
that at-least-once delivery allows after a crash; events keep their ids (``event_id``,
deterministic run and span ids), so a consumer recognises those too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from floe_core.fsutil import atomic_write, fsync_dir
from floe_core.layout import POD_SPOOL_DIR, SpoolLayout
from floe_core.spool import SEGMENT_SUFFIX, is_sealed, list_segments
from floe_sidecar.engine.cursor import FINGERPRINT_BYTES, SegmentPosition, fingerprint, load_cursor
from floe_sidecar.engine.pipeline import SinkPipeline
from floe_sidecar.engine.undeliverable import Undeliverable

__all__ = [
    "Adopter",
    "AdoptionReport",
    "HandoffStats",
    "clear_released",
    "mark_released",
]

log = logging.getLogger("floe_sidecar.engine.handoff")

# A pod's spool is ``<root>/<pod>/POD_SPOOL_DIR`` (floe_core.layout): the pod's own directory
# (created by the kubelet for ``subPathExpr``, root-owned) holds the spool that its sidecar
# creates owner-only.
#: How long the node remembers a segment it adopted (a second offer of it is dropped).
LEDGER_KEEP_S = 7 * 24 * 3600
#: An emptied pod directory is removed once nothing touched it for this long (it is the mount
#: point of a pod that may still run, so not at once).
EMPTY_POD_DIR_KEEP_S = 3600
_ADOPTING_SUFFIX = ".adopting"


def mark_released(layout: SpoolLayout) -> None:
    """Pod side, on a clean stop (cursors saved, lock still held): the node may adopt at once."""
    body = json.dumps({"pid": os.getpid(), "at": time.time()}).encode() + b"\n"
    atomic_write(layout.released, body, durable=True, sync_dir=True)


def clear_released(layout: SpoolLayout) -> None:
    """Pod side, at start: a released mark left by an earlier run of this sidecar is void now."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(layout.released)


@dataclass(frozen=True)
class AdoptionReport:
    spool: str
    released: bool  # False: its sidecar died without releasing it
    segments: int  # moved into the node's spool
    delivered_already: int  # segments every sink had delivered: removed, not moved
    duplicates: int  # segments offered again after an earlier hand-off: dropped
    deadletter_records: int


@dataclass
class HandoffStats:
    adopted_spools: int = 0
    adopted_segments: int = 0
    dropped_duplicates: int = 0
    last_adopted_at: float | None = None
    last_error: str | None = None
    reports: list[AdoptionReport] = field(default_factory=list)


class _Ledger:
    """The segments this node adopted (name, size, fingerprint, when), so that a segment offered
    again is recognised as the same one and dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, object]] = {}
        try:
            loaded = json.loads(path.read_bytes())
            if not isinstance(loaded, dict):
                raise ValueError("not an object")
            self.entries = {str(k): dict(v) for k, v in loaded.items()}
        except FileNotFoundError:
            pass
        except (ValueError, TypeError):
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("hand-off ledger unreadable; set aside", extra={"moved_to": str(aside)})

    def has(self, name: str, identity: tuple[int, str]) -> bool:
        entry = self.entries.get(name)
        return entry is not None and (entry.get("size"), entry.get("fp")) == identity

    def add(self, adopted: Sequence[tuple[str, tuple[int, str]]]) -> None:
        now = time.time()
        for name, (size, fp) in adopted:
            self.entries[name] = {"size": size, "fp": fp, "at": now}
        horizon = now - LEDGER_KEEP_S
        self.entries = {
            n: e for n, e in self.entries.items() if float(str(e.get("at", 0))) >= horizon
        }
        data = json.dumps(self.entries, sort_keys=True).encode()
        atomic_write(self.path, data, sync_dir=True)


class Adopter:
    """Node side: adopt the spools that ended run pods left under ``root``.

    Runs on a worker thread of the node's sidecar (blocking file-system work); it touches the
    sinks' cursors only through :meth:`SinkPipeline.seed` and :meth:`Undeliverable.seed`, and
    the dead-letter file only through :class:`Undeliverable`.
    """

    def __init__(
        self,
        root: Path,
        layout: SpoolLayout,
        pipelines: Sequence[SinkPipeline],
        undeliverable: Undeliverable,
        *,
        adopt_after: float,
    ) -> None:
        self.root = root
        self.layout = layout
        self.pipelines = list(pipelines)
        self.undeliverable = undeliverable
        self.adopt_after = adopt_after
        self.stats = HandoffStats()
        self._ledger = _Ledger(layout.adopted)
        self._remove_abandoned_copies()

    def adopt_ready(self) -> list[AdoptionReport]:
        """Adopt every pod spool that is ready now; reports of those adopted."""
        reports = []
        try:
            pods = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in pods:
            if not entry.is_dir(follow_symlinks=False):
                continue  # never follow a symlink out of the hand-off directory
            pod_dir = Path(entry.path)
            spool = pod_dir / POD_SPOOL_DIR
            try:
                if spool.is_symlink() or (spool.exists() and not spool.is_dir()):
                    continue
                if _is_empty(spool):
                    self._remove_if_long_empty(pod_dir, spool)
                    continue
                report = self._adopt(spool)
            except OSError as exc:
                self.stats.last_error = f"{spool}: {type(exc).__name__}: {exc}"
                log.error(
                    "cannot adopt a pod's spool; trying again later",
                    extra={"spool": str(spool), "error": str(exc)},
                )
                continue
            if report is not None:
                reports.append(report)
        return reports

    def waiting(self) -> int:
        """Pod spools under the root that are not empty (runs going on, or not due yet)."""
        try:
            pods = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        spools = (Path(p.path) / POD_SPOOL_DIR for p in pods if p.is_dir(follow_symlinks=False))
        return sum(1 for spool in spools if spool.is_dir() and not _is_empty(spool))

    # -- one pod spool ---------------------------------------------------------------------

    def _adopt(self, spool: Path) -> AdoptionReport | None:
        pod = SpoolLayout(spool)
        pod.ensure()
        fd = os.open(pod.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # its sidecar is alive
            released = pod.released.exists()
            if not released and time.time() - _last_change(spool) < self.adopt_after:
                return None  # its sidecar may be restarting
            segments = list_segments(spool)
            if not all(is_sealed(s) for s in segments):
                return None  # a writer (the run worker) is alive
            return self._take_over(pod, segments, released)
        finally:
            os.close(fd)

    def _take_over(self, pod: SpoolLayout, segments: list[Path], released: bool) -> AdoptionReport:
        sink_positions = {
            name: load_cursor(pod.cursor(name), name).positions for name in pod.cursor_names()
        }
        reported = load_cursor(pod.reported, "reported").positions
        moved: list[tuple[str, tuple[int, str]]] = []
        done = duplicates = 0
        for path in segments:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                self._refuse(pod, path)
                continue
            head = _head(path)
            identity = (st.st_size, fingerprint(head))
            target = self.layout.spool_dir / path.name
            if self._ledger.has(path.name, identity) or _same_file(target, identity):
                os.unlink(path)
                duplicates += 1
                log.warning(
                    "segment handed over again; dropped (already adopted)",
                    extra={"segment": path.name, "spool": str(pod.spool_dir)},
                )
                continue
            offsets = {
                p.name: _offset(sink_positions.get(p.name, {}).get(path.name), st)
                for p in self.pipelines
            }
            if offsets and all(o >= st.st_size for o in offsets.values()):
                os.unlink(path)  # every sink has it: nothing to hand over
                done += 1
                continue
            if os.path.lexists(target) or path.name in self._ledger.entries:
                target = _free_name(self.layout.spool_dir, path.name)  # another file, same name
            reported_at = _offset(reported.get(path.name), st)
            self._move(path, target, st, head, offsets, reported_at)
            moved.append((target.name, identity))
        if moved:
            # The moves are durable before the ledger says so: a ledger entry for a move a
            # machine crash took back would drop the segment when it is offered again.
            fsync_dir(self.layout.spool_dir)
            fsync_dir(pod.spool_dir)
            self._ledger.add(moved)
        records = self._absorb_deadletter(pod)
        _remove_pod_spool(pod)
        report = AdoptionReport(
            spool=str(pod.spool_dir),
            released=released,
            segments=len(moved),
            delivered_already=done,
            duplicates=duplicates,
            deadletter_records=records,
        )
        stats = self.stats
        stats.adopted_spools += 1
        stats.adopted_segments += len(moved)
        stats.dropped_duplicates += duplicates
        stats.last_adopted_at = time.time()
        stats.reports = [*stats.reports[-9:], report]
        log.info(
            "adopted the spool of an ended run pod",
            extra={
                "spool": report.spool,
                "released": released,
                "segments": len(moved),
                "delivered_already": done,
                "duplicates": duplicates,
                "dead_lettered": records,
            },
        )
        return report

    def _move(
        self,
        path: Path,
        target: Path,
        st: os.stat_result,
        head: bytes,
        offsets: dict[str, int],
        reported: int,
    ) -> None:
        """Seed and save every position for the file ``target`` will be, then move it there.

        A rename keeps the inode, so positions seeded from ``st`` stay true; across file systems
        the segment is copied (durably, under a hidden name) and the copy is seeded instead.
        """
        try:
            self._seed(target.name, st, head, offsets, reported)
            os.rename(path, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        copy = self.layout.spool_dir / f".{target.name}{_ADOPTING_SUFFIX}"
        _durable_copy(path, copy)
        self._seed(target.name, os.stat(copy), head, offsets, reported)
        os.rename(copy, target)
        fsync_dir(self.layout.spool_dir)
        os.unlink(path)

    def _seed(
        self, name: str, st: os.stat_result, head: bytes, offsets: dict[str, int], reported: int
    ) -> None:
        for pipeline in self.pipelines:
            pipeline.seed(name, _position(st, offsets.get(pipeline.name, 0), head))
        self.undeliverable.seed(name, _position(st, reported, head))
        for pipeline in self.pipelines:
            pipeline.save_if_dirty()
        self.undeliverable.save_if_dirty()

    def _refuse(self, pod: SpoolLayout, path: Path) -> None:
        """A segment name that is not a regular file (a symbolic link, say) is never followed:
        the entry itself is removed, and the dead-letter file says so."""
        self.undeliverable.not_a_segment(pod.spool_dir, path.name)
        log.warning("not a regular file in a pod's spool; removed", extra={"path": str(path)})
        os.unlink(path)

    def _absorb_deadletter(self, pod: SpoolLayout) -> int:
        path = pod.deadletter
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0
        written = self.undeliverable.absorb(data) if data.strip() else 0
        os.unlink(path)
        return written

    # -- housekeeping ----------------------------------------------------------------------

    def _remove_if_long_empty(self, pod_dir: Path, spool: Path) -> None:
        """An emptied pod directory goes once nothing touched it for a while: it is the mount
        point of a pod that may still run (a rmdir fails, harmlessly, on anything not empty)."""
        with contextlib.suppress(OSError):
            newest = max(os.lstat(p).st_mtime for p in (pod_dir, spool) if os.path.lexists(p))
            if time.time() - newest >= EMPTY_POD_DIR_KEEP_S:
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(spool)
                os.rmdir(pod_dir)

    def _remove_abandoned_copies(self) -> None:
        """A cross-device copy cut short by a crash: its source is still in the pod's spool."""
        try:
            names = os.listdir(self.layout.spool_dir)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(".") and name.endswith(_ADOPTING_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.layout.spool_dir / name)


def _offset(position: SegmentPosition | None, st: os.stat_result) -> int:
    """How far a consumer of the pod's spool got in this very file (0: not at all)."""
    if position is None or (position.ino, position.dev) != (st.st_ino, st.st_dev):
        return 0
    return min(position.offset, st.st_size)


def _position(st: os.stat_result, offset: int, head: bytes) -> SegmentPosition:
    return SegmentPosition(
        ino=st.st_ino, dev=st.st_dev, offset=offset, fp=fingerprint(head), fp_len=len(head)
    )


def _is_empty(spool: Path) -> bool:
    try:
        return not os.listdir(spool)
    except FileNotFoundError:
        return True


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(FINGERPRINT_BYTES)


def _same_file(path: Path, identity: tuple[int, str]) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, fingerprint(_head(path))) == identity


def _free_name(directory: Path, name: str) -> Path:
    """``name`` is taken by another file: the same name with a suffix (order is kept)."""
    stem = name.removesuffix(SEGMENT_SUFFIX)
    for n in range(1, 1000):
        candidate = directory / f"{stem}-adopted{n}{SEGMENT_SUFFIX}"
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"{directory}: no free name for {name}")


def _last_change(spool: Path) -> float:
    """Newest modification under the spool: segments, cursors, the status file."""
    newest = os.stat(spool).st_mtime
    layout = SpoolLayout(spool)
    for directory in (spool, layout.state_dir, layout.cursors_dir):
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def _durable_copy(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        os.fchmod(dst.fileno(), 0o600)
        shutil.copyfileobj(src, dst, 1024 * 1024)
        dst.flush()
        os.fsync(dst.fileno())


def _remove_pod_spool(pod: SpoolLayout) -> None:
    """Remove the state of an adopted spool. The spool directory itself stays (the run worker
    may still write a segment into it); it goes once it has been empty for an hour."""
    for directory in (pod.cursors_dir, pod.state_dir):
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            path = directory / name
            if not path.is_dir() or path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    for directory in (pod.cursors_dir, pod.state_dir):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
