"""Acceptance: nothing is lost when a run pod ends, simulated with real processes.

The Kubernetes layout of docs/scale.md, on this machine: a *node* directory that outlives pods
(the hostPath: the node sidecar's own spool, and ``handoff/<pod>/spool``, one spool per run pod)
and, per pod, a temporary directory standing for its ``emptyDir`` (the sidecar's socket). Each
pod runs its own ``floe-sidecar --handoff`` and a run that emits through the real adapter
emitter (a real Dagster materialization of the example in the first test). The lineage endpoint
(the real OpenLineage sink over HTTP) and an event-id endpoint (a plugin sink, for exact
accounting per event id) are down — nothing listens on their ports — for the whole run. After
the run, SIGTERM to the pod's sidecar; after its grace period the temporary directory is
deleted, as the kubelet deletes an ``emptyDir``. The node's ``floe-sidecar --adopt`` (the
DaemonSet) takes the spool over. Then the endpoints come back: every event of the run arrives,
none lost, duplicates bounded. The same with two runs ending while the endpoints are down, with
kill -9 of the pod's sidecar during the hand-off, and of the node's sidecar while it adopts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.data import make_event, shop_events
from support.environment import need
from support.lineage import Receiver as LineageReceiver
from support.lineage import materialize_shop
from support.loopback import free_port, wait_for
from support.sidecar import Receiver, SidecarProcess, run_sidecar

from floe_core.events import Event, decode_event, encode_event
from floe_core.layout import SpoolLayout
from floe_core.spool import SpoolWriter, list_segments
from floe_sidecar.engine.deadletter import read_deadletter
from floe_sidecar.sinks.openlineage.translate import translate_event

pytestmark = pytest.mark.slow

BATCH = 50  # the id sink's batch: the bound on duplicates per at-least-once redelivery
FAST = (
    "--retry-initial", "0.05", "--retry-max", "0.3", "--rescan-interval", "0.2",
    "--status-interval", "0.5", "--log-level", "debug",
)  # fmt: skip
GRACE_S = 1.5  # the pod sidecar's --grace (the kubelet's grace period is longer)
NAMESPACE = "floe-test"
ADOPTED = "adopted the spool of an ended run pod"

RUN_WORKER = """
import json, sys
from floe_core.events import decode_event
from floe_dagster.emitter import emitter_from_env

emitter = emitter_from_env()
with open(sys.argv[1], "rb") as f:
    for line in f:
        if line.strip():
            emitter.emit(decode_event(line))
stats = emitter.close()
print(json.dumps({"emitted": stats.emitted, "acked": stats.acked, "spooled": stats.spooled,
                  "dropped": stats.dropped}))
