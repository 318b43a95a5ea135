"""``posbridge serve`` sets the cyclic collector once serving (in a fresh interpreter: the
setting is process-wide, so it is never applied to the test process itself)."""

from __future__ import annotations

import json
import subprocess
import sys

from posbridge.gc_tuning import YOUNG_THRESHOLD

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
