"""The simulated crypto platform is at least as strict as the documents make the platform."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from posbridge.config_table import Table
from posbridge.keyfiles import generate_rsa_pem, public_pem
from posbridge.providers.opay import messages as m
from posbridge.providers.opay.config import parse_section
from posbridge.providers.opay.envelope import seal
from posbridge.sandbox.base import BridgePacing, SandboxKeys, SimPacing
from posbridge.sandbox.opay_sim import SANDBOX, Code, OPaySimulator, SimulatorError

from .conftest import APP_ID, private_key, public_key

pytestmark = pytest.mark.timeout(30)

CREATE = {"appOrderId": "S1", "openId": "U1", "orderAmount": "1.5", "payCoinSymbol": "USDT",
          "returnPage": "https://store.example/", "notifyPage": "https://store.example/n"}


async def post(sim: OPaySimulator, method: m.Method, body: object) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(sim.url + method.path,
                                                          json=body) as resp:
        answer = await resp.json()
        assert isinstance(answer, dict)
        return answer


def sealed(params: dict[str, object], *, app_id: str = APP_ID,
           signer: str = "merchant") -> dict[str, str]:
    return seal(params, app_id=app_id, now_ms=1_700_000_000_000,
                receiver_key=public_key("platform"), sender_key=private_key(signer))


def opened(answer: dict[str, Any]) -> dict[str, Any] | None:
    return m.open_answer(json.dumps(answer).encode(), merchant_key=private_key("merchant"),
                         platform_key=public_key("platform"), data_required=False)


async def test_a_well_formed_create_is_answered_with_a_signed_order_number(
        sim: OPaySimulator) -> None:
    answer = await post(sim, m.Method.CREATE, sealed(CREATE))
    assert answer["code"] == "0" and set(answer) == {"code", "msg", "data", "sign"}
    data = opened(answer)
    assert data is not None and data["orderNum"] == sim.order("S1").order_num


@pytest.mark.parametrize(("body", "code"), [
    ({"app_id": APP_ID}, Code.BAD_REQUEST),
    ({**sealed(CREATE), "time": "17000000"}, Code.BAD_REQUEST),
    (sealed(CREATE, app_id="someone"), Code.BAD_REQUEST),
    (sealed(CREATE, signer="platform"), Code.SIGNATURE),
    ({**sealed(CREATE), "data": sealed({"x": "y"})["data"]}, Code.SIGNATURE),
    (sealed({**CREATE, "orderAmount": 1.5}), Code.PARAMETER),
    (sealed({**CREATE, "orderAmount": "1.5000001"}), Code.PARAMETER),
    (sealed({**CREATE, "orderAmount": "0"}), Code.PARAMETER),
    (sealed({**CREATE, "payCoinSymbol": "usdt"}), Code.PARAMETER),
    (sealed({k: v for k, v in CREATE.items() if k != "openId"}), Code.PARAMETER),
    (sealed({**CREATE, "notifyPage": "/notify/opay"}), Code.PARAMETER),
    (sealed({**CREATE, "goods": "[{name: 1}]"}), Code.PARAMETER),
    (sealed({**CREATE, "orderSceneType": "shop"}), Code.PARAMETER),
])
async def test_what_the_platform_would_refuse(sim: OPaySimulator, body: object,
                                              code: Code) -> None:
    answer = await post(sim, m.Method.CREATE, body)
    assert answer["code"] == code and "data" not in answer
    assert not sim.orders


async def test_an_app_order_id_is_taken_once(sim: OPaySimulator) -> None:
    await post(sim, m.Method.CREATE, sealed(CREATE))
    again = await post(sim, m.Method.CREATE, sealed(CREATE))
    assert again["code"] == Code.ORDER_EXISTS and len(sim.orders) == 1


async def test_detail_and_cancel_address_orders_by_order_num_only(sim: OPaySimulator) -> None:
    created = opened(await post(sim, m.Method.CREATE, sealed(CREATE)))
    assert created is not None
    by_app_order = await post(sim, m.Method.DETAIL, sealed({"orderNum": "S1"}))
    assert by_app_order["code"] == Code.NO_ORDER
    detail = opened(await post(sim, m.Method.DETAIL, sealed(
        {"orderNum": created["orderNum"], "appKey": APP_ID})))
    assert detail is not None and (detail["orderStatus"], detail["orderAmount"]) == ("1", "1.5")
    cancel = await post(sim, m.Method.CANCEL, sealed({"orderNum": created["orderNum"]}))
    assert cancel == {"code": "0", "msg": "success"}
    assert sim.order("S1").status == "0"
    with pytest.raises(SimulatorError):
        sim.pay("S1")


async def test_statement_lists_the_days_orders_in_the_platform_zone(
        sim: OPaySimulator) -> None:
    await post(sim, m.Method.CREATE, sealed(CREATE))  # 2023-11-14 22:13 UTC: the 15th at +8
    sim.pay("S1")
    answers = {}
    for day in ("2023-11-14", "2023-11-15"):
        answers[day] = opened(await post(sim, m.Method.STATEMENT, sealed(
            m.statement_params(day=day, page=1, page_size=2000))))
    assert answers["2023-11-14"] == {"count": 0, "list": []}
    listed = answers["2023-11-15"]
    assert listed is not None
    line = listed["list"][0]
    assert line["appOrderId"] == "S1" and line["payTime"] and "orderNum" not in line
    bad = await post(sim, m.Method.STATEMENT, sealed({"day": "15/11/2023"}))
    assert bad["code"] == Code.PARAMETER


async def test_sandbox_spec_starts_a_simulator_whose_section_parses(tmp_path: Path) -> None:
    keys = SandboxKeys(tmp_path)
    for name in SANDBOX.key_names:
        pem = generate_rsa_pem(1024)
        keys.private(name).write_bytes(pem)
        keys.public(name).write_bytes(public_pem(keys.private_key(name)))
    sim = await SANDBOX.start(keys, SimPacing(approve_delay_s=0.01, notify_interval_s=0.01))
    try:
        section = SANDBOX.section(sim, keys, BridgePacing(qr_timeout_s=120))
        cfg = parse_section(Table(dict(section), "opay", {}))
        assert cfg.base_url == sim.url and cfg.expires_s == 120
        assert SANDBOX.provider == "opay"
    finally:
        await sim.stop()
