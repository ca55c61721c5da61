"""Every Python example in the README runs as written, against the built-in server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mal.testing import MockServer, Reply

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer() as srv:
        srv.default = Reply(text="The sky is blue because of Rayleigh scattering.")
        yield srv


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(server: MockServer, index: int) -> None:
    env = dict(os.environ)
    env.update(
        OLLAMA_HOST=server.url("ollama"),
        OPENAI_BASE_URL=server.url("openai"),
        ANTHROPIC_BASE_URL=server.url("anthropic"),
        OPENAI_API_KEY="sk-test",
        ANTHROPIC_API_KEY="sk-ant-test",
    )
    before = len(server.requests)
    done = subprocess.run(
        [sys.executable, "-c", EXAMPLES[index]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"example {index} failed:\n{EXAMPLES[index]}\n{done.stderr}"
    sends = any(call in EXAMPLES[index] for call in ("generate(", "stream(", ".request("))
    if sends and "MockServer(" not in EXAMPLES[index]:
        assert len(server.requests) > before, "the example sent no request"
