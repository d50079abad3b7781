"""promptc's distribution has a name of its own on the package index (``promptc`` is another
project's): every install hint promptc prints or documents names it, so that none installs the
other project in a fresh environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DISTRIBUTION = "promptc-compiler"
#: Where hints are written: the package's messages, the docs, the README, the scripts.
WHERE = ("compiler", "docs", "scripts", "README.md", ".pre-commit-hooks.yaml")


def _texts() -> dict[Path, str]:
    out = {}
    for name in WHERE:
        root = REPO / name
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.suffix in (".py", ".md", ".sh", ".yaml", ".j2") and path.is_file():
                out[path.relative_to(REPO)] = path.read_text(encoding="utf-8")
    return out


def test_the_distribution_is_promptc_compiler() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"promptc": "promptc.cli:main"}  # the command keeps its name


def test_every_install_hint_names_the_distribution() -> None:
    """``pip install 'promptc[x]'`` or ``pip install promptc`` would install the other
    project: every hint says ``promptc-compiler`` (or ``.`` from a checkout)."""
    wrong = re.compile(r"""pip install(?: +-\S+)* +['"]?promptc(?![\w-])""")
    found = [f"{path}: {m.group(0)}" for path, t in _texts().items() for m in wrong.finditer(t)]
    assert found == []
    extras = re.compile(r"(?<![\w-])promptc\[[a-z,]+\]")
    assert [str(p) for p, t in _texts().items() if extras.search(t)] == []


def test_the_hints_name_extras_that_exist() -> None:
    declared = set(
        tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "optional-dependencies"
        ]
    )
    named = {
        m.group(1)
        for t in _texts().values()
        for m in re.finditer(rf"{DISTRIBUTION}\[([a-z]+)\]", t)
    }
    assert named and named <= declared
