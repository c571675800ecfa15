"""The import boundaries between the rooms of the code, checked on its source.

- ``flows/`` is pure: no Telegram, no database, nothing of ``bot/`` or ``storage/``.
- ``storage/`` knows nothing of ``bot/`` or Telegram; it alone builds SQL.
- In ``bot/``, only ``bot/tg/`` imports ``telegram``, and the rooms stack up:
  ``dialog`` < ``jobs`` < ``tg`` < ``cli``; a room imports only rooms below it.
- A library's private modules (and SQLAlchemy's internals) are imported only by that
  library's fence module (``FENCES``), whose assumptions tests/test_upgrade_contracts.py checks.

No package's modules import each other round a cycle, not even from inside a function.

Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT_ROOMS = ["dialog", "jobs", "tg", "cli"]  # lowest first
DATABASE_LIBRARIES = ("sqlalchemy", "sqlmodel", "alembic", "psycopg", "asyncpg")
# What bot/ may take from the database libraries: types, errors and URLs, never SQL builders.
BOT_DATABASE_NAMES = {
    "sqlalchemy": {"Engine", "Row"},
    "sqlmodel": {"Session"},
    "sqlalchemy.engine": {"make_url"},
    "sqlalchemy.exc": {"SQLAlchemyError"},
}
# The one module per library allowed to touch that library's private parts.
FENCES = {
    "telegram": "bot/tg/fences.py",
    "sqlalchemy": "storage/fences.py",
}
UNDOCUMENTED = {"sqlalchemy.util"}  # public names, but SQLAlchemy's internals


@dataclass(frozen=True)
class Import:
    path: str  # relative to the root, with forward slashes
    line: int
    module: str  # the module imported from ("" for a relative import's package)
    names: tuple[str, ...]  # names taken with ``from module import ...``; () for ``import``


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(root: Path, folder: str) -> list[Import]:
    """Every runtime import in the Python files under ``root/folder``."""
    found = []
    for path in sorted((root / folder).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), relative)
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                found += [Import(relative, node.lineno, a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = tuple(a.name for a in node.names)
                found.append(Import(relative, node.lineno, node.module or "", names))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _room(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if parts[0] == "bot" and len(parts) > 2 else None


def _imported_room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "bot" and len(parts) > 1 else None


def crossings(root: Path) -> list[str]:
    """Each import that crosses a boundary, as ``path:line: why``."""
    problems = []

    def flag(item: Import, why: str) -> None:
        problems.append(f"{item.path}:{item.line}: {why}")

    for item in imports_of(root, "flows"):
        if _top(item.module) in ("telegram", "bot", "storage", *DATABASE_LIBRARIES):
            flag(item, f"flows/ is pure but imports {item.module}")
    for item in imports_of(root, "storage"):
        if _top(item.module) in ("telegram", "bot"):
            flag(item, f"storage/ imports {item.module}")
    for item in imports_of(root, "bot"):
        top, room = _top(item.module), _room(item.path)
        if top == "telegram" and room != "tg":
            flag(item, f"only bot/tg/ imports telegram ({item.module})")
        if top in DATABASE_LIBRARIES:
            allowed = BOT_DATABASE_NAMES.get(item.module, set())
            extra = sorted(set(item.names or [item.module]) - allowed)
            if extra:
                flag(item, f"only storage/ builds SQL; bot/ takes {extra} from {item.module}")
        target = _imported_room(item.module)
        rooms = room in BOT_ROOMS and target in BOT_ROOMS
        if rooms and BOT_ROOMS.index(target) > BOT_ROOMS.index(room):
            flag(item, f"bot/{room}/ may not import the room above it: {item.module}")
    for folder in ("bot", "storage", "flows"):
        for item in imports_of(root, folder):
            private = [p for p in item.module.split(".")[1:] if p.startswith("_")]
            private = private or item.module in UNDOCUMENTED
            if private and FENCES.get(_top(item.module)) != item.path:
                flag(item, f"a private module ({item.module}) outside its fence")
    return problems


def test_the_code_keeps_its_boundaries():
    assert crossings(ROOT) == []


def cycles(root: Path, folder: str) -> list[list[str]]:
    """Import cycles among the modules of one package (imports inside functions included)."""
    graph: dict[str, set[str]] = {}
    for item in imports_of(root, folder):
        module = item.path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        graph.setdefault(module, set())
        targets = [item.module, *(f"{item.module}.{name}" for name in item.names)]
        graph[module] |= {t for t in targets if t.startswith(f"{folder}.")}
    found, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


@pytest.mark.parametrize("folder", ["flows", "storage", "bot"])
def test_no_module_imports_itself_round_a_cycle(folder: str):
    assert cycles(ROOT, folder) == []


def test_a_cycle_is_caught(tmp_path: Path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "a.py").write_text("from flows.b import x\n", encoding="utf-8")
    (tmp_path / "flows" / "b.py").write_text("def f():\n    from flows import a\n", "utf-8")
    assert cycles(tmp_path, "flows") == [["flows.a", "flows.b", "flows.a"]]


@pytest.mark.parametrize(
    ("path", "source", "why"),
    [
        ("flows/bad.py", "import telegram\n", "flows/ is pure"),
        ("flows/bad.py", "from sqlalchemy import select\n", "flows/ is pure"),
        ("storage/bad.py", "from bot.dialog.turn import Turn\n", "storage/ imports"),
        ("bot/dialog/bad.py", "def f():\n    from telegram import Bot\n", "only bot/tg/"),
        ("bot/jobs/bad.py", "from sqlmodel import select\n", "only storage/ builds SQL"),
        ("bot/dialog/bad.py", "from bot.jobs import nudge_runner\n", "the room above it"),
        ("bot/tg/bad.py", "import bot.cli.main\n", "the room above it"),
        ("bot/tg/bad.py", "from telegram._utils.types import JSONDict\n", "outside its fence"),
        ("storage/bad.py", "from sqlalchemy.util import greenlet_spawn\n", "outside its fence"),
    ],
)
def test_a_crossing_is_caught(tmp_path: Path, path: str, source: str, why: str):
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text(source, encoding="utf-8")
    for folder in ("bot", "storage", "flows"):
        (tmp_path / folder).mkdir(exist_ok=True)
    [problem] = crossings(tmp_path)
    assert why in problem and problem.startswith(f"{path}:")


def test_annotation_only_imports_are_not_crossings(tmp_path: Path):
    (tmp_path / "bot" / "tg").mkdir(parents=True)
    (tmp_path / "storage").mkdir()
    (tmp_path / "flows").mkdir()
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.cli.app import App\n"
    )
    (tmp_path / "bot" / "tg" / "ok.py").write_text(source, encoding="utf-8")
    assert crossings(tmp_path) == []
