"""The store manager's page at ``/manager``: terminals and open batches, what needs attention,
the pre-authorisations still holding money (with their age), today's transactions (with a tip
adjustment for an approved card sale), and closing a batch.

Plain server-rendered HTML with forms: no script at all (the Content-Security-Policy forbids
it), works in any browser, no build step. Every state change is a POST answered by a redirect
back to the page (post/redirect/get), with a one-line result shown once.

Routes (all under ``/manager``, the session cookie's path):

====================== ====== ===========================================================
``/manager``           GET    the page; without a session, a redirect to the login page
``/manager/login``     GET    the login form (``?out=1`` after a logout)
``/manager/login``     POST   ``pin``: on success a new session and a redirect to the page
``/manager/logout``    POST   ends the session
``/manager/query``     POST   ``order_no``: ask the provider now
``/manager/close``     POST   ``order_no``: mark a late approval reviewed, or close an order
                              whose outcome is unknown at the provider
``/manager/batch-close`` GET  ``terminal``: the confirmation step (batch number and totals)
``/manager/batch-close`` POST ``terminal``, ``batch_no``: close that batch, only if it is
                              still the open one (a repeated or stale form closes nothing)
``/manager/tip``       POST   ``order_no``, ``tip``: set a new total tip on an approved sale or
                              completion of an open batch (a ``tip.adjust`` of the manager)
``/manager/audit``     GET    the audit trail, newest first, filtered by ``action``, ``actor``
                              and ``q`` (order number or terminal); ``verify=1`` checks the
                              whole chain
====================== ====== ===========================================================

Each login, each wrong PIN, each batch close, tip adjustment, "close at provider" and "mark
reviewed" is an audit record (:mod:`posbridge.audit_log`) whose actor is the page's session,
``manager:<label>`` (a short random label of its own, not the session id), or ``manager`` before
a login. A login refused during a PIN lock-out is recorded once per address and lock-out (those
attempts are not slowed down, and must not fill the journal); an empty PIN, or a page without a
configured PIN, checks no PIN and leaves no record.

Security:

* login by the manager PIN (checked by :class:`posbridge.secrets.PinChecker`, which slows down
  repeated wrong PINs and then locks every PIN check out for a while);
* a random session id in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` under TLS),
  limited to ``/manager``; idle sessions expire after 30 minutes; logging out drops it;
* every POST except the login carries the session's CSRF token in a hidden field, compared in
  constant time; a POST without a session or without the right token is refused with 403 and
  changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from aiohttp import web

from posbridge.audit import (
    BATCH_CLOSE,
    MANAGER_LOGIN,
    TXN_CLOSE,
    TXN_REVIEW,
    AuditEntry,
    AuditRecord,
    ChainBreak,
    ChainHead,
    manager_actor,
    refused,
    target,
    verify_chain,
)
from posbridge.audit_log import AuditQuery, AuditTrail, actions, all_records, select
from posbridge.batches import Batches
from posbridge.config import Config
from posbridge.engine import Engine, PaymentRequest, TerminalInfo
from posbridge.errors import RequestError
from posbridge.journal import Journal, TxnQuery
from posbridge.lifecycle import State
from posbridge.money import format_amount
from posbridge.operations import OPERATIONS
from posbridge.providers.base import TxnKind
from posbridge.records import Attention, TxnRecord
from posbridge.secrets import PinChecker
from posbridge.views import rfc3339


class ManagerHost(Protocol):
    """What the manager page needs of the daemon."""

    config: Config
    journal: Journal
    engine: Engine
    batches: Batches
    pins: PinChecker | None
    audit: AuditTrail

    async def terminal_views(self) -> list[dict[str, Any]]: ...

log = structlog.get_logger(__name__)

COOKIE = "posbridge_manager"
#: the kinds whose tip a manager may adjust (the originals of a tip adjustment)
TIPPABLE = OPERATIONS[TxnKind.TIP_ADJUST].originals
SESSION_IDLE_S = 30 * 60
MAX_SESSIONS = 64
PAGE = "/manager"
LOGIN = "/manager/login"
SEARCH_MAX = 64
LIST_LIMIT = 200
CLOSE_WAIT_S = 10.0
AUDIT = "/manager/audit"
AUDIT_LIMIT = 200
#: At most this many addresses' locked-out logins are recorded in one lock-out.
LOCKED_OUT_NOTED = 4096
TIP_ADJUST = OPERATIONS[TxnKind.TIP_ADJUST].method


@dataclass
class Session:
    csrf: str
    last_seen: float
    flash: tuple[str, bool] | None = None  # (text, is_error), shown once on the next page
    #: names the session in the audit trail (random; the session id itself is a credential)
    label: str = ""

    def entry(self, action: str, peer: str | None) -> AuditEntry:
        """An audit entry of this session's ``action`` from ``peer``."""
        return AuditEntry(actor=manager_actor(self.label), peer=peer or "?", action=action)


