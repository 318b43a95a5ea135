"""Command-line register and manager client: ``posbridge sale|void|refund|qr-sale|crypto-sale|
cancel|status``,
``posbridge batch status|close``, ``posbridge transactions``, ``posbridge health``.

Each command connects to a running daemon over the ECR protocol (exactly what a register does),
prints live progress from ``transaction.updated`` notifications, and exits 0 when the call
succeeded (whatever the payment's state), 1 when the bridge answered an error, 2 on bad usage
or a connection failure. Where to connect: ``--url`` / ``POSBRIDGE_URL`` (default
``ws://127.0.0.1:8765/ecr``); the token: ``--token`` / ``POSBRIDGE_TOKEN``, else the sandbox's
token file.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posbridge import aio
from posbridge.cli_output import output_gone
from posbridge.client import EcrClient, EcrError
from posbridge.sandbox.paths import default_sandbox_dir, read_sandbox_token

DEFAULT_URL = "ws://127.0.0.1:8765/ecr"
FINAL = {"approved", "declined", "cancelled", "expired", "failed"}


def add_connection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("POSBRIDGE_URL", DEFAULT_URL),
                   help="the daemon's ECR WebSocket URL (env POSBRIDGE_URL)")
    p.add_argument("--token", default=os.environ.get("POSBRIDGE_TOKEN"),
                   help="register token (env POSBRIDGE_TOKEN; default: the sandbox token)")
    p.add_argument("--sandbox-dir", type=Path, default=default_sandbox_dir(),
                   help="where `serve --sandbox` keeps its token")
    p.add_argument("--json", action="store_true", help="print the raw JSON result")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the result")


def _pin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pin", help="manager PIN for a cashier token ('-' asks for it)")


def register_commands(sub: Any) -> None:
    """Add the register/manager sub-commands to the main parser's sub-parsers."""
    p = sub.add_parser("sale", help="card sale on a terminal")
    add_connection_options(p)
    p.add_argument("--terminal", required=True)
    p.add_argument("--order-no", required=True)
    p.add_argument("--amount", required=True, help='decimal string, e.g. "12.34"')
    p.add_argument("--currency", required=True)
    p.add_argument("--tip")
    p.add_argument("--description")
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=_run(_sale))

    p = sub.add_parser("qr-sale", help="wallet QR sale")
    add_connection_options(p)
    p.add_argument("--order-no", required=True)
    p.add_argument("--amount", required=True)
    p.add_argument("--currency", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--body")
    p.add_argument("--display")
    p.add_argument("--print", dest="print_slip", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=_run(_qr_sale))

    p = sub.add_parser("crypto-sale", help="crypto sale: the customer pays a pay-page QR")
    add_connection_options(p)
    p.add_argument("--order-no", required=True)
    p.add_argument("--amount", required=True, help='decimal string in the coin, e.g. "12.5"')
    p.add_argument("--coin", required=True, help="a configured coin, e.g. USDT")
    payer = p.add_mutually_exclusive_group(required=True)
    payer.add_argument("--open-id", help="the payer's platform open id (scanned from the app)")
    payer.add_argument("--user-id", help="the payer's platform user id")
    p.add_argument("--subject")
    p.add_argument("--display")
    p.add_argument("--terminal", help="the lane whose batch the sale counts in")
    p.add_argument("--print", dest="print_slip", action="store_true")
    p.add_argument("--no-wait", action="store_true")
    p.set_defaults(func=_run(_crypto_sale))

    p = sub.add_parser("void", help="void a card sale (manager)")
    add_connection_options(p)
    _pin_option(p)
    p.add_argument("--order-no", required=True)
    p.add_argument("--orig-order-no", required=True)
    p.add_argument("--terminal")
    p.set_defaults(func=_run(_void))

    p = sub.add_parser("refund", help="refund a sale, in part or in full (manager)")
    add_connection_options(p)
    _pin_option(p)
    p.add_argument("--order-no", required=True)
    p.add_argument("--orig-order-no", required=True)
    p.add_argument("--amount", required=True)
    p.add_argument("--description")
    p.set_defaults(func=_run(_refund))

    p = sub.add_parser("cancel", help="cancel a payment in flight")
    add_connection_options(p)
    p.add_argument("--order-no", required=True)
    p.set_defaults(func=_run(_simple("cancel", ("order_no",))))

    p = sub.add_parser("status", help="a transaction's state")
    add_connection_options(p)
    p.add_argument("--order-no", required=True)
    p.add_argument("--refresh", action="store_true", help="ask the provider now")
    p.set_defaults(func=_run(_status))

    p = sub.add_parser("transactions", help="list transactions, newest first")
    add_connection_options(p)
    p.add_argument("--terminal")
    p.add_argument("--state")
    p.add_argument("--since", help="RFC 3339 time")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_run(_transactions))

    p = sub.add_parser("batch", help="end of day: batch status / close")
    bsub = p.add_subparsers(dest="batch_cmd", required=True)
    q = bsub.add_parser("status", help="open batch totals per terminal")
    add_connection_options(q)
    q.add_argument("--terminal")
    q.set_defaults(func=_run(_batch_status))
    q = bsub.add_parser("close", help="close a terminal's batch (manager)")
    add_connection_options(q)
    _pin_option(q)
    q.add_argument("--terminal", required=True)
    q.set_defaults(func=_run(_batch_close))

    p = sub.add_parser("health", help="the daemon's /healthz")
    p.add_argument("--http", default=os.environ.get("POSBRIDGE_HTTP", "http://127.0.0.1:8766"),
                   help="the daemon's HTTP base URL (env POSBRIDGE_HTTP)")
    p.add_argument("--json", action="store_true", help="print the raw JSON report")
    p.set_defaults(func=_health)


