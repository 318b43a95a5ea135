"""The daemon's Prometheus metrics, in a registry of their own.

:class:`Metrics` owns a private :class:`prometheus_client.CollectorRegistry` (never the global
one), so two daemons in one process — tests, the sandbox beside a bench — count apart, and
:meth:`Metrics.render` exposes exactly posbridge's families in the Prometheus text format.

Label values must come from small closed sets: provider names, transaction kinds and states,
JSON-RPC method names, configured device names, a handful of reason words. An order number,
an amount, a token or a free-text provider message never becomes a label — each distinct value
is a new time series kept for the life of the process. Callers reduce free text to a reason
word before counting.

:class:`EventLoopLagProbe` measures how late the event loop wakes a sleeping task: the one
number that shows a blocking call (a serial write, a slow disk) hurting every register at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

NAMESPACE = "posbridge"

# Bucket bounds in seconds, chosen per what is being timed.
#: request → final state: a card payment waits for a person (CodePay's expires_s defaults to 180 s,
#: a QR stays payable qr_timeout_s = 120 s), so the buckets reach minutes.
TRANSACTION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
#: one HTTP round trip to a provider: normally tens of milliseconds, bounded by the client timeout.
PROVIDER_REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: one SQLite commit: a durable one includes an fsync, sub-millisecond on SSD, worse on SD cards.
JOURNAL_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: event-loop lag: anything above a few milliseconds means something blocked the loop.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class EventLoopLagProbe:
    """Measures event-loop lag: how much later than asked a ``sleep(interval_s)`` returns.

    :meth:`run` is a task that never returns by itself (cancel it to stop); each sample goes into
    ``histogram`` when one is given and into a bounded window of the latest ``window`` samples
    that :meth:`p99` and :meth:`max` summarise (for the bench and the manager page).
    """

    def __init__(
        self,
        histogram: Histogram | None = None,
        *,
        interval_s: float = 0.25,
        window: int = 2400,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._histogram = histogram
        self._samples: deque[float] = deque(maxlen=window)

    async def run(self) -> None:
        """Sample forever, one sample per ``interval_s``."""
        # perf_counter, not loop.time(): uvloop's loop clock counts whole milliseconds.
        while True:
            asked_at = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.record(time.perf_counter() - asked_at - self.interval_s)

    def record(self, lag_s: float) -> None:
        """Add one lag sample in seconds (negative values, clock granularity, count as 0)."""
        lag = max(0.0, lag_s)
        self._samples.append(lag)
        if self._histogram is not None:
            self._histogram.observe(lag)

    @property
    def samples(self) -> int:
        """How many samples the window holds now."""
        return len(self._samples)

    def p99(self) -> float:
        """The 99th percentile (nearest rank) of the window in seconds; 0.0 before any sample."""
        return percentile(self._samples, 0.99)

    def max(self) -> float:
        """The largest lag in the window in seconds; 0.0 before any sample."""
        return max(self._samples, default=0.0)

    def reset(self) -> None:
        """Forget the window (the histogram keeps counting): a bench measures one phase."""
        self._samples.clear()


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-quantile (0 < q ≤ 1) of ``values``; 0.0 for no values."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Metrics:
    """Every metric the daemon exports, registered in one private registry.

    Attributes are the ``prometheus_client`` objects themselves: callers use ``.labels(...)``,
    ``.inc()``, ``.observe()``, ``.set()``. The label names of each are fixed here; the values
    must be bounded (see the module docstring).
    """

    def __init__(self, *, loop_lag_interval_s: float = 0.25) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.transactions_total = Counter(
            "transactions", "Transactions that reached a final state.",
            ["provider", "kind", "state"], namespace=NAMESPACE, registry=r)
        self.transaction_seconds = Histogram(
            "transaction_seconds", "Time from the register's request to the final state.",
            ["provider", "kind"], namespace=NAMESPACE, registry=r, buckets=TRANSACTION_BUCKETS)
        self.provider_request_seconds = Histogram(
            "provider_request_seconds", "Duration of one HTTP request to a provider.",
            ["provider", "method"], namespace=NAMESPACE, registry=r,
            buckets=PROVIDER_REQUEST_BUCKETS)
        self.provider_errors_total = Counter(
            "provider_errors", "Provider requests that failed (transport, rejection, signature).",
            ["provider", "reason"], namespace=NAMESPACE, registry=r)
        self.notifications_rejected_total = Counter(
            "notifications_rejected", "Provider notifications that were not acted on.",
            ["provider", "reason"], namespace=NAMESPACE, registry=r)
        self.printer_faults_total = Counter(
            "printer_faults", "Receipt printer faults (paper out, off-line, timeout).",
            ["printer", "reason"], namespace=NAMESPACE, registry=r)
        self.display_faults_total = Counter(
            "display_faults", "Customer display faults.",
            ["display", "reason"], namespace=NAMESPACE, registry=r)
        self.ecr_connections = Gauge(
            "ecr_connections", "Registers connected over the ECR WebSocket now.",
            namespace=NAMESPACE, registry=r)
        self.ecr_requests_total = Counter(
            "ecr_requests", "ECR JSON-RPC requests by method and outcome.",
            ["method", "outcome"], namespace=NAMESPACE, registry=r)
        self.journal_commit_seconds = Histogram(
            "journal_commit_seconds",
            "Duration of one journal commit (a group of units; a durable one includes the fsync).",
            namespace=NAMESPACE, registry=r, buckets=JOURNAL_COMMIT_BUCKETS)
        self.journal_fsyncs_total = Counter(
            "journal_fsyncs", "fsyncs of the journal's WAL: durable commits, and syncs made "
            "for the events of committed-only units alone.", namespace=NAMESPACE, registry=r)
        self.event_loop_lag_seconds = Histogram(
            "event_loop_lag_seconds", "How late the event loop wakes a sleeping task.",
            namespace=NAMESPACE, registry=r, buckets=LOOP_LAG_BUCKETS)
        self.batch_closes_total = Counter(
            "batch_closes", "Batch closes by outcome.",
            ["outcome"], namespace=NAMESPACE, registry=r)
        self.loop_lag = EventLoopLagProbe(self.event_loop_lag_seconds,
                                          interval_s=loop_lag_interval_s)

    def render(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format: ``(body, content_type)``.

        Version 0.0.4 of the text format: every name here is a classic (underscore) name, so it
        is byte-for-byte what newer scrapers accept too, and older Prometheus servers parse it.
        """
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4
