"""The distribution is `mal-llm` (PyPI's `mal` is another project); the import name is `mal`,
and every message that says how to install an extra names `mal-llm`."""

from __future__ import annotations

import importlib.metadata
import re
import sys

import pytest

import mal
from mal.schema import partial_json


def test_the_distribution_is_mal_llm_at_the_package_version() -> None:
    assert importlib.metadata.version("mal-llm") == mal.__version__
    dist = importlib.metadata.distribution("mal-llm")
    assert dist.metadata["Name"] == "mal-llm"
    extras = dist.metadata.get_all("Provides-Extra") or []
    assert {"test", "dev", "partial", "aiohttp", "otel", "redis"} <= set(extras)
    # The dev extra takes the test extra by the new name (resolved in place); under the old
    # name it would pull in PyPI's unrelated `mal`.
    requires = dist.requires or []
    names = {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0] for r in requires}
    assert "mal" not in names
    test = {r.split(";")[0] for r in requires if "extra == 'test'" in r}
    dev = {r.split(";")[0] for r in requires if "extra == 'dev'" in r}
    assert test and test <= dev


def test_partial_without_jiter_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jiter", None)
    with pytest.raises(mal.ConfigError, match=r"pip install 'mal-llm\[partial\]'"):
        partial_json('{"a": 1')


def test_aiohttp_transport_without_the_package_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)
    with pytest.raises(mal.ConfigError, match=r"pip install 'mal-llm\[aiohttp\]'"):
        mal.AsyncClient(transport="aiohttp")
