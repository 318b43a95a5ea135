"""The manager page (``/manager``) end to end: a real bridge on 127.0.0.1, real card sales through
the ECR WebSocket, then the page in headless Chromium (typing and clicking like a manager), and
its security over plain HTTP (CSRF, cookie attributes, PIN lock-out, logout)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from posbridge.http.manager import COOKIE, SESSION_IDLE_S, Sessions
from posbridge.secrets import FailureThrottle, PinChecker
from tests.browser import DevTools

from .conftest import PIN, Bridge, hashed

pytestmark = pytest.mark.timeout(60)

SN1, SN2 = "SANDBOX0000000001", "SANDBOX0000000002"
WRONG_PIN = "000000"


def sale(order_no: str, amount: str, terminal: str = "lane-1", **extra: Any) -> dict[str, Any]:
    return {"terminal": terminal, "order_no": order_no, "amount": amount, "currency": "USD",
            **extra}


async def late_approval(bridge: Bridge, order_no: str, amount: str) -> None:
    """Sandbox cents .30: the cancel's close is answered success, yet the card goes through a
    moment later. The simulated terminal waits ``approve_delay_s`` before the card (closable for
    the first half); the e2e simulators use 0.05 s, too short to cancel in, so this one sale
    gets 1 s (a knob the simulator reads per order)."""
    assert amount.endswith(".30")
    codepay = bridge.sims.codepay
    fast = codepay.approve_delay_s
    codepay.approve_delay_s = 1.0
    try:
        async with await bridge.register() as ecr:
            started = await ecr.call("sale", sale(order_no, amount, wait=False))
            assert started["state"] in ("pending", "in_progress")
            cancelled = await ecr.call("cancel", {"order_no": order_no})
            assert cancelled["state"] == "cancelled"
    finally:
        codepay.approve_delay_s = fast


async def wait_state(bridge: Bridge, order_no: str, state: str, timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while (rec := await bridge.daemon.engine.get(order_no)) is None or \
                rec.state.value != state:
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# In the browser

ROWS_JS = """[...document.querySelectorAll('#terminals tr[data-terminal]')].map(r => ({
  name: r.dataset.terminal, online: r.querySelector('.online').textContent,
  batch: r.querySelector('.batch').textContent, count: r.querySelector('.count').textContent,
  totals: Object.fromEntries([...r.querySelectorAll('.totals [data-currency]')].map(
    d => [d.dataset.currency, d.querySelector('strong').textContent])),
  empty: r.querySelector('.totals').textContent}))"""


async def terminal_rows(dt: DevTools) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in await dt.evaluate(ROWS_JS)}


async def orders_in(dt: DevTools, section: str) -> list[str]:
    orders: list[str] = await dt.evaluate(
        f"[...document.querySelectorAll('#{section} tr[data-order]')].map(r => r.dataset.order)")
    return orders


async def flash(dt: DevTools) -> str:
    text: str = await dt.evaluate("document.getElementById('flash')?.textContent ?? ''")
    return text


async def test_manager_page_in_chromium(bridge: Bridge) -> None:
    # -- the day so far: a late approval on lane-1, three approved sales, one decline ------------
    await late_approval(bridge, "L1", "4.30")
    async with await bridge.register() as ecr:
        for order_no, amount, terminal in (("M1", "10.00", "lane-1"), ("M2", "2.50", "lane-1"),
                                           ("M3", "7.00", "lane-2")):
            assert (await ecr.call("sale", sale(order_no, amount, terminal)))["state"] == \
                "approved"
        assert (await ecr.call("sale", sale("M4", "3.05")))["state"] == "declined"
        await wait_state(bridge, "L1", "approved")  # the late approval arrived
        ecr_lane1, ecr_lane2 = await ecr.call("batch.status", {})
    assert ecr_lane1["terminal"] == SN1 and ecr_lane1["totals"]["USD"]["net"] == "16.80"
    assert ecr_lane2["totals"]["USD"]["net"] == "7.00"

    async with DevTools.launch() as dt:
        # -- login: redirected, a wrong PIN refused, the right one accepted ------------------
        await dt.navigate(f"{bridge.http}/manager")
        assert await dt.location() == "/manager/login"
        await dt.type_into("#pin", WRONG_PIN)
        await dt.click_and_wait_load("#login")
        assert await dt.location() == "/manager/login"
        assert "Wrong PIN" in await flash(dt)
        assert await dt.evaluate("document.getElementById('terminals')") is None
        await dt.type_into("#pin", PIN)
        await dt.click_and_wait_load("#login")
        assert await dt.location() == "/manager"
        assert await dt.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

        # -- terminals: online, and open-batch totals equal to the sales made ------------------
        rows = await terminal_rows(dt)
        assert rows["lane-1"]["online"] == "online" and rows["lane-2"]["online"] == "online"
        assert (rows["lane-1"]["batch"], rows["lane-1"]["count"]) == ("1", "3")  # M1 M2 L1
        assert rows["lane-1"]["totals"] == {"USD": "16.80 USD"}  # 10.00 + 2.50 + 4.30
        assert (rows["lane-2"]["batch"], rows["lane-2"]["count"]) == ("1", "1")
        assert rows["lane-2"]["totals"] == {"USD": "7.00 USD"}

        # -- today's transactions, and search by order_no ---------------------------------------
        assert sorted(await orders_in(dt, "transactions")) == ["L1", "M1", "M2", "M3", "M4"]
        await dt.type_into("#q", "M2")
        await dt.click_and_wait_load("#search")
        assert await dt.location() == "/manager?q=M2"
        assert await orders_in(dt, "transactions") == ["M2"]
        m2 = await dt.evaluate(
            "document.querySelector('#transactions tr[data-order=M2]').textContent")
        assert "lane-1" in m2 and "approved" in m2 and "2.50 USD" in m2
        await dt.type_into("#q", "nothing-like-this")
        await dt.click_and_wait_load("#search")
        assert await orders_in(dt, "transactions") == []
        assert "No transaction today matches" in await dt.evaluate(
            "document.getElementById('shown').textContent")
        await dt.navigate(f"{bridge.http}/manager")

        # -- the late approval needs attention: query now, then mark it reviewed ---------------
        assert await orders_in(dt, "attention") == ["L1"]
        why = await dt.evaluate("document.querySelector('#attention tr[data-order=L1] .why')"
                                ".textContent")
        assert why.startswith("late approval")
        await dt.click_and_wait_load("#attention tr[data-order=L1] button.query")
        assert await flash(dt) == ("Asked the provider about L1: approved. "
                                   "It still needs your review (Mark reviewed).")
        assert await orders_in(dt, "attention") == ["L1"]
        await dt.click_and_wait_load("#attention tr[data-order=L1] button.close")
        assert await flash(dt) == "L1 marked as reviewed (it stays approved)."
        assert await orders_in(dt, "attention") == []
        assert "Nothing needs attention." in await dt.evaluate(
            "document.getElementById('attention').textContent")
        rec = await bridge.daemon.engine.get("L1")
        assert rec is not None and rec.attention is None and rec.state.value == "approved"

        # -- close lane-1's batch through the confirmation step --------------------------------
        await dt.click_and_wait_load("#terminals tr[data-terminal=lane-1] button.close-batch")
        assert await dt.location() == f"/manager/batch-close?terminal={SN1}"
        assert await dt.evaluate("document.querySelector('#confirm h2').textContent") == \
            "Close batch 1 of lane-1?"
        assert "16.80 USD" in await dt.evaluate(
            "document.querySelector('#confirm .totals').textContent")
        assert bridge.sims.codepay.batch_closes == []  # the confirmation page closes nothing
        await dt.click_and_wait_load("#confirm-close")
        assert await dt.location() == "/manager"
        assert await flash(dt) == "Batch 1 of lane-1 closed; the totals agree with the provider."
        rows = await terminal_rows(dt)
        assert (rows["lane-1"]["batch"], rows["lane-1"]["count"]) == ("2", "0")
        assert rows["lane-1"]["totals"] == {} and rows["lane-1"]["empty"] == "no transactions"
        assert (rows["lane-2"]["batch"], rows["lane-2"]["count"]) == ("1", "1")

        # -- logout from the page ----------------------------------------------------------------
        await dt.click_and_wait_load("#logout")
        assert await dt.location() == "/manager/login?out=1"
        await dt.navigate(f"{bridge.http}/manager")
        assert await dt.location() == "/manager/login"

    # -- the provider saw exactly one batch.close, for lane-1; a new batch is open ---------------
    assert bridge.sims.codepay.batch_closes == [SN1]
    async with await bridge.register() as ecr:
        [lane1] = await ecr.call("batch.status", {"terminal": "lane-1"})
        [lane2] = await ecr.call("batch.status", {"terminal": "lane-2"})
    assert (lane1["state"], lane1["batch_no"], lane1["count"], lane1["totals"]) == \
        ("open", 2, 0, {})
    assert (lane2["batch_no"], lane2["count"]) == (1, 1)
    history = await bridge.daemon.batches.history("lane-1")
    assert sorted((b["batch_no"], b["state"]) for b in history) == [(1, "closed"), (2, "open")]
    [first] = [b for b in history if b["batch_no"] == 1]
    assert first["totals"]["USD"]["net"] == "16.80" and first["discrepancy"] == {}


# --------------------------------------------------------------------------------------------
# Over plain HTTP


class Manager:
    """A manager's browser, reduced to an aiohttp session with its own cookie jar."""

    def __init__(self, bridge: Bridge) -> None:
        self.base = bridge.http
        # unsafe=True: keep cookies set by an IP-address host (127.0.0.1), as browsers do.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, pin: str = PIN) -> aiohttp.ClientResponse:
        async with self.http.post(f"{self.base}/manager/login", data={"pin": pin},
                                  allow_redirects=False) as resp:
            await resp.read()
            return resp

    async def page(self) -> tuple[int, str, str]:
        """GET /manager without following redirects: (status, body, Location)."""
        async with self.http.get(f"{self.base}/manager", allow_redirects=False) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location", "")

    async def csrf(self) -> str:
        status, body, _ = await self.page()
        assert status == 200
        match = re.search(r'name="csrf" value="([^"]+)"', body)
        assert match is not None
        return match.group(1)

    async def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        async with self.http.post(f"{self.base}{path}", data=data,
                                  allow_redirects=False) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location", "")

    async def close(self) -> None:
        await self.http.close()


