"""The cyclic garbage collector, set for a daemon that allocates fast and rarely makes cycles.

Nearly everything a payment allocates (frames, dicts, JSON texts, records) is freed by
reference counting the moment it is dropped. CPython's cyclic collector nevertheless walks
the young objects after every 700 net allocations, and every few hundred thousand it walks
every object of the process, the modules and configuration loaded at start included. Under
load that came to about 3 % of the daemon's CPU (``perf`` on ``bench/bench_sale.py``'s
throughput phase: ``gc_collect_main`` and its visitors), for no garbage found.

Once serving, :func:`tune_for_serving`:

* collects once, then **freezes** what start-up left (``gc.freeze``): those objects move to a
  permanent generation that no collection walks again. They are still freed by reference
  counting as usual; only a reference cycle among them would stay (a configuration reload
  drops its old objects by reference count);
* raises the youngest generation's threshold from 700 to :data:`YOUNG_THRESHOLD`
  allocations: young collections run 14 times less often; the rare cyclic garbage (an
  exception that holds its traceback, say) waits a little longer to be found.

Only ``posbridge serve`` (and the benchmarks' copy of it) calls this: it changes the whole
process, which a library must not do to its host (tests run daemons in-process).
"""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations between two collections of the youngest generation (CPython: 700).
YOUNG_THRESHOLD: Final = 10_000


def tune_for_serving() -> None:
    """Freeze what start-up built and make young collections rarer (see the module)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
