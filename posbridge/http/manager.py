"""The store manager's page at ``/manager``: terminals and open batches, today's transactions,
what needs attention, and closing a batch.

Plain server-rendered HTML with forms (works in any browser, no build step). Security:

* login by the manager PIN (checked by :class:`posbridge.secrets.PinChecker`, which slows down
  and locks out repeated wrong PINs per address);
* a random session id in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` under TLS), idle
  sessions expire after 30 minutes;
* every POST carries the session's CSRF token in a hidden field, compared in constant time;
  a POST without it is refused with 403.
"""

from __future__ import annotations

import hmac
import html
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from aiohttp import web

from posbridge.errors import RequestError
from posbridge.journal import TxnQuery
from posbridge.money import format_amount
from posbridge.records import TxnRecord
from posbridge.views import rfc3339

if TYPE_CHECKING:
    from posbridge.daemon import Daemon

log = structlog.get_logger(__name__)

COOKIE = "posbridge_manager"
SESSION_IDLE_S = 30 * 60
MAX_SESSIONS = 64


@dataclass
class Session:
    csrf: str
    last_seen: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, Session] = {}
        self._clock = clock

    def create(self) -> tuple[str, Session]:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), last_seen=self._clock())
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        self._expire()
        if sid is None:
            return None
        session = self._sessions.get(sid)
        if session is not None:
            session.last_seen = self._clock()
        return session

    def drop(self, sid: str | None) -> None:
        if sid is not None:
            self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._sessions.items() if now - v.last_seen > SESSION_IDLE_S]:
            del self._sessions[sid]


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8em 1.2em;display:flex;justify-content:space-between}
header form{margin:0} main{padding:1em 1.2em;max-width:1100px}
section{background:#fff;border-radius:8px;padding:1em;margin-bottom:1em;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.35em .5em;
border-bottom:1px solid #e3e6eb;font-size:.95em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.bad{color:#b3261e}.warn{color:#a15c00} button{padding:.35em .8em;cursor:pointer}
.flash{padding:.6em;border-radius:6px;background:#e8f0fe;margin-bottom:1em}
.error{background:#fce8e6} input[type=search]{padding:.3em;width:16em}
"""


def _page(title: str, body: str, *, csrf: str | None = None, flash: str = "",
          error: bool = False) -> web.Response:
    logout = (f'<form method="post" action="/manager/logout"><input type="hidden" name="csrf" '
              f'value="{_e(csrf)}"><button>Log out</button></form>') if csrf else ""
    note = (f'<div class="flash{" error" if error else ""}" role="status">{_e(flash)}</div>'
            if flash else "")
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{_e(title)}</title>
<style>{STYLE}</style></head><body><header><strong>posbridge · {_e(title)}</strong>{logout}
</header><main>{note}{body}</main></body></html>"""
    resp = web.Response(text=text, content_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "script-src 'unsafe-inline'")
    return resp


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def manager_routes(daemon: Daemon) -> list[web.RouteDef]:
    sessions = Sessions()
    secure = daemon.config.bridge.tls_cert_file is not None

    def session_of(request: web.Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def login_page(flash: str = "", error: bool = False) -> web.Response:
        body = """<section><h2>Manager login</h2>
<form method="post" action="/manager/login">
<label>Manager PIN <input type="password" name="pin" id="pin" autocomplete="off"
 inputmode="numeric" required autofocus></label> <button id="login">Log in</button>
</form></section>"""
        return _page("manager", body, flash=flash, error=error)

    async def index(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None:
            return login_page()
        flash = request.query.get("flash", "")
        search = request.query.get("q", "").strip()[:64]
        return _page("manager", await _dashboard(daemon, session.csrf, search),
                     csrf=session.csrf, flash=flash, error=request.query.get("err") == "1")

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        pin = str(form.get("pin", ""))
        checker = daemon.pins
        peer = request.remote or "?"
        if checker is None or not pin or not await checker.check(pin, peer=peer):
            log.warning("manager_login_failed", peer=peer)
            resp = login_page("Wrong PIN (repeated attempts are slowed down and locked out).",
                              error=True)
            resp.set_status(401)
            return resp
        sid, _session = sessions.create()
        log.info("manager_login", peer=peer)
        resp = web.HTTPSeeOther("/manager")
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=secure,
                        path="/manager", max_age=SESSION_IDLE_S)
        return resp

    def guarded(action: Callable[[web.Request, Any], Awaitable[str]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            session = session_of(request)
            form = await request.post()
            token = str(form.get("csrf", ""))
            if session is None or not hmac.compare_digest(token.encode(),
                                                          session.csrf.encode()):
                return web.Response(status=403, text="forbidden: log in again\n")
            try:
                flash = await action(request, form)
            except RequestError as exc:
                raise web.HTTPSeeOther(f"/manager?err=1&flash={_q(exc.message)}") from exc
            raise web.HTTPSeeOther(f"/manager?flash={_q(flash)}")

        return handle

    async def logout(request: web.Request, form: Any) -> str:
        sessions.drop(request.cookies.get(COOKIE))
        return "Logged out."

    async def query_now(request: web.Request, form: Any) -> str:
        rec = await daemon.engine.query_now(str(form.get("order_no", "")))
        return f"{rec.order_no}: {rec.state.value}"

    async def close_txn(request: web.Request, form: Any) -> str:
        order_no = str(form.get("order_no", ""))
        rec = await daemon.engine.get(order_no)
        if rec is None:
            return f"no transaction {order_no}"
        if rec.attention is not None:
            rec = await daemon.engine.acknowledge(order_no)
            return f"{order_no}: marked as reviewed ({rec.state.value})"
        rec = await daemon.engine.cancel(order_no, timeout_s=10)
        return f"{order_no}: {rec.state.value}"

    async def close_batch(request: web.Request, form: Any) -> str:
        if form.get("confirm") != "yes":
            return "Batch not closed: tick the confirmation box."
        batch = await daemon.batches.close(str(form.get("terminal", "")), identity="manager")
        diff = batch.get("discrepancy")
        return (f"Batch {batch['batch_no']} of {batch['terminal']} closed"
                + (f" — DISCREPANCY {diff}" if diff else " — totals agree with the provider"))

    return [
        web.get("/manager", index),
        web.post("/manager/login", login),
        web.post("/manager/logout", guarded(logout)),
        web.post("/manager/query", guarded(query_now)),
        web.post("/manager/close", guarded(close_txn)),
        web.post("/manager/batch-close", guarded(close_batch)),
    ]


def _q(text: str) -> str:
    return quote(text[:300])


async def _dashboard(daemon: Daemon, csrf: str, search: str) -> str:
    hidden = f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
    parts = ["<section><h2>Terminals and open batches</h2><table><tr><th>Terminal</th>"
             "<th>Online</th><th>Batch</th><th>Count</th><th>Totals</th><th></th></tr>"]
    for term in await daemon.terminal_views():
        batch = term.get("open_batch") or {}
        totals = batch.get("totals") or {}
        lines = "<br>".join(
            f"{_e(cur)} net {_e(t['net'])} (sales {_e(t['sales'])}, tips {_e(t['tips'])}, "
            f"refunds {_e(t['refunds'])}, voids {_e(t['voids'])})" for cur, t in totals.items()
        ) or "—"
        online = term.get("online")
        status = ('<span class="ok">online</span>' if online else
                  '<span class="bad">offline</span>' if online is False else "unknown")
        parts.append(
            f"<tr><td>{_e(term['name'])}<br><small>{_e(term['sn'])}</small></td><td>{status}</td>"
            f"<td>{_e(batch.get('batch_no'))}</td><td class=num>{_e(batch.get('count'))}</td>"
            f"<td class=num>{lines}</td><td><form method=post action=/manager/batch-close "
            f"onsubmit=\"return confirm('Close the batch of {_e(term['name'])}?')\">{hidden}"
            f"<input type=hidden name=terminal value=\"{_e(term['sn'])}\">"
            f"<label><input type=checkbox name=confirm value=yes> confirm</label> "
            f"<button>Close batch</button></form></td></tr>")
    parts.append("</table></section>")

    attention = await daemon.journal.read(lambda r: r.attention())
    parts.append("<section><h2>Needs attention</h2>")
    if not attention:
        parts.append("<p class=ok>Nothing needs attention.</p>")
    else:
        parts.append("<table><tr><th>Order</th><th>Kind</th><th>State</th><th>Why</th>"
                     "<th>Amount</th><th></th></tr>")
        for rec in attention:
            why = rec.attention.value if rec.attention else "provider answer lost"
            close_label = "Mark reviewed" if rec.attention else "Close at provider"
            parts.append(
                f"<tr><td>{_e(rec.order_no)}</td><td>{_e(rec.kind.value)}</td>"
                f"<td class=warn>{_e(rec.state.value)}</td><td>{_e(why)}</td>"
                f"<td class=num>{_e(_amount(rec))}</td><td>"
                f"<form method=post action=/manager/query style=display:inline>{hidden}"
                f"<input type=hidden name=order_no value=\"{_e(rec.order_no)}\">"
                f"<button>Query now</button></form> "
                f"<form method=post action=/manager/close style=display:inline>{hidden}"
                f"<input type=hidden name=order_no value=\"{_e(rec.order_no)}\">"
                f"<button>{close_label}</button></form></td></tr>")
        parts.append("</table>")
    parts.append("</section>")

    midnight = int(time.mktime((*time.localtime()[:3], 0, 0, 0, 0, 0, -1))) * 1000
    items, _ = await daemon.journal.list_transactions(
        TxnQuery(since_ms=midnight, search=search or None, limit=200))
    parts.append(
        "<section><h2>Today's transactions</h2><form method=get action=/manager>"
        f"<input type=search name=q value=\"{_e(search)}\" placeholder=\"order no or reference\">"
        " <button>Search</button></form><table><tr><th>Time</th><th>Order</th><th>Kind</th>"
        "<th>Terminal</th><th>State</th><th>Amount</th><th>Card</th></tr>")
    for rec in items:
        card = " ".join(x for x in (rec.card_brand, rec.card_last4) if x)
        parts.append(
            f"<tr><td>{_e(rfc3339(rec.created_at))}</td><td>{_e(rec.order_no)}</td>"
            f"<td>{_e(rec.kind.value)}</td><td>{_e(rec.terminal_sn or '')}</td>"
            f"<td>{_e(rec.state.value)}</td><td class=num>{_e(_amount(rec))}</td>"
            f"<td>{_e(card)}</td></tr>")
    parts.append(f"</table><p><small>{len(items)} shown</small></p></section>")
    return "".join(parts)


def _amount(rec: TxnRecord) -> str:
    return f"{format_amount(rec.amount + rec.tip, rec.currency)} {rec.currency}"
