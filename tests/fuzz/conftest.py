"""The fuzz tests use the end-to-end fixtures: a real daemon on 127.0.0.1 with the
in-package simulators."""

from tests.e2e.conftest import bridge, keys, make_bridge, sims  # noqa: F401 (fixtures)