class Sessions:
    """Logged-in sessions by id, in memory (a restart logs everyone out)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, Session] = {}
        self._clock = clock

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> tuple[str, Session]:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), last_seen=self._clock(),
                          label=secrets.token_hex(4))
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


# --------------------------------------------------------------------------------------------
# HTML (pure: data in, text out)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8em 1.2em;display:flex;
justify-content:space-between;align-items:center;gap:1em}
header a{color:#fff} header form{margin:0;display:inline}
main{padding:1em 1.2em;max-width:1100px}
section{background:#fff;border-radius:8px;padding:1em;margin-bottom:1em;box-shadow:0 1px 2px #0002}
h2{margin:0 0 .6em;font-size:1.15em}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.35em .5em;
border-bottom:1px solid #e3e6eb;font-size:.95em;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333}.bad{color:#b3261e}.warn{color:#a15c00}.muted{color:#6b7280}
button{padding:.35em .8em;cursor:pointer}
button.danger{background:#b3261e;color:#fff;border:0;border-radius:4px;padding:.5em 1em}
.flash{padding:.6em;border-radius:6px;background:#e8f0fe;margin-bottom:1em}
.flash.error{background:#fce8e6;color:#8c1d18}
input[type=search]{padding:.3em;width:16em} form.inline{display:inline}
td.when{white-space:nowrap}
"""

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # No script anywhere on these pages.
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


def page(title: str, body: str, *, csrf: str | None = None,
         flash: tuple[str, bool] | None = None, status: int = 200) -> web.Response:
    """A whole page; with ``csrf`` (logged in) the header has Refresh and Log out."""
    nav = ""
    if csrf is not None:
        nav = (f'<nav><a href="{PAGE}">Refresh</a> <a href="{AUDIT}" id="audit-link">Audit '
               "trail</a> "
               f'<form method="post" action="/manager/logout" class="inline">'
               f'{_hidden("csrf", csrf)}<button id="logout">Log out</button></form></nav>')
    note = ""
    if flash is not None:
        text, error = flash
        note = (f'<div id="flash" class="flash{" error" if error else ""}" role="status">'
                f"{_e(text)}</div>")
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{_e(title)}</title>
<style>{STYLE}</style></head><body><header><strong>posbridge · {_e(title)}</strong>{nav}
</header><main>{note}{body}</main></body></html>"""
    return web.Response(text=text, content_type="text/html", status=status, headers=HEADERS)


def _hidden(name: str, value: object) -> str:
    return f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">'


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **HEADERS})


def login_body() -> str:
    return f"""<section><h2>Manager login</h2>
<form method="post" action="{LOGIN}">
<label>Manager PIN <input type="password" name="pin" id="pin" autocomplete="off"
 inputmode="numeric" required autofocus></label> <button id="login">Log in</button>