@pytest.fixture
async def manager(bridge: Bridge) -> AsyncIterator[Manager]:
    m = Manager(bridge)
    yield m
    await m.close()


async def test_posts_without_the_right_csrf_token_are_refused_and_change_nothing(
        bridge: Bridge, manager: Manager) -> None:
    await late_approval(bridge, "L1", "4.30")
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("S1", "10.00"))
    await wait_state(bridge, "L1", "approved")
    assert (await manager.login()).status == 303
    token = await manager.csrf()
    other = Manager(bridge)  # another manager, logged in: its token is not ours
    try:
        assert (await other.login()).status == 303
        other_token = await other.csrf()
        stranger = aiohttp.ClientSession()  # no session cookie at all
        try:
            forms: list[tuple[str, dict[str, str]]] = [
                ("/manager/batch-close", {"terminal": SN1, "batch_no": "1"}),
                ("/manager/close", {"order_no": "L1"}),
                ("/manager/query", {"order_no": "L1"}),
                ("/manager/logout", {}),
            ]
            for path, data in forms:
                for csrf in (None, "", "x" * 43, other_token):
                    form = data if csrf is None else {**data, "csrf": csrf}
                    status, body, location = await manager.post(path, form)
                    assert (status, location) == (403, ""), (path, csrf)
                    assert "nothing was changed" in body
                # the right token, but no session cookie (a cross-site form): refused too
                async with stranger.post(f"{bridge.http}{path}", data={**data, "csrf": token},
                                         allow_redirects=False) as resp:
                    assert resp.status == 403, path
        finally:
            await stranger.close()
    finally:
        await other.close()
    # nothing changed: no batch closed, the late approval still waits, still logged in
    assert bridge.sims.codepay.batch_closes == []
    rec = await bridge.daemon.engine.get("L1")
    assert rec is not None and rec.attention is not None
    async with await bridge.register() as ecr:
        [lane1] = await ecr.call("batch.status", {"terminal": "lane-1"})
    assert (lane1["batch_no"], lane1["count"]) == (1, 2)
    status, body, _ = await manager.page()
    assert status == 200 and 'data-order="L1"' in body
    # and with the right token the same form works: the refusals were about the token only
    status, _, location = await manager.post("/manager/close", {"order_no": "L1", "csrf": token})
    assert (status, location) == (303, "/manager")
    rec = await bridge.daemon.engine.get("L1")
    assert rec is not None and rec.attention is None


