"""mal uses httpx, httpcore and h11 through their public names only, and
patches nothing of theirs: no name of theirs that starts with ``_`` (a
private module, class, function or attribute) appears anywhere under
``mal/``, nor an assignment to an attribute of theirs.

What is checked, with ``ast``: imports (``from httpx._client import ...``,
``import httpcore._sync``, ``from h11 import _x``); attributes reached from a
name bound to one of those modules or to something imported from them
(``httpx._types``, ``httpcore.ConnectionPool._pool``); ``getattr``,
``setattr``, ``hasattr`` and ``delattr`` on such an expression with a string
literal starting with ``_``; and assignments to their attributes. Dunder
names (``__version__``) are public."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = ("httpx", "httpcore", "h11")
MAL = Path(__file__).resolve().parent.parent / "mal"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _theirs(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in PACKAGES


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def violations(source: str, filename: str = "<string>") -> list[str]:
    """``file:line: what`` for each private name of theirs that ``source`` uses."""
    tree = ast.parse(source, filename)
    bound: set[str] = set()  # names bound to their modules or to their objects
    found: list[tuple[int, str]] = []

    def note(node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        found.append((line, f"{filename}:{line}: {what}"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _theirs(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        note(node, f"import {alias.name}")
                    bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _theirs(node.module):
            assert node.module is not None
            if any(_private(part) for part in node.module.split(".")):
                note(node, f"from {node.module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    note(node, f"from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)

    def is_theirs(expr: ast.expr) -> bool:
        root = _root(expr)
        return isinstance(root, ast.Name) and root.id in bound

    for node in ast.walk(tree):
        attribute = (
            isinstance(node, ast.Attribute) and _private(node.attr) and is_theirs(node.value)
        )
        by_name = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and is_theirs(node.args[0])
        )
        if attribute or by_name:
            note(node, ast.unparse(node))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and is_theirs(target.value):
                    note(node, f"patches {ast.unparse(target)}")
    return [what for _, what in sorted(found)]


def test_mal_uses_no_private_name_of_httpx_httpcore_or_h11() -> None:
    files = sorted(MAL.rglob("*.py"))
    assert len(files) > 10
    found = [
        hit
        for path in files
        for hit in violations(path.read_text(encoding="utf-8"), str(path.relative_to(MAL.parent)))
    ]
    assert not found, "private names of httpx, httpcore or h11:\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_use() -> None:
    source = """\
import httpx
import httpcore as hc
import httpcore._sync.http11
from h11 import _util
from httpx._client import BoundSyncStream
from httpcore import ConnectionPool
import json

httpx._types
hc.AnyIOBackend()._stream.read
ConnectionPool._network_backend
getattr(httpx.Client(), "_transport")
hasattr(hc, "_async")
httpx.Client.send = None
httpx.__version__
json._default_decoder
getattr(json, "_x")
self._transport
"""
    found = violations(source, "x.py")
    assert found == [
        "x.py:3: import httpcore._sync.http11",
        "x.py:4: from h11 import _util",
        "x.py:5: from httpx._client import ...",
        "x.py:9: httpx._types",
        "x.py:10: hc.AnyIOBackend()._stream",
        "x.py:11: ConnectionPool._network_backend",
        "x.py:12: getattr(httpx.Client(), '_transport')",
        "x.py:13: hasattr(hc, '_async')",
        "x.py:14: patches httpx.Client.send",
    ]
