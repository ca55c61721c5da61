"""The sans-I/O core imports no networking or async library, not even indirectly.

Each check runs in a fresh interpreter (``sys.executable``), imports one core
module and then looks at ``sys.modules``: an import made by any module on the
way, the package's ``__init__`` included, is caught. A spy on ``sys.meta_path``
records which files were importing when a forbidden module was first asked
for, so that a failure says where the import comes from.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mal

CORE_MODULES = [
    "mal.framing",
    "mal.protocols",
    "mal.protocols._base",
    "mal.protocols.ollama",
    "mal.protocols.openai",
    "mal.protocols.anthropic",
    "mal.protocols.responses",
    "mal.protocols.services",
    "mal.protocols.gemini",
    "mal.config",
    "mal.errors",
    "mal.types",
    "mal.hooks",
    "mal.schema",
    "mal.images",
    "mal.tools",
    "mal.protocols._tools",
    "mal.embeddings",
    "mal._ops",
    "mal.limits",
    "mal._limits",
    "mal._prepare",
    "mal._log",
    "mal._lifecycle",
]

#: Networking and async libraries: none may be loaded by the core.
FORBIDDEN = [
    "httpx",
    "httpcore",
    "h11",
    "h2",
    "anyio",
    "sniffio",
    "trio",
    "asyncio",
    "socket",
    "ssl",
]

SCRIPT = r"""
import json, sys, traceback

FORBIDDEN = set(json.loads(sys.argv[1]))
MODULE = sys.argv[2]
ALONE = sys.argv[3] == "alone"
preloaded = sorted(m for m in FORBIDDEN if m in sys.modules)
chains = {}


class Spy:
    # Records who imports a forbidden module; finds nothing itself.
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in FORBIDDEN and top not in chains:
            frames = [f.filename for f in traceback.extract_stack()[:-1]]
            chains[top] = [
                "/".join(f.replace("\\", "/").split("/")[-2:])
                for f in frames
                if not f.startswith("<")
            ]
        return None


sys.meta_path.insert(0, Spy())
if ALONE:
    # Import the core modules without running mal/__init__.py, whose
    # client imports are not part of the core.
    import importlib.util, types

    spec = importlib.util.find_spec("mal")
    package = types.ModuleType("mal")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["mal"] = package
__import__(MODULE)
assert MODULE in sys.modules
loaded = sorted(m for m in FORBIDDEN if m in sys.modules)
print(json.dumps({"preloaded": preloaded, "loaded": loaded, "chains": chains}))
"""


def imports_of(module: str, alone: bool) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            json.dumps(FORBIDDEN),
            module,
            "alone" if alone else "package",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    # A fresh interpreter starts with none of them, or the check proves nothing.
    assert report["preloaded"] == []
    return report


def describe(report: dict[str, object]) -> str:
    chains = report["chains"]
    assert isinstance(chains, dict)
    return "; ".join(f"{name} <- {' <- '.join(reversed(chain))}" for name, chain in chains.items())


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_alone_import_no_io(module: str) -> None:
    report = imports_of(module, alone=True)
    assert report["loaded"] == [], describe(report)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_a_core_module_imports_no_io(module: str) -> None:
    # ``import mal.framing`` runs mal/__init__.py first: a user driving the
    # core with their own I/O must not get httpx and anyio loaded with it.
    report = imports_of(module, alone=False)
    assert report["loaded"] == [], describe(report)


def test_the_spy_catches_an_indirect_import() -> None:
    # The check can fail: a stdlib module that imports socket is caught.
    report = imports_of("http.client", alone=False)
    assert "socket" in report["loaded"]
    assert "ssl" in report["loaded"]


# The source itself ------------------------------------------------------------------

PACKAGE = Path(mal.__file__).resolve().parent
CORE_FILES = [
    "framing.py",
    "config.py",
    "errors.py",
    "types.py",
    "hooks.py",
    "schema.py",
    "images.py",
    "tools.py",
    "_jsonschema.py",
    "protocols/__init__.py",
    "protocols/_base.py",
    "protocols/_tools.py",
    "protocols/ollama.py",
    "protocols/openai.py",
    "protocols/anthropic.py",
    "protocols/services.py",
    "protocols/gemini.py",
    "_ops.py",
    "limits.py",
    "_limits.py",
]
CORE_NAMES = {
    "mal.framing",
    "mal.images",
    "mal.schema",
    "mal._jsonschema",
    "mal.tools",
    "mal.protocols._tools",
    "mal.hooks",
    "mal.config",
    "mal.errors",
    "mal.types",
    "mal.protocols",
    "mal.protocols._base",
    "mal.protocols.ollama",
    "mal.protocols.openai",
    "mal.protocols.anthropic",
    "mal.protocols.responses",
    "mal.protocols.services",
    "mal.protocols.gemini",
    "mal._ops",
    "mal.limits",
    "mal._limits",
}


def imported_names(relpath: str) -> tuple[set[str], set[str]]:
    """(absolute top-level names, resolved ``mal.*`` names) imported by a file."""
    path = PACKAGE / relpath
    # The package a relative import starts from: the file's directory.
    package = "mal." + relpath.rsplit("/", 1)[0] if "/" in relpath else "mal"
    tree = ast.parse(path.read_text("utf-8"))
    absolute: set[str] = set()
    internal: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                absolute.add(alias.name.partition(".")[0])
                if alias.name.startswith("mal."):
                    internal.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                absolute.add(node.module.partition(".")[0])
                if node.module == "mal" or node.module.startswith("mal."):
                    internal.add(node.module)
            else:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module:
                    internal.add(target)
                else:
                    internal.update(f"{target}.{alias.name}" for alias in node.names)
    return absolute, internal


@pytest.mark.parametrize("relpath", CORE_FILES)
def test_core_source_imports(relpath: str) -> None:
    absolute, internal = imported_names(relpath)
    assert absolute.isdisjoint(FORBIDDEN)
    assert "mal" not in absolute or internal <= CORE_NAMES
    # Within mal, the core imports only the core (not the drivers or client).
    assert internal <= CORE_NAMES, internal - CORE_NAMES


def test_import_parser_sees_relative_imports() -> None:
    _, internal = imported_names("protocols/ollama.py")
    assert {"mal.framing", "mal.types", "mal.protocols._base"} <= internal
    _, internal = imported_names("config.py")
    assert {"mal.errors", "mal.framing", "mal.protocols", "mal.protocols.ollama"} <= internal
