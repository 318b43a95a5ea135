"""A store upgrades: the daemon starts on a journal written by release 0.1.0 and goes on."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from posbridge.client import EcrError
from posbridge.journal import SCHEMA_VERSION

from .conftest import Bridge

pytestmark = pytest.mark.timeout(60)

RELEASE_0_1_0 = Path(__file__).parents[1] / "vectors" / "journal" / "release-0.1.0.sqlite"


async def test_the_daemon_runs_on_a_release_0_1_0_journal(make_bridge: Any,
                                                          tmp_path: Path) -> None:
    data_dir = tmp_path / "bridge0"  # the first bridge's data folder
    data_dir.mkdir()
    shutil.copyfile(RELEASE_0_1_0, data_dir / "journal.sqlite")
    b: Bridge = await make_bridge()
    async with await b.register() as ecr, await b.manager() as mgr:
        # The sale the old daemon left on the terminal is reconciled again (this simulator
        # never saw it, so it stays as the journal has it: never final without the provider).
        stuck = await ecr.call("status", {"order_no": "V1S", "refresh": True})
        assert stuck["state"] == "in_progress"
        assert "order.query" in b.sims.codepay.method_log("V1S")
        # A register retrying an old sale gets the old transaction back, not a conflict.
        again = await ecr.call("sale", {"terminal": "lane-1", "order_no": "V1A",
                                        "amount": "12.00", "tip": "1.50", "currency": "USD"})
        assert (again["state"], again["refunded_amount"], again["batch_no"]) == (
            "approved", "2.00", 1)
        # The bridge's own rules read the old records: what is left to refund, closed batches.
        with pytest.raises(EcrError) as too_much:
            await mgr.call("refund", {"order_no": "V1AR2", "orig_order_no": "V1A",
                                      "amount": "11.51"})
        assert too_much.value.code == 1006 and "11.50" in too_much.value.message
        with pytest.raises(EcrError) as closed:
            await mgr.call("void", {"order_no": "V1AV", "orig_order_no": "V1A"})
        assert closed.value.code == 1010
        [batch] = await ecr.call("batch.status", {"terminal": "lane-1"})
        assert (batch["batch_no"], batch["count"], batch["totals"]["USD"]["sales"]) == (
            2, 1, "5.00")
        # New sales carry on, and the register's event sequence continues.
        sale = await ecr.call("sale", {"terminal": "lane-1", "order_no": "N1",
                                       "amount": "3.00", "currency": "USD"})
        assert sale["state"] == "approved"
        events = await ecr.call("events.replay", {"since_seq": 0})
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
    version = await b.daemon.journal.run(
        lambda tx: tx.conn.execute("PRAGMA user_version").fetchone()[0])
    assert version == SCHEMA_VERSION
