"""The log processors: the timestamp, and secrets masked by the key that names them."""

from __future__ import annotations

import datetime
import re
import time
from typing import Any

from posbridge import logs


def test_the_timestamp_is_iso_utc_with_microseconds_and_now() -> None:
    before = time.time()
    stamp = logs._timestamp(None, "info", {})["timestamp"]
    after = time.time()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
    at = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.UTC).timestamp()
    assert before - 1e-6 <= at <= after + 1e-6


def test_timestamps_of_one_second_share_its_text_and_keep_their_order() -> None:
    stamps = [logs._timestamp(None, "info", {})["timestamp"] for _ in range(1000)]
    assert stamps == sorted(stamps)


def test_secret_keys_are_masked_every_time_and_others_kept() -> None:
    for _ in range(3):  # the verdict per key is kept after its first line
        event: dict[str, Any] = {"event": "x", "order_no": "A1", "token": "t0ken",
                                 "private_key": "k", "pin_hash": "h", "sign_type": "RSA2",
                                 "amount": 1234, "Authorization": "Bearer b"}
        out = logs._mask_secrets(None, "info", event)
        assert out == {"event": "x", "order_no": "A1", "token": "***", "private_key": "***",
                       "pin_hash": "***", "sign_type": "RSA2", "amount": 1234,
                       "Authorization": "***"}
