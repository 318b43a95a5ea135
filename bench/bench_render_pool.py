"""QR rendering in the render pool vs. in the caller vs. in concurrent.futures' process pool.

What one wallet QR PNG costs the event loop's caller from ``await`` to bytes, one at a time
(5 ms apart, like sales arriving), three ways in one run: drawn right here (``inline``, the
floor), in ``hardware.qr_pool.POOL`` (one spawned worker over a socket pair), and in a
``concurrent.futures.ProcessPoolExecutor`` with one spawned worker (the pool's former
design, whose two helper threads hand every call and answer along). Prints medians, p99 and
each one's overhead over ``inline``.

    .venv/bin/python bench/bench_render_pool.py [--renders N]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable

from hardware.qr import render_qr_png
from hardware.qr_pool import POOL
from posbridge import aio

DEEPLINK = "ucanpay://pay?orderNo=UCP2026120100012345&amount=1250&currency=USD&sig="


async def timed(render: Callable[[str], Awaitable[bytes]], n: int) -> list[float]:
    ms = []
    for i in range(n):
        started = time.perf_counter()
        await render(f"{DEEPLINK}{i:06d}")
        ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return ms


async def main(n: int) -> None:
    await POOL.start()
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(executor, render_qr_png, DEEPLINK)  # spawn and warm up

    async def inline(data: str) -> bytes:
        return render_qr_png(data)

    async def pool(data: str) -> bytes:
        return await POOL.run(render_qr_png, data)

    async def futures_pool(data: str) -> bytes:
        return await loop.run_in_executor(executor, render_qr_png, data)

    ways = {"inline": inline, "qr_pool (socket pair)": pool,
            "ProcessPoolExecutor": futures_pool}
    results: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for _ in range(4):  # interleaved blocks: the machine's drift hits every way alike
            for name, way in ways.items():
                results[name] += await timed(way, n // 4)
    finally:
        executor.shutdown()
        await POOL.close()
    base = statistics.median(results["inline"])
    print(f"one QR PNG at a time, n={n} each ({len(DEEPLINK) + 6}-character deeplink)")
    for name, ms in results.items():
        ms.sort()
        median = statistics.median(ms)
        print(f"{name:24} median {median:6.3f} ms   p99 {ms[int(len(ms) * 0.99) - 1]:6.3f} ms"
              f"   over inline {median - base:+.3f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=int, default=400)
    aio.run(main(ap.parse_args().renders))
