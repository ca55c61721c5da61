"""The benchmark scripts run from a checkout and print their tables.

Each script runs once, tiny, in a subprocess, as a user would start it. These
tests check that the scripts work (every contender's text is checked by the
script itself, which exits non-zero on a wrong one) and report what they
promise; they assert no timing: these machines are shared and noisy, and the
figures belong in the scripts' own output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str, tmp_path: Path) -> tuple[str, Any]:
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout, json.loads(out.read_text("utf-8"))


def test_decode(tmp_path: Path) -> None:
    stdout, result = run("decode.py", "--chunks", "300", "--repeat", "1", tmp_path=tmp_path)
    assert "## mal / bare framing" in stdout
    kinds = [r["kind"] for r in result["results"]]
    assert kinds == ["ollama", "ollama-chat", "openai", "anthropic"]
    for r in result["results"]:
        assert {"msgspec floor", "mal", "bare framing + msgspec floor"} <= set(r["contenders"])
    # The tool-call bodies, each against the text body of the same number of chunks.
    assert "## Tool calls" in stdout
    tools = {r["kind"]: r for r in result["tool_results"]}
    assert set(tools) == {"ollama-chat-tools", "openai-tools", "anthropic-tools"}
    for r in tools.values():
        assert {"mal, text body", "mal, tool-call body"} <= set(r["contenders"])
        ratio = r["contenders"]["mal, tool-call body"]["event"]["ratio_to_mal_text"]
        assert ratio["n"] == 1


def test_stream(tmp_path: Path) -> None:
    stdout, result = run(
        "stream.py",
        "--chunks",
        "200",
        "--repeat",
        "1",
        "--ttft-samples",
        "2",
        "--providers",
        "openai,anthropic",
        tmp_path=tmp_path,
    )
    assert "## mal against the targets" in stdout
    assert "`import mal`" in stdout
    assert "| openai | sync |" in stdout and "| anthropic | async |" in stdout
    summary = result["summary"]
    assert set(summary) == {"openai", "anthropic"}
    for provider in ("openai", "anthropic"):
        for mode in ("sync", "async"):
            assert {"httpx floor", "mal"} <= set(summary[provider][mode])
    # Then other shapes of the same stream (other servers', reasoning), each a
    # row, each child checked.
    assert "## Other shapes of the same stream" in stdout
    shapes = result["shape_summary"]
    assert set(shapes) == {
        "openai",
        "openai-crlf",
        "openai-nospace",
        "anthropic",
        "anthropic-noevent",
        "openai-reasoning",
        "anthropic-thinking",
    }
    for by_mode in shapes.values():
        for row in by_mode.values():
            assert row["errors"] == 0 and row["time_ratio"]["n"] == 1
    # Then tool-call streams against text streams, through mal, each child checked.
    assert "## Tool calls end to end" in stdout
    tools = result["tool_summary"]
    for provider in ("openai", "anthropic"):
        for mode in ("sync", "async"):
            row = tools[provider][mode]
            assert row["mal, text body"]["errors"] == row["mal, tool-call body"]["errors"] == 0
            assert row["time_ratio"]["n"] == 1 and row["cpu_ratio"]["n"] == 1


def test_stream_gemini(tmp_path: Path) -> None:
    # Gemini's stream (the model in the path, no end marker) end to end, its
    # texts checked by each child; it has no tool-call body here yet.
    stdout, result = run(
        "stream.py",
        "--chunks",
        "200",
        "--repeat",
        "1",
        "--ttft-samples",
        "2",
        "--providers",
        "gemini",
        "--clients",
        "mal",
        tmp_path=tmp_path,
    )
    assert "| gemini | sync |" in stdout and "| gemini | async |" in stdout
    assert "round 1: gemini" not in stdout  # a child's error is printed so
    summary = result["summary"]
    assert set(summary) == {"gemini"}
    for mode in ("sync", "async"):
        rows = summary["gemini"][mode]
        assert set(rows) == {"httpx floor", "mal"}
        assert all(row["errors"] == 0 for row in rows.values())
    assert result["tool_summary"] == {}


def test_concurrency(tmp_path: Path) -> None:
    stdout, _ = run(
        "concurrency.py",
        "--streams",
        "20",
        "--chunks",
        "20",
        "--repeat",
        "1",
        "--providers",
        "openai",
        tmp_path=tmp_path,
    )
    assert "## mal against the targets" in stdout
    assert "| openai | asyncio |" in stdout and "| openai | trio |" in stdout


def test_framing_linear(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "framing_linear.py"), "--mib", "1", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "SSEParser" in proc.stdout and "NDJSONSplitter" in proc.stdout


def test_structured(tmp_path: Path) -> None:
    stdout, result = run("structured.py", "--answers", "50", "--repeat", "1", tmp_path=tmp_path)
    assert "mal OutputSchema.decode" in stdout and "Building the schema" in stdout
    assert {"mal OutputSchema.decode", "json.loads + msgspec.convert"} <= set(result["results"])
    assert result["results"]["mal OutputSchema.decode"]["ratio_to_mal"]["n"] == 1


def test_agents(tmp_path: Path) -> None:
    # A two-step tool loop streamed with tool_rounds=1 against its steps
    # streamed one by one, every provider, sync and async; each child checks
    # both steps' texts and the tool's result.
    stdout, result = run(
        "agents.py", "--chunks", "50", "--loops", "1", "--repeat", "1", tmp_path=tmp_path
    )
    assert "round 1: " not in stdout  # a child's error is printed so
    summary = result["summary"]
    assert set(summary) == {"ollama", "openai", "anthropic", "gemini"}
    for provider, by_mode in summary.items():
        for mode in ("sync", "async"):
            assert f"| {provider} | {mode} |" in stdout
            row = by_mode[mode]
            for name in ("loop (tool_rounds=1)", "by hand (two streams)"):
                assert row[name]["errors"] == 0 and row[name]["us_per_chunk"]["n"] == 1
            assert row["time_ratio"]["n"] == 1 and row["cpu_ratio"]["n"] == 1


def test_fleet(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    quick = ["--seconds", "2", "--window", "1", "--calls", "5", "--warmup", "1", "--repeat", "1"]
    fleet = ["--processes", "2", "--concurrency", "2", "--limit", "10"]
    stdout, data = run("fleet.py", *quick, *fleet, tmp_path=tmp_path)
    assert "## Latency per call, a shared limit not reached" in stdout
    assert "## A fleet of 2 processes, one limit" in stdout
    assert "## Against the targets" in stdout
    assert data
