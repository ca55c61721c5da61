"""The sync driver is generated from the async one (scripts/unasync.py): the
checked-in sync code must be exactly what the script writes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_sync_code_is_what_the_script_generates() -> None:
    diff = load_script().check()
    assert diff == "", (
        "the sync code differs from what scripts/unasync.py generates; "
        "run `python scripts/unasync.py`:\n" + diff
    )


def copy_pairs(unasync: ModuleType, root: Path) -> None:
    for pair in unasync.FILES:
        for name in pair:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, root / name)


def test_the_check_shows_a_hand_edit_as_a_diff(tmp_path: Path) -> None:
    unasync = load_script()
    copy_pairs(unasync, tmp_path)
    _, target = unasync.FILES[0]
    edited = tmp_path / target
    edited.write_text(edited.read_text().replace("def close(", "def shut("))
    diff = unasync.check(tmp_path)
    assert f"--- {target} (checked in)" in diff
    assert "-    def shut(self) -> None:" in diff and "+    def close(self) -> None:" in diff
    unasync.write(tmp_path)
    assert unasync.check(tmp_path) == ""
    assert edited.read_text() == (ROOT / target).read_text()


def test_the_command_line_check_exits_non_zero_with_the_diff() -> None:
    ok = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == ""


def test_the_substitutions() -> None:
    line = load_script().unasync_line
    assert line("    async def aclose(self) -> None:") == "    def close(self) -> None:"
    assert line("        await self._http.aclose()") == "        self._http.close()"
    assert line("async for piece in body:") == "for piece in body:"
    assert line("async with AsyncStream(http) as s:") == "with Stream(http) as s:"
    assert line("except StopAsyncIteration:") == "except StopIteration:"
    assert line("from ._helpers_async import Waiter") == "from ._helpers_sync import Waiter"
    assert line("x: httpx.AsyncClient") == "x: httpx.Client"
    # Whole words only: a name that merely contains one is left alone.
    assert line("awaited = anext_value") == "awaited = anext_value"
    assert line("# the asyncio loop") == "# the asyncio loop"


def test_imports_are_sorted_again_after_renaming() -> None:
    unasync = load_script()
    text = (
        "from collections.abc import AsyncIterator, Callable\n"
        "from .x import (\n    AsyncClosing,\n    ClientBase,\n)\n"
    )
    out = unasync.unasync("a.py", text)
    assert "from collections.abc import Callable, Iterator\n" in out
    assert "from .x import (\n    ClientBase,\n    Closing,\n)\n" in out
