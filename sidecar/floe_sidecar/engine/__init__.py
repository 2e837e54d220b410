"""The durable pipeline between the sources and the sinks.

Per sink: a :mod:`reader` over the spool, a :mod:`cursor` saved only after delivery, a
:mod:`pipeline` (read, decode, translate, batch, commit) on its own :mod:`worker` thread, driven by
a :mod:`runner` (when to deliver, :mod:`retry` with backoff, when to stop). Shared by every sink:
the :mod:`wakeup` the sources ring, :mod:`retention` of consumed segments, the one owner of
whatever cannot be delivered (:mod:`undeliverable`, writing the :mod:`deadletter` file), the
health :mod:`status`, and the :mod:`handoff` of ended run pods' spools to a node's sidecar.
"""