Action = Callable[[EcrClient, argparse.Namespace], Any]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        token = args.token or read_sandbox_token(args.sandbox_dir)
        if not token:
            print("no token: pass --token, set POSBRIDGE_TOKEN, or start "
                  "`posbridge serve --sandbox`", file=sys.stderr)
            return 2
        try:
            return aio.run(_session(action, args, token))
        except BrokenPipeError:
            if output_gone():
                raise  # our reader left (``| head``): main() ends quietly
            print(f"cannot reach the daemon at {args.url}: the connection broke", file=sys.stderr)
            return 2
        except (OSError, TimeoutError) as exc:
            print(f"cannot reach the daemon at {args.url}: {exc}", file=sys.stderr)
            return 2

    return command


async def _session(action: Action, args: argparse.Namespace, token: str) -> int:
    async with await EcrClient.connect(args.url, token) as ecr:
        progress = asyncio.create_task(_progress(ecr, args))
        try:
            result = await action(ecr, args)
        except EcrError as exc:
            print(f"error {exc.code} ({exc.reason}): {exc.message}"
                  + (f" [field {exc.data['field']}]" if exc.data.get("field") else "")
                  + (f" [provider {exc.data['provider_code']}]"
                     if exc.data.get("provider_code") else ""), file=sys.stderr)
            return 1
        finally:
            progress.cancel()
    _show(result, args)
    return 0


async def _progress(ecr: EcrClient, args: argparse.Namespace) -> None:
    if args.json:
        return
    async for note in ecr.notifications():
        txn = note.get("params", {}).get("transaction")
        if isinstance(txn, dict):
            print(f"  … {txn.get('order_no')}: {txn.get('state')}", file=sys.stderr, flush=True)


def _show(result: Any, args: argparse.Namespace) -> None:
    if args.json or not isinstance(result, dict) or "state" not in result:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    line = f"{result['order_no']}: {result['state']}  {result['amount']} {result['currency']}"
    if result.get("card"):
        line += f"  {result['card'].get('brand') or ''} {result['card'].get('last4') or ''}"
    if result.get("auth_no"):
        line += f"  auth {result['auth_no']}"
    if result.get("error"):
        line += f"  ({result['error'].get('code')}: {result['error'].get('message')})"
    print(line)
    if result.get("qr"):
        print(f"QR: {result['qr']['deeplink']}")


