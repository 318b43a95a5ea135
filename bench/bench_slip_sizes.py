"""Byte size of a QR slip with native QR and with raster QR, and the time each takes on a
19,200-baud serial line (8N1: 10 bits a byte), for 80 mm and 58 mm paper; plus the time to
build each slip here (pure CPU, median of ``--runs``).

    python bench/bench_slip_sizes.py [--runs 50] [--baud 19200]

The deeplink is a typical UCanPay dynamic-QR URL (about 100 characters).
"""

from __future__ import annotations

import argparse
import statistics
import time

from hardware.escpos import PrinterProfile
from hardware.printers.serial import line_seconds
from hardware.receipts import qr_slip

DEEPLINK = ("https://qr.ucanpay.com/pay/v1/dynamic?ucpOrderNo=UCP202401011030450000123456"
            "&merchantNo=M100200300&amt=1250")


def build(profile: PrinterProfile) -> bytes:
    return qr_slip(deeplink=DEEPLINK, amount_text="12.50", currency="EUR",
                   subject="Cappuccino and croissant", order_no="ORD-20240101-0042",
                   expires_text="2024-01-01T10:35:45Z", profile=profile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--baud", type=int, default=19200)
    args = parser.parse_args(argv)
    print(f"{'paper':<6} {'qr':<7} {'bytes':>7} {'line s':>8} {'build ms':>9}")
    for paper, width, cols in (("80mm", 576, 48), ("58mm", 384, 32)):
        for native in (True, False):
            profile = PrinterProfile(width_dots=width, native_qr=native, columns=cols)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                data = build(profile)
                times.append(time.perf_counter() - start)
            print(f"{paper:<6} {'native' if native else 'raster':<7} {len(data):>7} "
                  f"{line_seconds(len(data), args.baud):>8.3f} "
                  f"{statistics.median(times) * 1000:>9.2f}")


if __name__ == "__main__":
    main()
