"""The journal of release 0.1.0 (commit 95b779d), for the schema-upgrade tests.

Run with that release checked out: ``python tests/vectors/journal/make_release_journal.py OUT``.
It holds approved and declined card sales, a void, a refund, a QR sale and its refund, a closed
batch, an approved sale in the next batch and a card sale still in progress (the daemon stopped
while the terminal was silent). The file is then switched to rollback-journal mode so that it is
whole on its own (the daemon turns WAL on again when it opens it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from posbridge.client import EcrClient
from posbridge.daemon import Daemon
from posbridge.sandbox.runtime import ensure_keys, start_simulators
from tests.e2e.conftest import MANAGER_TOKEN, TOKEN, bridge_config


async def make(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        keys = ensure_keys(tmp / "keys")
        sims = await start_simulators(keys, approve_delay_s=0.05, notify_interval_s=0.05)
        daemon = Daemon(bridge_config(tmp / "data", keys, sims))
        await daemon.start()
        url = f"ws://127.0.0.1:{daemon.ecr_port}/ecr"
        ecr = await EcrClient.connect(url, TOKEN)
        mgr = await EcrClient.connect(url, MANAGER_TOKEN)

        async def sale(order_no: str, amount: str, **extra: Any) -> Any:
            return await ecr.call("sale", {"terminal": "lane-1", "order_no": order_no,
                                           "amount": amount, "currency": "USD", **extra})

        await sale("V1A", "12.00", tip="1.50")
        await sale("V1D", "12.05")
        await sale("V1B", "20.00")
        await mgr.call("void", {"order_no": "V1BV", "orig_order_no": "V1B"})
        await mgr.call("refund", {"order_no": "V1AR", "orig_order_no": "V1A", "amount": "2.00"})
        qr = await ecr.call("qr_sale", {"order_no": "V1Q", "amount": "8.50", "currency": "CAD",
                                        "subject": "Coffee", "wait": False})
        await sims.ucanpay.scan_and_pay(qr["provider_ref"])
        for _ in range(100):
            if (await ecr.call("status", {"order_no": "V1Q"}))["state"] == "approved":
                break
            await asyncio.sleep(0.1)
        await mgr.call("refund", {"order_no": "V1QR", "orig_order_no": "V1Q", "amount": "1.50"})
        await mgr.call("batch.close", {"terminal": "lane-1"})
        await sale("V1C", "5.00")
        await sale("V1S", "12.10", wait=False)
        await asyncio.sleep(0.5)
        await ecr.close()
        await mgr.close()
        await daemon.stop()
        await sims.stop()
        src = sqlite3.connect(tmp / "data" / "journal.sqlite")
        dst = sqlite3.connect(out)
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        src.close()
        dst.close()


if __name__ == "__main__":
    asyncio.run(make(Path(sys.argv[1])))
