"""The metrics registry renders valid Prometheus text with the families the daemon exports."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from posbridge.metrics import EventLoopLagProbe, Metrics, percentile

pytestmark = pytest.mark.timeout(10)

MS = 0.001

FAMILIES = {
    "posbridge_transactions": "counter",
    "posbridge_transaction_seconds": "histogram",
    "posbridge_provider_request_seconds": "histogram",
    "posbridge_provider_errors": "counter",
    "posbridge_notifications_rejected": "counter",
    "posbridge_printer_faults": "counter",
    "posbridge_display_faults": "counter",
    "posbridge_ecr_connections": "gauge",
    "posbridge_ecr_requests": "counter",
    "posbridge_journal_commit_seconds": "histogram",
    "posbridge_journal_fsyncs": "counter",
    "posbridge_event_loop_lag_seconds": "histogram",
    "posbridge_batch_closes": "counter",
}


def parse(metrics: Metrics) -> dict[str, list[Sample]]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode("utf-8"))}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, (name, labels, samples)
    return matches[0]


def test_render_parses_and_has_every_family_with_its_type() -> None:
    body, _ = Metrics().render()
    types = {f.name: f.type for f in text_string_to_metric_families(body.decode("utf-8"))}
    for name, kind in FAMILIES.items():
        assert types.get(name) == kind, name


def test_counters_gauge_and_histograms_show_up_as_samples() -> None:
    m = Metrics()
    m.transactions_total.labels(provider="codepay", kind="sale", state="approved").inc()
    m.transactions_total.labels(provider="codepay", kind="sale", state="approved").inc()
    m.transactions_total.labels(provider="ucanpay", kind="qr_sale", state="expired").inc()
    m.transaction_seconds.labels(provider="codepay", kind="sale").observe(7.5)
    m.provider_request_seconds.labels(provider="ucanpay", method="unifiedorder").observe(0.04)
    m.provider_errors_total.labels(provider="codepay", reason="timeout").inc()
    m.notifications_rejected_total.labels(provider="ucanpay", reason="bad_signature").inc(3)
    m.printer_faults_total.labels(printer="lane-1", reason="paper").inc()
    m.display_faults_total.labels(display="lane-1", reason="offline").inc()
    m.ecr_connections.set(4)
    m.ecr_requests_total.labels(method="sale", outcome="ok").inc()
    m.journal_commit_seconds.observe(0.002)
    m.batch_closes_total.labels(outcome="ok").inc()

    got = parse(m)
    assert value(got["posbridge_transactions"], "posbridge_transactions_total",
                 provider="codepay", kind="sale", state="approved") == 2
    assert value(got["posbridge_transactions"], "posbridge_transactions_total",
                 provider="ucanpay", kind="qr_sale", state="expired") == 1
    tx = got["posbridge_transaction_seconds"]
    assert value(tx, "posbridge_transaction_seconds_count", provider="codepay", kind="sale") == 1
    assert value(tx, "posbridge_transaction_seconds_sum", provider="codepay", kind="sale") == 7.5
    assert value(tx, "posbridge_transaction_seconds_bucket",
                 provider="codepay", kind="sale", le="5.0") == 0
    assert value(tx, "posbridge_transaction_seconds_bucket",
                 provider="codepay", kind="sale", le="10.0") == 1
    assert value(got["posbridge_provider_request_seconds"],
                 "posbridge_provider_request_seconds_count",
                 provider="ucanpay", method="unifiedorder") == 1
    assert value(got["posbridge_provider_errors"], "posbridge_provider_errors_total",
                 provider="codepay", reason="timeout") == 1
    assert value(got["posbridge_notifications_rejected"],
                 "posbridge_notifications_rejected_total",
                 provider="ucanpay", reason="bad_signature") == 3
    assert value(got["posbridge_printer_faults"], "posbridge_printer_faults_total",
                 printer="lane-1", reason="paper") == 1
    assert value(got["posbridge_display_faults"], "posbridge_display_faults_total",
                 display="lane-1", reason="offline") == 1
    assert value(got["posbridge_ecr_connections"], "posbridge_ecr_connections") == 4
    assert value(got["posbridge_ecr_requests"], "posbridge_ecr_requests_total",
                 method="sale", outcome="ok") == 1
    assert value(got["posbridge_journal_commit_seconds"],
                 "posbridge_journal_commit_seconds_bucket", le="0.0025") == 1
    assert value(got["posbridge_batch_closes"], "posbridge_batch_closes_total",
                 outcome="ok") == 1


def test_label_names_are_fixed() -> None:
    m = Metrics()
    with pytest.raises(ValueError, match="label"):
        m.transactions_total.labels(provider="codepay", kind="sale", order_no="A1").inc()


def test_each_metrics_has_its_own_registry_and_not_the_global_one() -> None:
    a, b = Metrics(), Metrics()  # two daemons in one process must not collide
    a.ecr_connections.set(3)
    assert value(parse(a)["posbridge_ecr_connections"], "posbridge_ecr_connections") == 3
    assert value(parse(b)["posbridge_ecr_connections"], "posbridge_ecr_connections") == 0
    assert REGISTRY.get_sample_value("posbridge_ecr_connections") is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.99) == 0.0
    with pytest.raises(ValueError, match="q must be"):
        percentile(values, 0.0)


def test_lag_probe_window_is_bounded_and_clamps_negative_samples() -> None:
    probe = EventLoopLagProbe(interval_s=0.25, window=5)
    for lag in (-0.001, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06):
        probe.record(lag)
    assert probe.samples == 5
    assert probe.max() == 0.06
    assert probe.p99() == 0.06
    probe.reset()
    assert probe.samples == 0
    assert probe.p99() == 0.0


async def test_lag_probe_sees_a_blocked_loop_and_feeds_the_histogram() -> None:
    m = Metrics(loop_lag_interval_s=10 * MS)
    task = asyncio.create_task(m.loop_lag.run())
    try:
        await asyncio.sleep(50 * MS)
        time.sleep(100 * MS)  # a blocking call on the loop
        await asyncio.sleep(50 * MS)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert m.loop_lag.samples >= 5
    assert m.loop_lag.max() >= 80 * MS
    lag = parse(m)["posbridge_event_loop_lag_seconds"]
    assert value(lag, "posbridge_event_loop_lag_seconds_count") == m.loop_lag.samples
    assert value(lag, "posbridge_event_loop_lag_seconds_bucket", le="0.05") < m.loop_lag.samples


def test_default_lag_interval_is_a_quarter_second() -> None:
    assert Metrics().loop_lag.interval_s == 0.25