def _opt(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for param, attr in names.items():
        value = getattr(args, attr, None)
        if value is not None:
            out[param] = value
    return out


def _pin(args: argparse.Namespace) -> dict[str, Any]:
    if args.pin is None:
        return {}
    return {"manager_pin": getpass.getpass("manager PIN: ") if args.pin == "-" else args.pin}


async def _sale(ecr: EcrClient, args: argparse.Namespace) -> Any:
    params = {"terminal": args.terminal, "order_no": args.order_no, "amount": args.amount,
              "currency": args.currency, "wait": not args.no_wait,
              **_opt(args, tip="tip", description="description")}
    return await ecr.call("sale", params, timeout=args.timeout + 5)


async def _qr_sale(ecr: EcrClient, args: argparse.Namespace) -> Any:
    params = {"order_no": args.order_no, "amount": args.amount, "currency": args.currency,
              "subject": args.subject, "print": args.print_slip, "wait": not args.no_wait,
              **_opt(args, body="body", display="display")}
    return await ecr.call("qr_sale", params, timeout=args.timeout + 5)


async def _crypto_sale(ecr: EcrClient, args: argparse.Namespace) -> Any:
    payer = {"open_id": args.open_id} if args.open_id else {"user_id": args.user_id}
    params = {"order_no": args.order_no, "amount": args.amount, "coin": args.coin,
              "payer": payer, "print": args.print_slip, "wait": not args.no_wait,
              **_opt(args, subject="subject", display="display", terminal="terminal")}
    return await ecr.call("crypto_sale", params, timeout=args.timeout + 5)


async def _void(ecr: EcrClient, args: argparse.Namespace) -> Any:
    params = {"order_no": args.order_no, "orig_order_no": args.orig_order_no,
              **_opt(args, terminal="terminal"), **_pin(args)}
    return await ecr.call("void", params, timeout=args.timeout + 5)


async def _refund(ecr: EcrClient, args: argparse.Namespace) -> Any:
    params = {"order_no": args.order_no, "orig_order_no": args.orig_order_no,
              "amount": args.amount, **_opt(args, description="description"), **_pin(args)}
    return await ecr.call("refund", params, timeout=args.timeout + 5)


async def _status(ecr: EcrClient, args: argparse.Namespace) -> Any:
    return await ecr.call("status", {"order_no": args.order_no, "refresh": args.refresh})


def _simple(method: str, fields: tuple[str, ...]) -> Action:
    async def action(ecr: EcrClient, args: argparse.Namespace) -> Any:
        return await ecr.call(method, {f: getattr(args, f) for f in fields},
                              timeout=args.timeout + 5)

    return action


async def _transactions(ecr: EcrClient, args: argparse.Namespace) -> Any:
    params = {"limit": args.limit, **_opt(args, terminal="terminal", state="state",
                                          since="since")}
    result = await ecr.call("transactions.list", params)
    if not args.json:
        for t in result["items"]:
            print(f"{t['created_at']}  {t['order_no']:<32} {t['kind']:<9} {t['state']:<11}"
                  f" {t['amount']:>10} {t['currency']}  {t['terminal'] or ''}")
        return {"items": len(result["items"]), "next_cursor": result["next_cursor"]}
    return result


async def _batch_status(ecr: EcrClient, args: argparse.Namespace) -> Any:
    return await ecr.call("batch.status", _opt(args, terminal="terminal"))


async def _batch_close(ecr: EcrClient, args: argparse.Namespace) -> Any:
    return await ecr.call("batch.close", {"terminal": args.terminal, **_pin(args)},
                          timeout=args.timeout + 5)


def _health(args: argparse.Namespace) -> int:
    url = args.http.rstrip("/") + "/healthz"
    if not url.startswith(("http://", "https://")):
        print("--http must be an http(s) URL", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (checked scheme)
            body = resp.read().decode()
            code = resp.status
    except urllib.error.HTTPError as exc:
        body, code = exc.read().decode(), exc.code
    except OSError as exc:
        print(f"cannot reach {url}: {exc}", file=sys.stderr)
        return 2
    print(body if args.json else _health_text(body))
    return 0 if code == 200 else 1


def _health_text(body: str) -> str:
    """The /healthz report as a few readable lines (the raw body if it is not one)."""
    try:
        report = json.loads(body)
        lines = [f"status    {report['status']}", f"journal   {report['journal']}"]
        for name, p in report.get("providers", {}).items():
            seen = {True: "reachable", False: f"UNREACHABLE ({p.get('error')})",
                    None: "not asked yet"}[p.get("reachable")]
            lines.append(f"{name:<9} {seen}")
        devices = report.get("devices", {})
        for kind in ("printers", "displays"):
            for name, state in devices.get(kind, {}).items():
                lines.append(f"{kind[:-1]:<9} {name}: {state}")
        lines.append(f"registers {report.get('registers_connected')} connected, "
                     f"{report.get('live_transactions')} payments in flight")
    except (ValueError, KeyError, TypeError, AttributeError):
        return body
    return "\n".join(lines)
