"""``posbridge doctor``'s pure judgements: the clock, systemd and the notification URL."""

from __future__ import annotations

import email.utils

from posbridge.doctor import clock_check, notify_url_check, systemd_check

NOW = 1_800_000_000.0


def _date(offset_s: float) -> str:
    return email.utils.formatdate(NOW + offset_s, usegmt=True)


def test_clock_skew_against_the_providers_date_header() -> None:
    assert clock_check("codepay", NOW, None) is None
    assert clock_check("codepay", NOW, "not a date") is None
    same = clock_check("codepay", NOW, _date(0))
    assert same is not None and same.status == "ok"
    slow = clock_check("codepay", NOW, _date(120))
    assert slow is not None and slow.status == "warn"
    assert "120 s behind" in slow.message and "timedatectl set-ntp true" in slow.fix
    fast = clock_check("codepay", NOW, _date(-3600))
    assert fast is not None and fast.status == "fail"
    assert "3600 s ahead of" in fast.message and "refused" in fast.message


def test_systemd_states() -> None:
    unit = "posbridge.service"
    assert systemd_check(unit, None, "no bus").status == "warn"
    missing = systemd_check(unit, {"LoadState": "not-found"}, None)
    assert missing.status == "warn" and "daemon-reload" in missing.fix
    failed = systemd_check(unit, {"LoadState": "loaded", "ActiveState": "failed",
                                  "SubState": "failed", "UnitFileState": "enabled"}, None)
    assert failed.status == "fail" and "journalctl -u posbridge.service" in failed.fix
    stopped = systemd_check(unit, {"LoadState": "loaded", "ActiveState": "inactive",
                                   "UnitFileState": "disabled"}, None)
    assert stopped.status == "warn" and "systemctl enable --now" in stopped.fix
    running = systemd_check(unit, {"LoadState": "loaded", "ActiveState": "active",
                                   "UnitFileState": "enabled"}, None)
    assert running.status == "ok"


def test_the_notification_url_is_checked_from_this_machine_only() -> None:
    url = "https://store-42.example"
    assert notify_url_check("", None, False, None).status == "warn"
    answered = notify_url_check(url, 503, True, None)
    assert answered.status == "ok" and "from this machine only" in answered.message
    stranger = notify_url_check(url, 404, False, None)
    assert stranger.status == "fail" and "http_listen" in stranger.fix
    silent = notify_url_check(url, None, False, "connection refused")
    assert silent.status == "warn" and "systemctl start posbridge" in silent.fix
