"""Is a failed ``deliver`` worth retrying? Permanent (the items are at fault) or retryable.

As the OpenTelemetry Collector does: an error is retryable unless it says otherwise, since an
endpoint that is down, slow or refusing everyone comes back. A batch that failed permanently is
split until the items at fault are found (:meth:`SinkPipeline.deliver`); those are dead-lettered
with the error, the others delivered, so one event no exporter can encode never blocks a sink.
"""

from __future__ import annotations

import msgspec

from floe_core.errors import DeliveryError

__all__ = ["is_permanent"]


def is_permanent(exc: BaseException) -> bool:
    """True when delivering the same items again cannot succeed.

    A :class:`DeliveryError` says so itself (``permanent``); an I/O error never is; an error a
    sink's own code raised while encoding its items (``ValueError``, ``TypeError``,
    ``OverflowError``, ``msgspec.EncodeError``) always is.
    """
    if isinstance(exc, DeliveryError):
        return exc.permanent
    if isinstance(exc, OSError):
        return False
    return isinstance(exc, ValueError | TypeError | OverflowError | msgspec.EncodeError)
