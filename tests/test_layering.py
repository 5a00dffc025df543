"""The layering contract (ARCHITECTURE.md): each package imports only the packages below it.

Read from the code with `ast`, as import-linter does: every `import` and `from ... import` of
every module, at any depth (inside functions too), is checked against the table below. A new
import that reaches up or sideways fails here with the module, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What each layer may import, besides itself. The order is the layering, lowest first.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "targets": {"core"},
    "probes": {"core", "targets"},
    "analysis": {"core"},
    "ooni": {"core", "analysis"},
    "results": {"core", "ooni"},
    "presentation": {"core", "analysis"},
    "services": {"core", "targets", "probes", "analysis", "ooni", "results", "presentation"},
    "cli": {"core", "services", "presentation"},
}
#: Our own top-level names: an import of any other name is a third-party or standard one.
KNOWN = set(ALLOWED) | {"tests", "bench"}
#: Modules that must stay free of I/O: judgement takes data and returns data.
PURE = ("core", "analysis")
IO_MODULES = {"asyncio", "socket", "ssl", "sqlite3", "subprocess", "requests", "h11", "dns",
              "sqlite_utils", "gzip", "csv", "urllib.request", "http", "shutil", "matplotlib"}
#: Calls that read or write files or the terminal, whatever module they come from.
IO_CALLS = {"open", "print", "input", "read_text", "read_bytes", "write_text", "write_bytes",
            "savefig", "unlink", "mkdir", "iterdir", "glob"}
#: Judgement (analysis/) is stricter than the floor: core/ may name a Path in an error and read
#: the clock (core.times is the one clock); analysis/ may do neither. Files, JSON, catalogues,
#: time zones and package metadata are read by loaders above it, which hand it the data.
JUDGEMENT = ("analysis",)
JUDGEMENT_MODULES = {"pathlib", "os", "io", "tempfile", "glob", "json", "pickle", "zipfile",
                     "tarfile", "lzma", "bz2", "time", "importlib", "gettext", "zoneinfo",
                     "logging"}
JUDGEMENT_CALLS = {"now", "utcnow", "today", "utc_now", "monotonic", "Clock"}

def _modules() -> list[tuple[str, Path]]:
    found = [("cli", ROOT / "cli.py")]
    for layer in ALLOWED:
        if layer != "cli":
            found += [(layer, p) for p in sorted((ROOT / layer).rglob("*.py"))]
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def layering_violations() -> list[str]:
    problems = []
    for layer, path in _modules():
        for line, name in _imports(path):
            top = name.split(".")[0]
            if top in KNOWN and top != layer and top not in ALLOWED[layer]:
                where = path.relative_to(ROOT)
                problems.append(f"{where}:{line}: {layer} imports {name} "
                                f"({layer} may import {sorted(ALLOWED[layer]) or 'nothing'})")
    return problems


def test_every_import_goes_downward() -> None:
    assert layering_violations() == []


def _called(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every call: `open(...)` is "open", `path.read_text()` is "read_text"."""
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else "")
            calls.append((node.lineno, name))
    return calls


def io_violations() -> list[str]:
    problems = []
    for layer, path in _modules():
        if layer not in PURE:
            continue
        modules, calls = set(IO_MODULES), set(IO_CALLS)
        if layer in JUDGEMENT:
            modules |= JUDGEMENT_MODULES
            calls |= JUDGEMENT_CALLS
        where = path.relative_to(ROOT)
        for line, name in _imports(path):
            if name in modules or name.split(".")[0] in modules:
                problems.append(f"{where}:{line}: imports {name}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # `from core.times import utc_now` brings the clock in
            if isinstance(node, ast.ImportFrom):
                problems += [f"{where}:{node.lineno}: imports {a.name} from {node.module}"
                             for a in node.names if a.name in calls]
        problems += [f"{where}:{line}: calls {name}()" for line, name in _called(tree)
                     if name in calls]
    return problems


def test_judgement_does_no_io() -> None:
    assert io_violations() == []


def test_the_io_checker_catches_files_json_and_the_clock(tmp_path, monkeypatch) -> None:
    """Plant each kind of I/O in a fake analysis/ and core/ and see every one named."""
    for layer in ALLOWED:
        if layer != "cli":
            (tmp_path / layer).mkdir()
    (tmp_path / "cli.py").write_text("")
    (tmp_path / "analysis" / "bad.py").write_text(
        "import json\nfrom pathlib import Path\nfrom core.times import utc_now\n"
        "def f(p):\n    return open(p), Path(p).read_text(), datetime.now()\n")
    (tmp_path / "core" / "ok.py").write_text(
        "from pathlib import Path\nimport time\ndef f():\n    return time.monotonic()\n")
    (tmp_path / "core" / "bad.py").write_text("import gzip\nprint('x')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(io_violations()) == [
        "analysis/bad.py:1: imports json",
        "analysis/bad.py:2: imports pathlib",
        "analysis/bad.py:3: imports utc_now from core.times",
        "analysis/bad.py:5: calls now()",
        "analysis/bad.py:5: calls open()",
        "analysis/bad.py:5: calls read_text()",
        "core/bad.py:1: imports gzip",
        "core/bad.py:2: calls print()",
    ]


def test_the_checker_catches_an_upward_import(tmp_path, monkeypatch) -> None:
    """The test above could pass by reading nothing: plant a violation and see it named."""
    fake = tmp_path / "analysis"
    fake.mkdir()
    (fake / "bad.py").write_text("from results.store import Store\nimport services\n")
    for layer in ALLOWED:
        if layer not in ("analysis", "cli"):
            (tmp_path / layer).mkdir()
    (tmp_path / "cli.py").write_text("import bench\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(layering_violations())[:2] == [
        "analysis/bad.py:1: analysis imports results.store (analysis may import ['core'])",
        "analysis/bad.py:2: analysis imports services (analysis may import ['core'])",
    ]
    assert any(v.startswith("cli.py:1: cli imports bench ") for v in layering_violations())


def test_every_package_is_in_the_table() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench"} == set(ALLOWED) - {"cli"}