</form></section>"""


def _online(online: object) -> str:
    if online is True:
        return '<span class="ok">online</span>'
    if online is False:
        return '<span class="bad">offline</span>'
    return '<span class="muted" title="no answer from this terminal yet">not seen yet</span>'


def _clock_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _totals(totals: Mapping[str, Any]) -> str:
    """Per currency: the net total, then what it is made of."""
    if not totals:
        return '<span class="muted">no transactions</span>'
    return "".join(
        f'<div data-currency="{_e(cur)}"><strong>{_e(t["net"])} {_e(cur)}</strong> net '
        f'<small class="muted">({_e(t["count"])} txn: sales {_e(t["sales"])}, '
        f'tips {_e(t["tips"])}, refunds {_e(t["refunds"])}, voids {_e(t["voids"])})</small></div>'
        for cur, t in totals.items())


def terminals_section(terminals: list[dict[str, Any]]) -> str:
    rows = []
    for term in terminals:
        batch = term.get("open_batch") or {}
        rows.append(
            f'<tr data-terminal="{_e(term["name"])}"><td>{_e(term["name"])}<br>'
            f'<small class="muted">{_e(term["sn"])}</small></td>'
            f'<td class="online">{_online(term.get("online"))}</td>'
            f'<td class="batch">{_e(batch.get("batch_no"))}</td>'
            f'<td class="count num">{_e(batch.get("count", 0))}</td>'
            f'<td class="totals">{_totals(batch.get("totals") or {})}</td>'
            f'<td><form method="get" action="/manager/batch-close">'
            f'{_hidden("terminal", term["sn"])}<button class="close-batch">Close batch…'
            f"</button></form></td></tr>")
    return ("<section id=\"terminals\"><h2>Terminals and open batches</h2><table><tr>"
            "<th>Terminal</th><th>Status</th><th>Open batch</th><th>Count</th>"
            f"<th>Totals</th><th></th></tr>{''.join(rows)}</table></section>")


def _why(rec: TxnRecord) -> str:
    if rec.attention is Attention.LATE_APPROVAL:
        return ("late approval: the card was approved after the sale had been cancelled, so "
                "the customer was charged. Check with the customer; refund if the sale did not "
                "go ahead.")
    if rec.state is State.UNKNOWN:
        return ("outcome unknown: the provider's answer was lost; the bridge keeps asking. "
                "Query now, or close the order at the provider.")
    return _e(rec.attention.value if rec.attention else rec.state.value)


def _terminal(rec: TxnRecord, names: Mapping[str, str]) -> str:
    """The terminal's configured name (its serial number as a tooltip)."""
    if rec.terminal_sn is None:
        return ""
    return (f'<span title="{_e(rec.terminal_sn)}">'
            f"{_e(names.get(rec.terminal_sn, rec.terminal_sn))}</span>")


def attention_section(records: list[TxnRecord], csrf: str, names: Mapping[str, str]) -> str:
    if not records:
        return ('<section id="attention"><h2>Needs attention</h2>'
                '<p class="ok">Nothing needs attention.</p></section>')
    rows = []
    for rec in records:
        close_label = "Mark reviewed" if rec.attention is not None else "Close at provider"
        rows.append(
            f'<tr data-order="{_e(rec.order_no)}"><td>{_e(rec.order_no)}</td>'
            f"<td>{_e(rec.kind.value)}</td><td>{_terminal(rec, names)}</td>"
            f'<td class="state warn">{_e(rec.state.value)}</td><td class="why">{_why(rec)}</td>'
            f'<td class="num">{_e(_amount(rec))}</td><td>'
            f'<form method="post" action="/manager/query" class="inline">{_hidden("csrf", csrf)}'
            f'{_hidden("order_no", rec.order_no)}<button class="query">Query now</button></form> '
            f'<form method="post" action="/manager/close" class="inline">{_hidden("csrf", csrf)}'
            f'{_hidden("order_no", rec.order_no)}<button class="close">{close_label}</button>'
            "</form></td></tr>")
    return ('<section id="attention"><h2 class="warn">Needs attention</h2><table><tr>'
            "<th>Order</th><th>Kind</th><th>Terminal</th><th>State</th><th>Why</th>"
            f"<th>Amount</th><th></th></tr>{''.join(rows)}</table></section>")


def _age(since_ms: int, now_ms: int) -> str:
    minutes = max(0, now_ms - since_ms) // 60_000
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} days"