async def test_a_repeated_or_stale_batch_close_closes_nothing(
        bridge: Bridge, manager: Manager) -> None:
    async with await bridge.register() as ecr:
        await ecr.call("sale", sale("S1", "10.00"))
    await manager.login()
    token = await manager.csrf()
    form = {"csrf": token, "terminal": SN1, "batch_no": "1"}
    for _ in range(2):  # a double click, or the form sent again from the history
        status, _, location = await manager.post("/manager/batch-close", form)
        assert (status, location) == (303, "/manager")
    status, body, _ = await manager.page()
    assert bridge.sims.codepay.batch_closes == [SN1]
    assert "Nothing closed: batch 1 of lane-1 is not the open batch (batch 2 is open)." in body
    # no batch number (no confirmation step): nothing closed either
    await manager.post("/manager/batch-close", {"csrf": token, "terminal": SN1})
    assert bridge.sims.codepay.batch_closes == [SN1]
    # an unknown terminal: a clear error, nothing closed
    await manager.post("/manager/batch-close", {"csrf": token, "terminal": "nope",
                                                "batch_no": "1"})
    status, body, _ = await manager.page()
    assert 'class="flash error"' in body and "nope" in body
    assert bridge.sims.codepay.batch_closes == [SN1]


async def test_session_cookie_is_httponly_samesite_strict_and_logout_ends_it(
        bridge: Bridge, manager: Manager) -> None:
    status, _, location = await manager.page()
    assert (status, location) == (303, "/manager/login")
    resp = await manager.login()
    assert (resp.status, resp.headers["Location"]) == (303, "/manager")
    [set_cookie] = resp.headers.getall("Set-Cookie")
    attrs = [a.strip().lower() for a in set_cookie.split(";")]
    name, _, sid = set_cookie.split(";")[0].partition("=")
    assert name == COOKIE and len(sid) >= 40
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/manager" in attrs
    assert "secure" not in attrs  # plain HTTP here; Secure is set under TLS
    status, body, _ = await manager.page()
    assert status == 200 and "Terminals and open batches" in body
    headers = (await manager.http.get(f"{bridge.http}/manager")).headers
    assert "script-src" not in headers["Content-Security-Policy"]  # no script: default-src none
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"

    token = await manager.csrf()
    status, _, location = await manager.post("/manager/logout", {"csrf": token})
    assert (status, location) == (303, "/manager/login?out=1")
    status, _, location = await manager.page()
    assert (status, location) == (303, "/manager/login")
    # the old cookie, sent again by hand, is dead on the server too; so is its token
    async with aiohttp.ClientSession(cookies={COOKIE: sid}) as replay:
        async with replay.get(f"{bridge.http}/manager", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/manager/login")
        async with replay.post(f"{bridge.http}/manager/batch-close",
                               data={"csrf": token, "terminal": SN1, "batch_no": "1"},
                               allow_redirects=False) as r:
            assert r.status == 403
    assert bridge.sims.codepay.batch_closes == []


async def test_repeated_wrong_pins_lock_out_even_the_right_pin(
        bridge: Bridge, manager: Manager) -> None:
    # The daemon's checker waits up to 4 s between wrong PINs and locks out for 5 minutes; the
    # same checker with short delays and a 1.5 s lock-out keeps this test quick.
    lockout_s = 1.5
    bridge.daemon.pins = PinChecker(hashed(PIN), throttle=FailureThrottle(base_s=0.01, cap_s=0.02),
                                    lockout_after=10, lockout_s=lockout_s)
    for attempt in range(9):
        resp = await manager.login(WRONG_PIN)
        assert resp.status == 401, attempt
    resp = await manager.login(WRONG_PIN)  # the tenth: lock-out starts
    assert resp.status == 429
    locked_at = asyncio.get_running_loop().time()
    async with manager.http.post(f"{bridge.http}/manager/login", data={"pin": PIN},
                                 allow_redirects=False) as r:
        assert r.status == 429 and "Set-Cookie" not in r.headers
        assert "locked" in await r.text()
    status, _, _ = await manager.page()
    assert status == 303  # not logged in
    # after the lock-out period the right PIN works again
    await asyncio.sleep(max(0.0, locked_at + lockout_s + 0.1
                            - asyncio.get_running_loop().time()))
    resp = await manager.login(PIN)
    assert (resp.status, resp.headers["Location"]) == (303, "/manager")
    status, _, _ = await manager.page()
    assert status == 200


def test_idle_sessions_expire() -> None:
    now = [0.0]
    sessions = Sessions(clock=lambda: now[0])
    sid, session = sessions.create()
    now[0] += SESSION_IDLE_S - 1
    assert sessions.get(sid) is session  # use renews it
    now[0] += SESSION_IDLE_S - 1
    assert sessions.get(sid) is session
    now[0] += SESSION_IDLE_S + 1
    assert sessions.get(sid) is None and len(sessions) == 0


async def test_a_form_body_that_is_not_utf8_is_a_400_that_changes_nothing(
        bridge: Bridge, manager: Manager) -> None:
    # aiohttp cannot decode such a urlencoded body; that raised out of the handler: a 500.
    assert (await manager.login()).status == 303
    token = await manager.csrf()
    garbled = f"csrf={token}&terminal={SN1}&batch_no=1&x=\xff".encode("latin-1")
    for path in ("/manager/batch-close", "/manager/close", "/manager/query", "/manager/logout",
                 "/manager/login"):
        async with manager.http.post(
                f"{bridge.http}{path}", data=garbled, allow_redirects=False,
                headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert resp.status == 400, path
            assert "nothing was changed" in await resp.text()
    assert bridge.sims.codepay.batch_closes == []
    assert (await manager.page())[0] == 200  # still logged in


async def test_open_holds_show_with_their_age_and_a_tip_is_adjusted(
        bridge: Bridge, manager: Manager) -> None:
    async with await bridge.register() as ecr:
        held = await ecr.call("preauth", sale("MH1", "80.00"))
        done = await ecr.call("preauth", sale("MH2", "50.00"))
        await ecr.call("completion", {"order_no": "MH2C", "orig_order_no": "MH2",
                                      "amount": "45.00"})
        tipped = await ecr.call("sale", sale("MT1", "30.00", tip="1.00"))
    assert held["state"] == done["state"] == tipped["state"] == "approved"
    assert (await manager.login()).status == 303
    status, body, _ = await manager.page()
    assert status == 200
    holds = body[body.index('id="holds"'):body.index('id="transactions"')]
    assert 'data-order="MH1"' in holds and 'data-order="MH2"' not in holds  # completed
    assert re.search(r'data-order="MH1".*?class="age"[^>]*>\d+ min<', holds, re.DOTALL)
    token = await manager.csrf()
    status, _, location = await manager.post("/manager/tip", {"csrf": token,
                                                              "order_no": "MT1", "tip": "4.50"})
    assert (status, location) == (303, "/manager")
    _, body, _ = await manager.page()
    assert "The tip of MT1 is now 4.50" in body
    adjustments = [r for r in (await bridge.daemon.journal.read(
        lambda r: r.children("MT1"))) if r.kind.value == "tip_adjust"]
    assert [(a.state.value, a.tip, a.amount, a.identity) for a in adjustments] == [
        ("approved", 450, 350, "manager")]
    # a wrong tip is a message, not a change
    await manager.post("/manager/tip", {"csrf": token, "order_no": "MT1", "tip": "4.5x"})
    _, body, _ = await manager.page()
    assert "tip:" in body and len([r for r in await bridge.daemon.journal.read(
        lambda r: r.children("MT1")) if r.kind.value == "tip_adjust"]) == 1
