"""Access to the files promptc ships as package data: templates, grammars, the spec schema.

:mod:`importlib.resources` (and the tempfile, shutil and archive modules it brings) is imported
only when a file is not found beside this module: ``promptc check`` reads just the schema, and
that import would be a tenth of its time.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_HERE = Path(__file__).resolve().parent


def _files(package: str) -> Traversable:
    from importlib import resources

    return resources.files(package)


@cache
def read_grammar(name: str) -> str:
    """The text of ``grammars/<name>`` as installed with promptc."""
    return _files("promptc.grammars").joinpath(name).read_text(encoding="utf-8")


@cache
def read_template(name: str) -> str:
    """The text of ``templates/<name>`` as installed with promptc."""
    return _files("promptc.templates").joinpath(name).read_text(encoding="utf-8")


def template_names() -> list[str]:
    """Every shipped template file name (``batch.j2``, ``partials/demo.j2`` …), sorted."""
    root = _files("promptc.templates")
    out: list[str] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".j2"):
                out.append(prefix + child.name)

    walk(root, "")
    return sorted(out)


@cache
def read_schema(name: str = "spec.schema.json") -> str:
    """The text of the shipped JSON Schema ``compiler/promptc/schema/<name>`` (a line break
    ends it: ``scripts/update_schema.py`` writes it, and a test checks it is current)."""
    beside = _HERE / "schema" / name
    if beside.is_file():  # an installed or source tree: a plain file
        return beside.read_text(encoding="utf-8")
    return _files("promptc.schema").joinpath(name).read_text(encoding="utf-8")