def holds_section(holds: list[TxnRecord], names: Mapping[str, str], now_ms: int) -> str:
    """Pre-authorisations neither completed nor cancelled: money held on a card."""
    if not holds:
        return ('<section id="holds"><h2>Open pre-authorisations</h2>'
                '<p class="muted">No card holds are open.</p></section>')
    rows = "".join(
        f'<tr data-order="{_e(rec.order_no)}"><td>{_e(rec.order_no)}</td>'
        f"<td>{_terminal(rec, names)}</td><td class=\"num\">{_e(_amount(rec))}</td>"
        f'<td class="age" title="{_e(rfc3339(rec.updated_at))}">'
        f"{_e(_age(rec.updated_at, now_ms))}</td></tr>" for rec in holds)
    return ('<section id="holds"><h2>Open pre-authorisations</h2><table><tr><th>Order</th>'
            f"<th>Terminal</th><th>Held</th><th>Age</th></tr>{rows}</table>"
            "<p><small>Complete each for the final amount, or cancel it to release the "
            "customer's money.</small></p></section>")


def _tip_form(rec: TxnRecord, csrf: str) -> str:
    """A new total tip for an approved card sale or completion (the batch must be open)."""
    if rec.state is not State.APPROVED or rec.kind not in TIPPABLE:
        return ""
    return (f'<form method="post" action="/manager/tip" class="inline tip">'
            f'{_hidden("csrf", csrf)}{_hidden("order_no", rec.order_no)}'
            f'<input name="tip" size="7" inputmode="decimal" placeholder="new tip" '
            f'aria-label="new total tip of {_e(rec.order_no)}" required> '
            "<button>Set tip</button></form>")


def transactions_section(items: list[TxnRecord], search: str, names: Mapping[str, str],
                         csrf: str = "") -> str:
    rows = []
    for rec in items:
        card = " ".join(x for x in (rec.card_brand, rec.card_last4) if x)
        flag = (' <span class="warn">⚠ needs attention</span>'
                if rec.attention is not None else "")
        rows.append(
            f'<tr data-order="{_e(rec.order_no)}"><td title="{_e(rfc3339(rec.created_at))}">'
            f"{_e(_clock_time(rec.created_at))}</td><td>{_e(rec.order_no)}</td>"
            f"<td>{_e(rec.kind.value)}</td><td>{_terminal(rec, names)}</td>"
            f'<td class="state">{_e(rec.state.value)}{flag}</td>'
            f'<td class="num">{_e(_amount(rec))}</td><td>{_e(card)}</td>'
            f"<td>{_tip_form(rec, csrf) if csrf else ''}</td></tr>")
    if items:
        shown = f"{len(items)} shown" + (" (the most recent)" if len(items) >= LIST_LIMIT else "")
    elif search:
        shown = f"No transaction today matches “{_e(search)}”."
    else:
        shown = "No transactions today."
    clear = f' <a href="{PAGE}">Clear search</a>' if search else ""
    return ('<section id="transactions"><h2>Today\'s transactions</h2>'
            f'<form method="get" action="{PAGE}" role="search">'
            f'<input type="search" name="q" id="q" value="{_e(search)}" maxlength="{SEARCH_MAX}" '
            'placeholder="order no or provider reference"> <button id="search">Search</button>'
            f"{clear}</form><table><tr><th>Time</th><th>Order</th><th>Kind</th><th>Terminal</th>"
            f"<th>State</th><th>Amount</th><th>Card</th><th></th></tr>{''.join(rows)}</table>"
            f'<p id="shown"><small>{shown}</small></p></section>')


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """The audit page's filter as typed (empty: no filter)."""

    action: str = ""
    actor: str = ""
    search: str = ""


def _outcome(outcome: str) -> str:
    kind = "ok" if outcome == "ok" else "bad"
    return f'<span class="{kind}">{_e(outcome)}</span>'


def _detail(detail: Mapping[str, object]) -> str:
    return "; ".join(f"{_e(k)}: {_e(v)}" for k, v in sorted(detail.items()))


def _verdict(verdict: ChainHead | ChainBreak | None) -> str:
    if verdict is None:
        return (f'<p id="chain"><a href="{AUDIT}?verify=1" id="verify">Verify the chain</a> '
                "<small class=\"muted\">(every record's hash; also <code>posbridge audit "
                "verify</code>)</small></p>")
    if isinstance(verdict, ChainHead):
        return (f'<p id="chain" class="ok">The chain is whole: {verdict.seq} records, head '
                f"<code>{_e(verdict)}</code>.</p>")
    return f'<p id="chain" class="bad">The chain is broken at {_e(verdict)}.</p>'