"""


class Endpoints:
    """The lineage endpoint and the event-id endpoint, on fixed loopback ports, down until
    :meth:`up`."""

    def __init__(self) -> None:
        self.lineage_port = free_port()
        self.ids_port = free_port()
        self.lineage: LineageReceiver | None = None
        self.ids: Receiver | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "OPENLINEAGE_URL": f"http://127.0.0.1:{self.lineage_port}",
            "OPENLINEAGE_NAMESPACE": NAMESPACE,
            "OPENLINEAGE_DISABLED": "false",
            "FLOE_TEST_SINK_URL": f"http://127.0.0.1:{self.ids_port}/events",
            "FLOE_TEST_SINK_BATCH": str(BATCH),
        }

    def up(self) -> None:
        self.lineage = LineageReceiver(port=self.lineage_port).start()
        self.ids = Receiver(self.ids_port)

    def failing(self, failing: bool) -> None:
        """Answer 503 (failing) or accept again. (Stopping a server would not do: a client's
        kept-alive connection is still served by its handler thread.)"""
        assert self.lineage is not None and self.ids is not None
        self.lineage.mode = "unavailable" if failing else "ok"
        self.ids.mode = "fail" if failing else "ok"

    def forget(self) -> None:
        """Clear what was received so far."""
        assert self.lineage is not None and self.ids is not None
        with self.lineage.lock:
            self.lineage.received.clear()
        with self.ids.lock:
            self.ids.ids.clear()

    def received_ids(self) -> list[str]:
        if self.ids is None:
            return []
        with self.ids.lock:
            return list(self.ids.ids)

    def received_lineage(self) -> list[tuple[str, str, str]]:
        return [_lineage_key(e) for e in self.lineage.events()] if self.lineage else []

    def close(self) -> None:
        if self.lineage is not None:
            self.lineage.stop()
        if self.ids is not None:
            self.ids.close()


class Node:
    """The node: a directory that outlives pods, and its long-lived ``floe-sidecar --adopt``."""

    def __init__(self, root: Path, endpoints: Endpoints, *, adopt_after: float = 30.0) -> None:
        self.root = root
        self.spool = root / "spool"
        self.handoff = root / "handoff"
        self.handoff.mkdir(parents=True, mode=0o700)
        self.endpoints = endpoints
        self.adopt_after = adopt_after
        self.sidecar: SidecarProcess | None = None
        self.logs: list[dict[str, object]] = []

    def start(self) -> SidecarProcess:
        self.sidecar = SidecarProcess(
            self.root / "logs",
            "--spool", self.spool, "--adopt", self.handoff,
            "--adopt-after", str(self.adopt_after),
            "--sink", "http=python:support.plugins:http_sink",
            *FAST,
            **self.endpoints.env,
        )  # fmt: skip
        sidecar = self.sidecar
        wait_for(
            lambda: self._running(sidecar) or not sidecar.alive(),
            30,
            "the node's sidecar to start",
        )
        assert self.sidecar.alive(), self.sidecar.stderr()
        return self.sidecar

    def _running(self, sidecar: SidecarProcess) -> bool:
        """Its status file says running: its signal handlers are in place (a SIGTERM sent
        before that would end it as the default action does, without a clean stop)."""
        try:
            health = json.loads(SpoolLayout(self.spool).status.read_bytes())
        except (FileNotFoundError, ValueError):
            return False
        return bool(health.get("pid") == sidecar.pid and health.get("state") == "running")

    def kill(self) -> None:
        assert self.sidecar is not None
        self.logs += self.sidecar.logs()
        self.sidecar.kill()
        self.sidecar = None

    def stop(self) -> None:
        if self.sidecar is not None:
            self.logs += self.sidecar.logs()
            if self.sidecar.alive():
                assert self.sidecar.terminate() == 0, self.sidecar.stderr()
            self.sidecar = None

    def all_logs(self) -> list[dict[str, object]]:
        return self.logs + (self.sidecar.logs() if self.sidecar else [])

    def adoptions(self) -> list[dict[str, object]]:
        return [e for e in self.all_logs() if e.get("message") == ADOPTED]


class Pod:
    """One run pod: its ``emptyDir`` (a temporary directory: the socket), its spool on the
    node, its own ``floe-sidecar --handoff``, and its run worker."""

    def __init__(self, node: Node, name: str, tmp: Path) -> None:
        self.name = name
        self.empty_dir = tmp / f"{name}-emptydir"
        self.empty_dir.mkdir(mode=0o700)
        self.socket = self.empty_dir / "sidecar.sock"
        self.spool = node.handoff / name / "spool"
        self.spool.parent.mkdir(mode=0o777)  # as the kubelet makes it for subPathExpr
        self.endpoints = node.endpoints
        self.sidecar: SidecarProcess | None = None
        self.log_dir = tmp / f"{name}-logs"
        self.log_dir.mkdir()

    @property
    def run_env(self) -> dict[str, str]:
        """The run worker's environment (deploy/kubernetes/dagster.yaml's container_config)."""
        return {"FLOE_SOCKET": str(self.socket), "FLOE_SPOOL_DIR": str(self.spool)}

    def start_sidecar(self) -> None:
        self.sidecar = SidecarProcess(
            self.log_dir,
            "--spool", self.spool, "--socket", self.socket, "--handoff", "--grace", str(GRACE_S),
            "--sink", "http=python:support.plugins:http_sink",
            *FAST,
            **self.endpoints.env,
        )  # fmt: skip
        self.sidecar.wait_listening()

    def run(self, events: Sequence[Event]) -> dict[str, int]:
        """A run worker process emitting ``events`` with the real adapter emitter."""
        lines = self.log_dir / f"run-{time.monotonic_ns()}.ndjson"
        lines.write_bytes(b"".join(encode_event(e) for e in events))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOE_", "OPENLINEAGE"))}
        done = subprocess.run(
            [sys.executable, "-c", RUN_WORKER, str(lines)],
            env={**env, **self.run_env},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        stats: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
        assert stats["dropped"] == 0, stats
        return stats

    def persisted_ids(self) -> set[str]:
        """Event ids of every line in the pod's spool (what was acknowledged or spooled)."""
        return _persisted_ids_of(self.spool)

    def end(self) -> int:
        """The run worker has exited: the kubelet SIGTERMs the sidecar, waits, deletes the
        emptyDir. The sidecar's exit status."""
        assert self.sidecar is not None
        code = self.sidecar.terminate(timeout=GRACE_S + 30)
        self.delete_empty_dir()
        return code

    def delete_empty_dir(self) -> None:
        shutil.rmtree(self.empty_dir)


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    e = Endpoints()
    yield e
    e.close()


