"""The package's shape: no import cycle among mailbot's modules, and a pure core (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "mailbot"
# What a module of mailbot.core may not import: the shell, the stages, the records, the programs.
OUTSIDE_CORE = ("mailbot.shell", "mailbot.pipeline", "mailbot.records", "mailbot.cli", "mailbot.app")
SESSION_NAMES = frozenset({"Session", "sessionmaker", "scoped_session", "AsyncSession"})
# (core module, what it imports) -> why it may, for now. Empty: the core keeps the rule.
CORE_EXCEPTIONS: dict[tuple[str, str], str] = {}
# Cycles that stand today (none): listed so that no new one comes in unseen.
KNOWN_CYCLES: dict[tuple[str, ...], str] = {}
# No module over about 500 lines (issue #17): one module, one job a reader can hold.
MAX_MODULE_LINES = 500
# Modules over it for now -> why; each leaves the list when it is split (none today).
LONG_MODULES: dict[str, str] = {}


def module_names(root: Path = ROOT) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, tuple[str, ...]]]:
    """Every import in the file, wherever it stands (a TYPE_CHECKING block, a function's body):
    the module imported and the names taken from it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = tuple(alias.name for alias in node.names)
            # `from mailbot.core import tokens` imports the module mailbot.core.tokens.
            submodules = [f"{source}.{n}" for n in names if f"{source}.{n}" in known]
            found += [(m, ()) for m in submodules]
            if len(submodules) < len(names):
                found.append((source, names))
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Which of mailbot's modules each module imports (the nearest module a dotted name names)."""
    known = module_names(root)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for source, _ in imports_of(name, path, known):
            target = source
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def core_violations(root: Path = ROOT) -> set[tuple[str, str]]:
    known = module_names(root)
    bad: set[tuple[str, str]] = set()
    for name, path in known.items():
        if not name.startswith("mailbot.core"):
            continue
        for source, names in imports_of(name, path, known):
            if any(source == p or source.startswith(p + ".") for p in OUTSIDE_CORE):
                bad.add((name, source))
            elif source.split(".")[0] == "sqlalchemy" and SESSION_NAMES & set(names):
                bad.add((name, f"{source}.Session"))
    return bad


def test_no_import_cycle_among_mailbot_modules() -> None:
    """Not even through an import under TYPE_CHECKING: each stage is given its collaborators."""
    assert {tuple(c) for c in cycles(graph())} == set(KNOWN_CYCLES)
    assert not [c for c in cycles(graph()) if any(m.startswith("mailbot.pipeline") for m in c)]


def test_the_core_imports_no_shell_stage_or_session() -> None:
    assert core_violations() == set(CORE_EXCEPTIONS)


def module_lines(root: Path = ROOT) -> dict[str, int]:
    return {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in module_names(root).items()
    }


def test_no_module_is_over_about_500_lines() -> None:
    """Past it, split along a line that explains itself; the allow-list only shrinks."""
    lines = module_lines()
    too_long = {name for name, count in lines.items() if count > MAX_MODULE_LINES}
    assert too_long - set(LONG_MODULES) == set(), {n: lines[n] for n in too_long - set(LONG_MODULES)}
    # A module of the list that is now short enough (or gone) leaves it.
    assert set(LONG_MODULES) - too_long == set()


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "mailbot"
    (package / "pipeline").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "pipeline" / "__init__.py").write_text("")
    (package / "pipeline" / "a.py").write_text("from mailbot.pipeline import b\n")
    (package / "pipeline" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
    )
    assert cycles(graph(package)) == [["mailbot.pipeline.a", "mailbot.pipeline.b"]]


def test_the_benchmarks_and_scripts_import_what_exists() -> None:
    """bench/ and scripts/ are not type-checked: a module moved in mailbot/ or tests/ must not
    leave them importing from where it was."""
    import importlib

    missing = []
    for path in sorted([*(ROOT.parent / "bench").glob("*.py"), *(ROOT.parent / "scripts").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(("mailbot", "tests"))
            ):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{path.name}: {node.module}.{alias.name}")
    assert not missing, missing