def audit_section(records: list[AuditRecord], choices: list[str], wanted: AuditFilter,
                  verdict: ChainHead | ChainBreak | None) -> str:
    """The audit trail, newest first, with its filter form."""
    options = "".join(
        f'<option value="{_e(a)}"{" selected" if a == wanted.action else ""}>{_e(a)}</option>'
        for a in ["", *choices])
    rows = "".join(
        f'<tr data-seq="{rec.seq}" data-action="{_e(rec.action)}">'
        f'<td class="num">{rec.seq}</td>'
        f'<td class="when" title="{_e(rfc3339(rec.at))}">{_e(_local_time(rec.at))}</td>'
        f'<td class="actor">{_e(rec.actor)}</td><td>{_e(rec.peer)}</td>'
        f"<td>{_e(rec.action)}</td><td>{_e(rec.order_no)}"
        f"{'<br>' if rec.order_no and rec.terminal else ''}"
        f'<small class="muted">{_e(rec.terminal)}</small></td>'
        f'<td class="outcome">{_outcome(rec.outcome)}</td>'
        f"<td><small>{_detail(rec.detail)}</small></td></tr>" for rec in reversed(records))
    shown = (f"{len(records)} shown" + (" (the most recent)" if len(records) >= AUDIT_LIMIT
                                       else "")) if records else "No record matches."
    return (
        '<section id="audit"><h2>Audit trail</h2>'
        f'<form method="get" action="{AUDIT}" role="search"><label>Action '
        f'<select name="action" id="action">{options}</select></label> '
        f'<label>Actor <input type="search" name="actor" id="actor" value="{_e(wanted.actor)}" '
        f'maxlength="{SEARCH_MAX}" placeholder="register or manager:…"></label> '
        f'<label>Order or terminal <input type="search" name="q" id="q" '
        f'value="{_e(wanted.search)}" maxlength="{SEARCH_MAX}"></label> '
        f'<button id="filter">Filter</button> <a href="{AUDIT}">Clear</a></form>'
        f"{_verdict(verdict)}<table><tr><th>#</th><th>Time</th><th>Who</th><th>From</th>"
        f"<th>Action</th><th>Order / terminal</th><th>Outcome</th><th>Detail</th></tr>{rows}"
        f'</table><p id="shown"><small>{shown}</small></p></section>')


def _local_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def confirm_body(term: Mapping[str, Any], batch: Mapping[str, Any], csrf: str) -> str:
    count = batch.get("count", 0)
    return (
        f'<section id="confirm"><h2>Close batch {_e(batch["batch_no"])} of '
        f'{_e(term["name"])}?</h2>'
        f"<p>Terminal {_e(term['name'])} ({_e(term['sn'])}), batch {_e(batch['batch_no'])} "
        f"opened {_e(_iso_clock(batch.get('opened_at')))}, "
        f"{_e(count)} transaction{'' if count == 1 else 's'}:</p>"
        f'<div class="totals">{_totals(batch.get("totals") or {})}</div>'
        "<p>Closing settles the batch with the card provider and opens a new one. Sales of a "
        "closed batch can no longer be voided (they can still be refunded).</p>"
        f'<form method="post" action="/manager/batch-close">{_hidden("csrf", csrf)}'
        f'{_hidden("terminal", term["sn"])}{_hidden("batch_no", batch["batch_no"])}'
        f'<button class="danger" id="confirm-close">Yes, close batch {_e(batch["batch_no"])}'
        f'</button> <a href="{PAGE}" id="cancel">Cancel</a></form></section>')


def _iso_clock(text: object) -> str:
    """An RFC 3339 time (the batch view's) as local ``YYYY-MM-DD HH:MM``."""
    if not isinstance(text, str) or not text:
        return "?"
    when = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone()
    return when.strftime("%Y-%m-%d %H:%M")