@pytest.fixture
def node(tmp_path: Path, endpoints: Endpoints) -> Iterator[Node]:
    n = Node(tmp_path / "node", endpoints, adopt_after=1.0)
    yield n
    n.stop()


def _spool_lines(spool: Path) -> list[bytes]:
    return [line for seg in list_segments(spool) for line in seg.read_bytes().splitlines() if line]


def _lineage_key(event: dict[str, Any]) -> tuple[str, str, str]:
    return (event["run"]["runId"], event["eventType"], event["eventTime"])


def expected_lineage(events: Sequence[Event]) -> set[tuple[str, str, str]]:
    """What the OpenLineage sink turns these events into (its pure translation)."""
    out = set()
    for event in events:
        for item in translate_event(event, NAMESPACE):
            out.add(_lineage_key(msgspec.to_builtins(item)))
    return out


def wait_delivered(
    endpoints: Endpoints,
    ids: set[str],
    lineage: set[tuple[str, str, str]],
    timeout: float = 90,
) -> None:
    def done() -> bool:
        return ids <= set(endpoints.received_ids()) and lineage <= set(endpoints.received_lineage())

    try:
        wait_for(done, timeout, "every event to be delivered", step=0.1)
    except AssertionError:
        missing = ids - set(endpoints.received_ids())
        missing_lineage = lineage - set(endpoints.received_lineage())
        raise AssertionError(
            f"{len(missing)} of {len(ids)} events never delivered, and {len(missing_lineage)} "
            f"of {len(lineage)} lineage events: {sorted(missing_lineage)[:3]}"
        ) from None


def assert_delivered_once_each(
    endpoints: Endpoints,
    ids: set[str],
    lineage: set[tuple[str, str, str]],
    *,
    duplicates_at_most: int,
) -> Counter[str]:
    received = endpoints.received_ids()
    counts = Counter(received)
    assert set(counts) == ids, "nothing lost, nothing from elsewhere"
    duplicates = len(received) - len(counts)
    assert duplicates <= duplicates_at_most, f"{duplicates} duplicates"
    assert set(endpoints.received_lineage()) == lineage
    return counts


def synthetic_run() -> list[Event]:
    """A whole run of the example project (28 events), with a fresh Dagster run id."""
    return shop_events()


# -- acceptance ------------------------------------------------------------------------------


def test_a_run_pod_ends_while_the_endpoint_is_down_and_nothing_is_lost(
    tmp_path: Path, endpoints: Endpoints, node: Node
) -> None:
    node.start()
    pod = Pod(node, "pod-1", tmp_path)
    pod.start_sidecar()
    run = materialize_shop(tmp_path, env=pod.run_env)
    assert run.success
    ids = pod.persisted_ids()
    events = [decode_event(line) for line in _spool_lines(pod.spool)]
    assert len(ids) >= 40, "the run's events are in the pod's spool, on the node"
    assert not endpoints.received_ids()

    assert pod.end() == 0
    assert not pod.empty_dir.exists()
    wait_for(lambda: node.adoptions(), 30, "the node's sidecar to adopt the pod's spool")
    (adoption,) = node.adoptions()
    assert adoption["released"] is True and adoption["segments"] >= 1, adoption
    assert not list_segments(pod.spool), "moved into the node's spool"
    assert not SpoolLayout(pod.spool).state_dir.exists(), "the pod's state went with it"

    endpoints.up()
    lineage = expected_lineage(events)
    wait_delivered(endpoints, ids, lineage)
    assert_delivered_once_each(endpoints, ids, lineage, duplicates_at_most=BATCH)

    # The running sidecar refreshes its status file every status interval, so the adoption it
    # logged may take that long to show there.
    def adopted_spools() -> int:
        status = json.loads(run_sidecar("status", "--spool", node.spool, "--json").stdout)
        return int(status["handoff"]["adopted_spools"])

    wait_for(lambda: adopted_spools() == 1, 30, "the status to count the adopted spool", step=0.5)


