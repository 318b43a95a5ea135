"""Property-based and mutation fuzzing of the pure input surfaces: ECR frames and params,
provider answers and notifications (JSON and form-encoded, signed and not), the configuration
(mapping, environment and file), ESC/POS slips, display frames and printer status bytes.

The rule everywhere: the documented refusal or a result that keeps its invariants, never
another exception (see :mod:`tests.fuzz.surfaces`). Hypothesis runs derandomized (the same
examples every run), without a deadline and without an example database.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posbridge.ecr import protocol as proto

from .mutate import INTERESTING_TEXT, INTERESTING_VALUES, KEYS
from .surfaces import (
    ECR_FRAMES,
    HARDWARE,
    GatewayKeys,
    Surface,
    Unexpected,
    config_surfaces,
    ecr_frame_check,
    ecr_params_sample,
    provider_surfaces,
)

pytestmark = pytest.mark.timeout(300)


def fuzz_settings(examples: int) -> settings:
    return settings(derandomize=True, max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- ECR frames from a grammar ---------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats()
                | st.text(max_size=40) | st.sampled_from(INTERESTING_TEXT))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)
param_names = st.sampled_from(KEYS)  # every parameter name of the protocol, and others


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    """Request-shaped objects: known and unknown members, methods and parameters."""
    frame: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        frame["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "1.0", 2.0]) | json_scalars)
    if draw(st.booleans()):
        frame["id"] = draw(st.integers(-(2**60), 2**60) | st.text(max_size=140) | json_values)
    frame["method"] = draw(st.sampled_from(sorted(proto.METHODS)) | json_scalars)
    if draw(st.integers(0, 3)):
        frame["params"] = draw(st.dictionaries(param_names | st.text(max_size=8), json_values,
                                               max_size=8) | json_values)
    if not draw(st.integers(0, 5)):
        frame[draw(st.text(max_size=8))] = draw(json_values)
    return frame


@fuzz_settings(150)
@given(frames(), st.booleans())
def test_request_shaped_frames_are_refused_with_a_documented_error(
        frame: dict[str, Any], ascii_only: bool) -> None:
    text = json.dumps(frame, ensure_ascii=ascii_only)
    ecr_frame_check(text.encode("utf-8", "surrogatepass"))


@fuzz_settings(150)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_with_a_documented_error(data: bytes) -> None:
    ecr_frame_check(data)


@fuzz_settings(120)
@given(st.sampled_from(sorted(proto.METHODS)),
       st.dictionaries(param_names, json_values, max_size=10))
def test_params_of_every_method_are_refused_naming_the_field(
        method: str, params: dict[str, Any]) -> None:
    frame = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    ecr_frame_check(json.dumps(frame).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("method", sorted(proto.METHODS))
def test_every_edge_value_in_every_parameter(method: str) -> None:
    """Each parameter of a valid request in turn holds each edge value (all combinations:
    a random draw rarely puts one value into one parameter of one method)."""
    params = ecr_params_sample(method, random.Random(method), every=True)
    for name in params:
        for value in INTERESTING_VALUES:
            frame = {"jsonrpc": "2.0", "id": 1, "method": method,
                     "params": {**params, name: value}}
            try:
                ecr_frame_check(json.dumps(frame).encode("utf-8", "surrogatepass"))
            except Unexpected as exc:
                raise AssertionError(f"{method} {name}={value!r:.60}: {exc}") from exc


# -- mutation of valid samples, every surface --------------------------------------------------


@pytest.fixture(scope="module")
def gateway_keys() -> GatewayKeys:
    return GatewayKeys.generate()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def run(surface: Surface, rng: random.Random) -> None:
    try:
        surface.fuzz_one(rng)
    except Unexpected as exc:
        raise AssertionError(f"{surface.name}: {exc}") from exc


def fuzz_surface(surface: Surface, examples: int) -> None:
    """``examples`` mutated samples of ``surface``, driven (and shrunk) by hypothesis."""

    @fuzz_settings(examples)
    @given(st.randoms(use_true_random=False))
    def fuzz(rng: random.Random) -> None:
        run(surface, rng)

    fuzz()


def test_mutated_ecr_frames() -> None:
    fuzz_surface(ECR_FRAMES, 200)


@pytest.mark.parametrize("index", range(4), ids=["codepay-notifications", "codepay-answers",
                                                  "ucanpay-notifications", "ucanpay-replies"])
def test_mutated_provider_messages(gateway_keys: GatewayKeys, index: int) -> None:
    fuzz_surface(provider_surfaces(gateway_keys)[index], 100)


@pytest.mark.parametrize("index", range(2), ids=["parse_config", "load_config"])
def test_mutated_configuration(folder: Path, index: int) -> None:
    fuzz_surface(config_surfaces(folder)[index], 150)


@pytest.mark.parametrize("surface", HARDWARE, ids=[s.name for s in HARDWARE])
def test_mutated_slips_frames_and_status_bytes(surface: Surface) -> None:
    fuzz_surface(surface, 100)