def _discrepancy(diff: Mapping[str, Any]) -> str:
    parts = []
    for key, value in diff.items():
        if isinstance(value, Mapping):
            cur = f" {value['currency']}" if "currency" in value else ""
            parts.append(f"{key}: bridge {value.get('bridge')}{cur}, "
                         f"provider {value.get('provider')}{cur}")
        else:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _amount(rec: TxnRecord) -> str:
    return f"{format_amount(rec.amount + rec.tip, rec.currency, rec.exponent)} {rec.currency}"


# --------------------------------------------------------------------------------------------
# Handlers


async def read_form(request: web.Request) -> Mapping[str, Any] | None:
    """The POSTed form, or None when the body cannot be read as one: aiohttp raises
    UnicodeDecodeError (a ValueError) for a urlencoded body that is not UTF-8."""
    try:
        return await request.post()
    except ValueError:
        return None

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A POST's action: (form, the session, the peer's address) -> (flash text, is_error)
Action = Callable[[Any, Session, str | None], Awaitable[tuple[str, bool]]]


def manager_routes(daemon: ManagerHost) -> list[web.RouteDef]:
    sessions = Sessions()
    secure = daemon.config.bridge.tls_cert_file is not None
    batch_lock = asyncio.Lock()  # one manager close at a time: the batch-number check holds
    locked_out_noted: set[str] = set()  # peers whose login was recorded in this lock-out

    def session_of(request: web.Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def login_page(flash: tuple[str, bool] | None = None, status: int = 200) -> web.Response:
        return page("manager login", login_body(), flash=flash, status=status)

    async def index(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None:
            return see_other(LOGIN)
        flash, session.flash = session.flash, None
        search = request.query.get("q", "").strip()[:SEARCH_MAX]
        terminals = await daemon.terminal_views()
        attention = await daemon.journal.read(lambda r: r.attention())
        midnight = int(time.mktime((*time.localtime()[:3], 0, 0, 0, 0, 0, -1))) * 1000
        items, _ = await daemon.journal.list_transactions(
            TxnQuery(since_ms=midnight, search=search or None, limit=LIST_LIMIT))
        names = {t.sn: t.name for t in daemon.engine.terminals}
        holds = await daemon.engine.open_holds()
        body = (terminals_section(terminals) + attention_section(attention, session.csrf, names)
                + holds_section(holds, names, int(time.time() * 1000))
                + transactions_section(items, search, names, session.csrf))
        return page("store manager", body, csrf=session.csrf, flash=flash)

    async def login_form(request: web.Request) -> web.StreamResponse:
        if session_of(request) is not None:
            return see_other(PAGE)
        out = request.query.get("out") == "1"
        return login_page(("Logged out.", False) if out else None)

    async def login(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        if form is None:
            return unreadable()
        pin = str(form.get("pin", ""))
        checker = daemon.pins
        peer = request.remote or "?"
        if checker is None:
            return login_page(("No manager PIN is configured ([manager] pin_hash), so the "
                               "manager page is disabled.", True), status=503)
        locked_text = ("Too many wrong PINs: login is locked for a few minutes. "
                       "Try again later.", True)
        attempt = AuditEntry(actor=manager_actor(None), peer=peer, action=MANAGER_LOGIN)
        if checker.locked:
            log.warning("manager_login_locked_out", peer=peer)
            if peer not in locked_out_noted and len(locked_out_noted) < LOCKED_OUT_NOTED:
                locked_out_noted.add(peer)
                await daemon.audit.record(attempt.ended(refused("PIN checks are locked out")))
            return login_page(locked_text, status=429)
        locked_out_noted.clear()
        if not pin:
            return login_page(("Enter the manager PIN.", True), status=401)
        if not await checker.check(pin, peer=peer):
            log.warning("manager_login_failed", peer=peer)
            await daemon.audit.record(attempt.ended(refused("wrong PIN")).about(
                locked_out=checker.locked or None))
            if checker.locked:
                locked_out_noted.add(peer)
                return login_page(locked_text, status=429)
            return login_page(("Wrong PIN. Repeated wrong PINs are slowed down, then locked "
                               "out.", True), status=401)
        sid, session = sessions.create()
        if await daemon.audit.record(session.entry(MANAGER_LOGIN, peer)) is None:
            sessions.drop(sid)  # a privileged session that the trail cannot show is not opened
            return login_page(("The journal cannot record the login right now; try again.",
                               True), status=503)
        log.info("manager_login", peer=peer)
        resp = see_other(PAGE)
        # No max-age: a browser-session cookie; the server ends idle sessions.
        resp.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", secure=secure,
                        path=PAGE)
        return resp

    def authorized(request: web.Request, form: Mapping[str, Any]) -> Session | None:
        """The request's session, if its form carries that session's CSRF token."""
        session = session_of(request)
        token = str(form.get("csrf", ""))
        if session is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            log.warning("manager_post_refused", peer=request.remote, path=request.path,
                        session=session is not None)
            return None
        return session

    def unreadable() -> web.Response:
        body = ("<section><h2>Bad request</h2><p>This form could not be read; nothing was "
                f'changed. <a href="{PAGE}">Open the manager page</a>.</p></section>')
        return page("manager", body, status=400)

    def forbidden() -> web.Response:
        body = ("<section><h2>Forbidden</h2><p>This form has expired or did not come from this "
                f'page; nothing was changed. <a href="{PAGE}">Open the manager page</a> '
                "(log in again if asked).</p></section>")
        return page("manager", body, status=403)

    def guarded(action: Action) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            form = await read_form(request)
            if form is None:
                return unreadable()
            session = authorized(request, form)
            if session is None:
                return forbidden()
            try:
                session.flash = await action(form, session, request.remote)
            except RequestError as exc:
                session.flash = (exc.message, True)
            return see_other(PAGE)

        return handle

    async def logout(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        if form is None:
            return unreadable()
        if authorized(request, form) is None:
            return forbidden()
        sessions.drop(request.cookies.get(COOKIE))
        log.info("manager_logout", peer=request.remote)
        resp = see_other(LOGIN + "?out=1")
        resp.del_cookie(COOKIE, path=PAGE)
        return resp

    async def query_now(form: Any, _session: Session, _peer: str | None) -> tuple[str, bool]:
        order_no = str(form.get("order_no", ""))
        rec = await daemon.engine.query_now(order_no)
        text = f"Asked the provider about {order_no}: {rec.state.value}."
        if rec.state is State.UNKNOWN:
            text += " No answer yet; the bridge keeps asking."
        elif rec.attention is not None:
            text += " It still needs your review (Mark reviewed)."
        return text, False

    async def close_txn(form: Any, session: Session, peer: str | None) -> tuple[str, bool]:
        order_no = str(form.get("order_no", ""))
        found = await daemon.engine.get(order_no)
        review = found is not None and found.attention is not None
        entry = session.entry(TXN_REVIEW if review else TXN_CLOSE, peer).about(
            order_no=target(order_no))

        async def close_or_review(audit: AuditEntry) -> TxnRecord:
            if found is None:
                raise RequestError(1005, "original_not_found", f"No transaction {order_no}.")
            if review:
                rec = await daemon.engine.acknowledge(order_no, audit=audit)
                log.info("manager_reviewed", order_no=order_no)
                return rec
            if found.is_final:
                raise RequestError(1010, "not_allowed", f"{order_no} is already "
                                                        f"{found.state.value}: nothing to close.")
            return await daemon.engine.cancel(order_no, timeout_s=CLOSE_WAIT_S, audit=audit)

        rec = await daemon.audit.around(entry, close_or_review)
        if review:
            return f"{order_no} marked as reviewed (it stays {rec.state.value}).", False
        if not rec.is_final:
            return f"Close sent for {order_no}; it is still {rec.state.value}.", False
        return f"{order_no} closed at the provider: {rec.state.value}.", False

    async def adjust_tip(form: Any, session: Session, peer: str | None) -> tuple[str, bool]:
        orig = str(form.get("order_no", ""))
        tip = str(form.get("tip", "")).strip()
        order_no = tip_adjust_order_no()
        entry = session.entry(TIP_ADJUST, peer).about(order_no=order_no,
                                                      orig_order_no=target(orig))
        rec = await daemon.audit.around(entry, lambda audit: daemon.engine.start(
            "manager", PaymentRequest(method=TIP_ADJUST, order_no=order_no, orig_order_no=orig,
                                      tip_text=tip), audit=audit))
        log.info("manager_tip_adjust", order_no=order_no, orig_order_no=orig)
        rec = await daemon.engine.wait_final(rec.order_no, CLOSE_WAIT_S)
        if rec.state is State.APPROVED:
            return f"The tip of {orig} is now {tip} ({order_no}).", False
        if not rec.is_final:
            return f"Tip adjustment {order_no} sent; it is still {rec.state.value}.", False
        return (f"Tip adjustment {order_no} of {orig}: {rec.state.value} "
                f"({rec.error_message or rec.error_code}).", True)

    async def confirm_close(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None:
            return see_other(LOGIN)
        try:
            term = daemon.engine.terminal(request.query.get("terminal", ""))
        except RequestError as exc:
            session.flash = (exc.message, True)
            return see_other(PAGE)
        [batch] = await daemon.batches.status(term.sn)
        view = {"sn": term.sn, "name": term.name}
        return page("close batch", confirm_body(view, batch, session.csrf), csrf=session.csrf)

    async def close_batch(form: Any, session: Session, peer: str | None) -> tuple[str, bool]:
        terminal = str(form.get("terminal", ""))
        wanted = str(form.get("batch_no", ""))
        entry = session.entry(BATCH_CLOSE, peer).about(terminal=target(terminal))

        async def close(audit: AuditEntry) -> tuple[TerminalInfo, dict[str, Any]]:
            term = daemon.engine.terminal(terminal)
            async with batch_lock:
                [current] = await daemon.batches.status(term.sn)
                if str(current["batch_no"]) != wanted:
                    raise RequestError(
                        1010, "not_allowed",
                        f"Nothing closed: batch {wanted or '?'} of {term.name} is not the open "
                        f"batch (batch {current['batch_no']} is open).")
                log.info("manager_batch_close", terminal=term.sn, batch_no=wanted)
                return term, await daemon.batches.close(term.sn, identity="manager",
                                                        audit=audit)

        term, batch = await daemon.audit.around(entry, close)
        diff = batch.get("discrepancy")
        if isinstance(diff, Mapping) and diff:
            return (f"Batch {batch['batch_no']} of {term.name} closed, with a DISCREPANCY "
                    f"against the provider: {_discrepancy(diff)}.", True)
        return (f"Batch {batch['batch_no']} of {term.name} closed; the totals agree with the "
                "provider.", False)

    async def audit_page(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None:
            return see_other(LOGIN)
        q = request.query
        wanted = AuditFilter(action=q.get("action", "")[:SEARCH_MAX].strip(),
                             actor=q.get("actor", "")[:SEARCH_MAX].strip(),
                             search=q.get("q", "")[:SEARCH_MAX].strip())
        query = AuditQuery(action=wanted.action or None, actor=wanted.actor or None,
                           search=wanted.search or None, limit=AUDIT_LIMIT)
        records, choices = await daemon.journal.read(
            lambda r: (select(r.conn, query), actions(r.conn)))
        verdict = None
        if q.get("verify") == "1":
            verdict = await daemon.journal.read(lambda r: verify_chain(all_records(r.conn)))
        body = audit_section(records, choices, wanted, verdict)
        return page("audit trail", body, csrf=session.csrf)

    return [
        web.get(PAGE, index),
        web.get(AUDIT, audit_page),
        web.get(LOGIN, login_form),
        web.post(LOGIN, login),
        web.post("/manager/logout", logout),
        web.post("/manager/query", guarded(query_now)),
        web.post("/manager/close", guarded(close_txn)),
        web.get("/manager/batch-close", confirm_close),
        web.post("/manager/batch-close", guarded(close_batch)),
        web.post("/manager/tip", guarded(adjust_tip)),
    ]


def tip_adjust_order_no() -> str:
    """A new order number for a manager's tip adjustment (letters and digits, 18: ``TA``,
    the time in milliseconds in base 36, a random tail)."""
    stamp = int(time.time() * 1000)
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while stamp:
        stamp, rest = divmod(stamp, 36)
        text = digits[rest] + text
    return f"TA{text}{secrets.token_hex(3).upper()}"