def test_two_run_pods_end_while_the_endpoint_is_down(
    tmp_path: Path, endpoints: Endpoints, node: Node
) -> None:
    """The node's sidecar is away too (restarting, say) while both pods end; it adopts both
    spools when it starts."""
    pods = [Pod(node, f"pod-{n}", tmp_path) for n in (1, 2)]
    runs = [synthetic_run(), synthetic_run()]
    for pod, events in zip(pods, runs, strict=True):
        pod.start_sidecar()
        stats = pod.run(events)
        assert stats["acked"] == len(events), stats
    ids = set().union(*(pod.persisted_ids() for pod in pods))
    assert ids == {e.event_id for events in runs for e in events}
    for pod in pods:
        assert pod.end() == 0
    node.start()
    wait_for(lambda: len(node.adoptions()) == 2, 30, "both spools adopted")
    endpoints.up()
    lineage = expected_lineage([e for events in runs for e in events])
    wait_delivered(endpoints, ids, lineage)
    assert_delivered_once_each(endpoints, ids, lineage, duplicates_at_most=BATCH)


def test_kill_9_of_the_pods_sidecar_during_the_hand_off_loses_nothing(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    """SIGTERM, then kill -9 while it is still trying to deliver (before it could release the
    spool): the node's sidecar adopts the spool once it has been idle for --adopt-after."""
    node = Node(tmp_path / "node", endpoints, adopt_after=1.0)
    node.start()
    try:
        pod = Pod(node, "pod-1", tmp_path)
        pod.start_sidecar()
        events = synthetic_run()
        pod.run(events)
        assert pod.sidecar is not None
        os.kill(pod.sidecar.pid, signal.SIGTERM)
        wait_for(
            lambda: '"message":"stopping: intake closed, draining"' in pod.sidecar.stderr(),
            10,
            "the pod's sidecar to start its hand-off",
        )
        pod.sidecar.kill()
        assert not SpoolLayout(pod.spool).released.exists()
        pod.delete_empty_dir()
        wait_for(lambda: node.adoptions(), 30, "the unreleased spool to be adopted")
        (adoption,) = node.adoptions()
        assert adoption["released"] is False
        endpoints.up()
        ids = {e.event_id for e in events}
        lineage = expected_lineage(events)
        wait_delivered(endpoints, ids, lineage)
        assert_delivered_once_each(endpoints, ids, lineage, duplicates_at_most=BATCH)
    finally:
        node.stop()


def test_kill_9_of_the_nodes_sidecar_while_it_adopts_and_delivers(
    tmp_path: Path, endpoints: Endpoints
) -> None:
    """Twenty-four pods ended, their sidecars dead (no release), two segments each, written
    with the adapter's spool writer. The node's sidecar is killed in the middle of adopting
    them, until none is left, then twice while it delivers. After every kill each event is
    still in a pod's spool, in the node's, or delivered; in the end every event arrives, with
    at most one batch of duplicates per kill."""
    node = Node(tmp_path / "node", endpoints, adopt_after=0.5)
    ids: set[str] = set()
    pods = 24
    for n in range(pods):
        spool = node.handoff / f"pod-{n}" / "spool"
        for part in range(2):
            events = _numbered_run(n, part, 100)
            with SpoolWriter(spool, prefix="adapter") as writer:
                writer.append(b"".join(encode_event(e) for e in events))
            ids |= {e.event_id for e in events}
    time.sleep(0.6)  # idle for longer than --adopt-after

    def kept() -> set[str]:
        found = set(endpoints.received_ids()) | _persisted_ids_of(node.spool)
        return found.union(*(_persisted_ids_of(p) for p in node.handoff.glob("*/spool")))

    def waiting() -> int:
        return sum(1 for p in node.handoff.glob("*/spool") if list_segments(p))

    kills = 0
    mid_adoption = []
    try:
        while waiting() and kills < 6:  # kill -9 while it adopts
            sidecar = node.start()
            wait_for(
                lambda s=sidecar: ADOPTED in s.stderr() or not waiting(),  # type: ignore[misc]
                30,
                "an adoption",
                step=0.002,
            )
            node.kill()
            kills += 1
            mid_adoption.append(waiting())
            assert kept() >= ids, "an event is neither in a spool nor delivered"
        endpoints.up()
        rng = random.Random(18)
        for _ in range(2):  # kill -9 while it delivers
            node.start()
            time.sleep(rng.uniform(0.1, 0.8))
            node.kill()
            kills += 1
            assert kept() >= ids, "an event is neither in a spool nor delivered"
        node.start()
        wait_delivered(endpoints, ids, set(), timeout=120)
    finally:
        node.stop()
    assert max(mid_adoption) > 0, f"no kill landed mid-adoption: {mid_adoption}"
    assert sum(int(str(a["segments"])) for a in node.adoptions()) <= 2 * pods
    received = endpoints.received_ids()
    assert set(received) == ids
    assert len(received) - len(ids) <= BATCH * kills


def test_a_segment_handed_over_twice_is_delivered_once_per_event_id(
    tmp_path: Path, endpoints: Endpoints, node: Node
) -> None:
    """The same sealed segment offered again (a second copy of a pod's spool, a hand-off
    repeated after a crash): dropped, whether the first copy is still pending or already
    delivered and gone."""
    pod = Pod(node, "pod-1", tmp_path)
    events = synthetic_run()
    pod.run(events)  # no sidecar in this pod: the run worker spools everything
    (segment,) = list_segments(pod.spool)
    first_copy = segment.read_bytes()
    node.start()
    wait_for(lambda: len(node.adoptions()) == 1, 30, "adopted once")
    # Offered again while the first copy waits in the node's spool (endpoints down):
    _offer_again(node, "pod-1-again", segment.name, first_copy)
    wait_for(lambda: len(node.adoptions()) == 2, 30, "offered again")
    assert node.adoptions()[1]["duplicates"] == 1
    endpoints.up()
    ids = {e.event_id for e in events}
    wait_delivered(endpoints, ids, expected_lineage(events))
    wait_for(lambda: not list_segments(node.spool), 30, "the delivered segment retired")
    # ... and once more after it was delivered and retired.
    _offer_again(node, "pod-1-late", segment.name, first_copy)
    wait_for(lambda: len(node.adoptions()) == 3, 30, "offered a third time")
    assert node.adoptions()[2]["duplicates"] == 1
    time.sleep(1.0)
    counts = assert_delivered_once_each(
        endpoints, ids, expected_lineage(events), duplicates_at_most=0
    )
    assert set(counts.values()) == {1}


def test_the_node_delivers_only_what_the_pod_had_not(
    tmp_path: Path, endpoints: Endpoints, node: Node
) -> None:
    """The pod's sidecar delivered the first run while the endpoint was up; the endpoint failed
    for the second: the node takes over from every sink's position, so nothing of the first
    run is delivered twice."""
    endpoints.up()
    pod = Pod(node, "pod-1", tmp_path)
    pod.start_sidecar()
    first = synthetic_run()
    pod.run(first)
    first_ids = {e.event_id for e in first}
    wait_delivered(endpoints, first_ids, expected_lineage(first))
    endpoints.failing(True)
    second = synthetic_run()
    pod.run(second)
    assert pod.end() == 0
    node.start()
    wait_for(lambda: node.adoptions(), 30, "adopted")
    endpoints.forget()
    endpoints.failing(False)  # from now on, only the second run may arrive
    ids = {e.event_id for e in second}
    lineage = expected_lineage(second)
    wait_delivered(endpoints, ids, lineage)
    time.sleep(1.0)
    assert_delivered_once_each(endpoints, ids, lineage, duplicates_at_most=0)


def test_a_spool_still_in_use_is_not_adopted(tmp_path: Path, endpoints: Endpoints) -> None:
    """Not while its sidecar runs (the lock), not while the run worker writes (an unsealed
    segment), not while an unreleased spool may belong to a sidecar being restarted."""
    node = Node(tmp_path / "node", endpoints, adopt_after=3.0)
    pod = Pod(node, "pod-1", tmp_path)
    pod.start_sidecar()
    pod.run(synthetic_run())
    writer = SpoolWriter(node.handoff / "pod-2" / "spool", prefix="adapter")
    writer.append(encode_event(synthetic_run()[0]))  # a run worker mid-run: segment open
    node.start()
    try:
        time.sleep(2.0)
        assert not node.adoptions()
        assert pod.sidecar is not None
        pod.sidecar.kill()  # died: no release; adopted only after --adopt-after of quiet
        killed_at = time.monotonic()
        wait_for(lambda: node.adoptions(), 30, "adopted once idle")
        assert time.monotonic() - killed_at >= 2.0
        assert [a["spool"] for a in node.adoptions()] == [str(pod.spool)]
        writer.close()  # the run worker exits: now its spool goes too
        wait_for(lambda: len(node.adoptions()) == 2, 30, "the sealed spool adopted")
    finally:
        writer.close()
        node.stop()


def test_adoption_across_file_systems(tmp_path: Path, endpoints: Endpoints) -> None:
    """When the node's spool is on another file system than the pods' spools, segments are
    copied durably (and the copy's positions seeded) instead of renamed."""
    shm = Path("/dev/shm")
    need(shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev, "a tmpfs /dev/shm")
    node_root = shm / f"floe-node-{os.getpid()}-{time.time_ns()}"
    node = Node(node_root, endpoints)
    node.handoff.rmdir()
    node.handoff = tmp_path / "handoff"
    node.handoff.mkdir(mode=0o700)
    try:
        pod = Pod(node, "pod-1", tmp_path)
        pod.start_sidecar()
        events = synthetic_run()
        pod.run(events)
        assert pod.end() == 0
        node.start()
        wait_for(lambda: node.adoptions(), 30, "adopted across file systems")
        assert not list_segments(pod.spool)
        assert not [p for p in os.listdir(node.spool) if p.endswith(".adopting")]
        endpoints.up()
        ids = {e.event_id for e in events}
        lineage = expected_lineage(events)
        wait_delivered(endpoints, ids, lineage)
        assert_delivered_once_each(endpoints, ids, lineage, duplicates_at_most=BATCH)
    finally:
        node.stop()
        shutil.rmtree(node_root, ignore_errors=True)


# -- helpers ---------------------------------------------------------------------------------


def _numbered(pod: int, part: int, i: int) -> Event:
    return make_event(i, run_id=f"00000000-0000-4000-8000-{pod:06d}{part:06d}")


def _numbered_run(pod: int, part: int, count: int) -> list[Event]:
    return [_numbered(pod, part, i) for i in range(count)]


def _persisted_ids_of(spool: Path) -> set[str]:
    return {decode_event(line).event_id for line in _spool_lines(spool)}


def _offer_again(node: Node, pod_name: str, segment_name: str, data: bytes) -> None:
    spool = node.handoff / pod_name / "spool"
    spool.mkdir(parents=True, mode=0o700)
    tmp = spool / f".{segment_name}"
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    tmp.rename(spool / segment_name)
    layout = SpoolLayout(spool).ensure()
    layout.released.write_text("{}\n")


def test_adopt_once_drains_what_ended_pods_left_and_follows_no_symlink(tmp_path: Path) -> None:
    """``--once --adopt`` (a node drained by hand): adopts, delivers, exits. A pod directory
    that is a symbolic link is never followed, nor a segment that is one (that link is removed
    and noted in the dead-letter file)."""
    node_spool, handoff, outside = tmp_path / "spool", tmp_path / "handoff", tmp_path / "outside"
    events = synthetic_run()
    for spool in (handoff / "pod-1" / "spool", outside / "spool"):
        with SpoolWriter(spool, prefix="adapter") as writer:
            writer.append(b"".join(encode_event(e) for e in events))
    (handoff / "pod-2").symlink_to(outside)
    linked = handoff / "pod-3" / "spool"
    linked.mkdir(parents=True)
    (linked / "20260101T000000.000000000-adapter-1-aaaaaa.ndjson").symlink_to(
        next(iter(list_segments(outside / "spool")))
    )
    out = tmp_path / "out.ndjson"
    done = run_sidecar(
        "--spool", node_spool, "--adopt", handoff, "--adopt-after", "0", "--once",
        "--no-default-sinks", "--sink", f"file:{out}",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # all delivered; the refused link is dead-lettered
    delivered = [json.loads(line)["event_id"] for line in out.read_bytes().splitlines()]
    assert sorted(delivered) == sorted(e.event_id for e in events), "pod-1, once"
    assert len(list_segments(outside / "spool")) == 1, "the linked spool was left alone"
    assert not list_segments(linked), "the link itself removed, its target untouched"
    records = read_deadletter(SpoolLayout(node_spool).deadletter)
    (note,) = [r for r in records if r["kind"] == "note"]
    assert "not a regular file" in str(note["reason"])
    assert not list_segments(node_spool), "delivered and retired"


def test_adopt_refuses_its_own_spool(tmp_path: Path) -> None:
    done = run_sidecar(
        "--spool", tmp_path / "handoff" / "node" / "spool", "--adopt", tmp_path / "handoff",
        "--once", "--no-default-sinks", "--sink", "console",
    )  # fmt: skip
    assert done.returncode == 2
    assert b"must not be in it" in done.stderr
