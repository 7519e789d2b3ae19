"""The import rules of the generator: who may use which package, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator"
# Packages only the command line uses: the build never needs them.
CLI_ONLY = ("generator.preview", "generator.verify", "generator.authoring", "generator.roundtrip")
# Reading and rendering a card never looks at releases or dist/.
CARD_STAGES = tuple(p.stem for p in sorted((PACKAGE / "cards").glob("*.py")))
RELEASE_SIDE = ("generator.build", "generator.release")


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("generator")}


def module_name(path: Path) -> str:
    return ".".join(("generator", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_cli_only_packages_are_imported_by_the_cli_alone(path: Path) -> None:
    name = module_name(path)
    if name == "generator.cli":
        return
    for imported in imports_of(path):
        for package in CLI_ONLY:
            if (imported == package or imported.startswith(package + ".")) and not name.startswith(package):
                pytest.fail(f"{name} imports {imported}: only generator.cli may")


@pytest.mark.parametrize("stage", CARD_STAGES)
def test_card_stages_never_import_the_release_side(stage: str) -> None:
    imported = imports_of(PACKAGE / "cards" / f"{stage}.py")
    assert not {i for i in imported if i.startswith(RELEASE_SIDE)}, imported


def test_nothing_imports_the_cli() -> None:
    importers = [module_name(p) for p in MODULES if "generator.cli" in imports_of(p)]
    assert importers == ["generator.__main__"]  # `python -m generator` is the command line too
