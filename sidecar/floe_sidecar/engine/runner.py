"""The async half of each consumer: when to read, deliver, retry, wait, and stop.

One :class:`SinkRunner` per sink runs in the sidecar's task group. Runners share nothing but the
wake-up signal (and the owner of undeliverable lines), so a slow, failing or hung sink never holds
back another: its backlog simply stays in the spool, behind its own cursor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import anyio

from floe_sidecar.engine.pipeline import Batch, SinkPipeline
from floe_sidecar.engine.retry import RetryPolicy
from floe_sidecar.engine.wakeup import Subscription
from floe_sidecar.engine.worker import ThreadWorker

__all__ = ["SinkRunner", "SinkStats"]

log = logging.getLogger("floe_sidecar.engine.runner")


@dataclass
class SinkStats:
    delivered: int = 0  # items, this process
    batches: int = 0
    failures: int = 0  # failed deliver attempts, this process
    consecutive_failures: int = 0
    rejected: int = 0
    gave_up: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # wall clock
    last_delivery_at: float | None = None  # wall clock
    caught_up: bool = False


class SinkRunner:
    def __init__(
        self,
        pipeline: SinkPipeline,
        subscription: Subscription,
        retry: RetryPolicy,
        *,
        rescan_interval: float = 1.0,
        stall_warning: float = 30.0,
    ) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name
        self.worker = ThreadWorker(f"sink-{self.name}")
        self.subscription = subscription
        self.retry = retry
        self.rescan_interval = rescan_interval
        self.stall_warning = stall_warning
        self.stats = SinkStats()

    async def run(self, draining: anyio.Event) -> None:
        """Deliver until cancelled; once ``draining`` is set, return as soon as caught up."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_stalls)
            await self._loop(draining)
            tg.cancel_scope.cancel()

    async def _loop(self, draining: anyio.Event) -> None:
        while True:
            try:
                batch = await self.worker.run(self.pipeline.prepare)
            except Exception as exc:  # the spool is unreadable (permissions, I/O error)
                self._failed(f"reading the spool: {type(exc).__name__}: {exc}")
                log.error(
                    "cannot read the spool; trying again",
                    extra={"sink": self.name, "error": self.stats.last_error},
                )
                await anyio.sleep(self.rescan_interval)
                continue
            if batch is None:
                self.stats.caught_up = True
                await self._save_progress()
                if draining.is_set():
                    return
                await self.subscription.wait(self.rescan_interval)
                continue
            self.stats.caught_up = False
            await self._deliver(batch)

    async def _save_progress(self) -> None:
        try:
            await self.worker.run(self.pipeline.save_if_dirty)
        except OSError as exc:
            log.warning("cannot save the cursor", extra={"sink": self.name, "error": str(exc)})

    def _failed(self, error: str) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = error
        self.stats.last_error_at = time.time()

    async def _deliver(self, batch: Batch) -> None:
        failures = 0
        first_failure = 0.0
        while True:
            try:
                delivered, rejected = await self.worker.run(partial(self.pipeline.deliver, batch))
                break
            except Exception as exc:
                failures += 1
                now = time.monotonic()
                if failures == 1:
                    first_failure = now
                error = f"{type(exc).__name__}: {exc}"
                self._failed(error)
                if self.retry.gives_up(failures, now - first_failure):
                    await self._give_up(batch, failures, error)
                    return
                retry_after = getattr(exc, "retry_after", None)
                if not isinstance(retry_after, int | float):
                    retry_after = None
                delay = self.retry.delay_after(failures, retry_after)
                log.warning(
                    "delivery throttled; retrying after the endpoint's Retry-After"
                    if retry_after is not None
                    else "delivery failed; retrying",
                    extra={
                        "sink": self.name,
                        "attempt": failures,
                        "retry_in_s": round(delay, 3),
                        "retry_after_s": retry_after,
                        "items": len(batch.items),
                        "error": error,
                    },
                )
                await anyio.sleep(delay)
        stats = self.stats
        stats.delivered += delivered
        stats.rejected += rejected
        stats.batches += 1
        stats.consecutive_failures = 0
        stats.last_delivery_at = time.time()
        if failures:
            log.info("delivery recovered", extra={"sink": self.name, "failed_attempts": failures})
        if rejected:
            log.warning(
                "endpoint rejected items; dead-lettered",
                extra={"sink": self.name, "rejected": rejected},
            )

    async def _give_up(self, batch: Batch, failures: int, error: str) -> None:
        """Retries exhausted (a configured limit): the batch goes to dead-letter, not away."""
        reason = f"gave up after {failures} attempts: {error}"
        log.error(
            "delivery failed; giving up on the batch (dead-lettered)",
            extra={"sink": self.name, "items": len(batch.items), "error": error},
        )
        while True:
            try:
                await self.worker.run(partial(self.pipeline.commit, batch, (), reason))
                break
            except OSError as exc:  # the dead-letter file or the cursor cannot be written
                self._failed(f"dead-lettering a batch: {exc}")
                await anyio.sleep(self.retry.delay(self.stats.consecutive_failures))
        self.stats.gave_up += len(batch.items)
        self.stats.batches += 1

    async def _watch_stalls(self) -> None:
        """Say so (log, status) when one ``deliver`` call runs for very long."""
        warned_for: float | None = None
        while True:
            await anyio.sleep(max(0.05, self.stall_warning / 4))
            since = self.worker.busy_since
            running = self.delivering_for()
            if running is None or running < self.stall_warning or warned_for == since:
                continue
            warned_for = since
            self.stats.last_error = f"deliver has not returned after {running:.0f} s"
            self.stats.last_error_at = time.time()
            log.warning(
                "deliver has not returned yet; this sink is stalled (the others go on)",
                extra={"sink": self.name, "waited_s": round(running, 1)},
            )

    def delivering_for(self) -> float | None:
        since = self.worker.busy_since
        return None if since is None else time.monotonic() - since
