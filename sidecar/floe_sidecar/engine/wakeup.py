"""In-process wake-ups: a source says "the spool grew", every sink task looks again at once.

Each subscriber owns an event that ``notify`` sets; waiting replaces it with a fresh one, so a
notification that arrives while the subscriber is busy is not lost: its next wait returns at once.
"""

from __future__ import annotations

import anyio

__all__ = ["Subscription", "Wakeup"]


class Subscription:
    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification (True) or ``timeout`` seconds (False)."""
        notified = False
        with anyio.move_on_after(timeout):
            await self._event.wait()
            notified = True
        if self._event.is_set():
            self._event = anyio.Event()
        return notified


class Wakeup:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscriptions.append(subscription)
        return subscription

    def notify(self) -> None:
        for subscription in self._subscriptions:
            subscription.notify()
