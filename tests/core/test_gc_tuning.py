"""What ``posbridge serve`` does to the cyclic collector once serving (``tune_for_serving``,
run in a fresh interpreter: the setting is process-wide, so never in the test process)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from posbridge.config import load_config
from posbridge.gc_tuning import YOUNG_THRESHOLD
from posbridge.reload import plan_reload
from posbridge.secrets import PinChecker, TokenIndex, hash_secret
from tests.configs import journal_config

PROBE = """
import gc, json
from posbridge.gc_tuning import tune_for_serving
before = gc.get_threshold()
class Node:
    pass
def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
cycle()
tune_for_serving()
frozen = gc.get_freeze_count()
cycle()  # made after the freeze: still found by a collection
found = gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "found": found}))
"""


def test_start_up_is_frozen_young_collections_are_rarer_and_new_cycles_are_still_found() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True)
    report = json.loads(out.stdout)
    assert report["after"] == [YOUNG_THRESHOLD, *report["before"][1:]]
    assert report["after"][0] > report["before"][0]
    assert report["frozen"] > 1000  # the modules and objects start-up made
    assert report["found"] >= 2  # the cycle made after the freeze was collected


def test_what_a_reload_replaces_is_freed_by_reference_count(tmp_path: Path) -> None:
    """Frozen objects are never walked again: what a reload drops (the configuration, the
    token index, the plan) must hold no reference cycle, or it would stay."""
    path = journal_config(tmp_path / "posbridge.toml", tmp_path / "data")
    gc.collect()
    old, new = load_config(path), load_config(path)
    tokens = TokenIndex(old.ecr_clients)
    plan = plan_reload(old, new)
    pins = PinChecker(hash_secret("1234", log2_n=4))
    gc.collect()
    del old, tokens, plan, pins
    assert gc.collect() == 0
