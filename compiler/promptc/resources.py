"""Access to the files promptc ships as package data: templates, grammars, the spec schema."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def read_grammar(name: str) -> str:
    """The text of ``grammars/<name>`` as installed with promptc."""
    return resources.files("promptc.grammars").joinpath(name).read_text(encoding="utf-8")


@cache
def read_template(name: str) -> str:
    """The text of ``templates/<name>`` as installed with promptc."""
    return resources.files("promptc.templates").joinpath(name).read_text(encoding="utf-8")


def template_names() -> list[str]:
    """Every shipped template file name (``batch.j2``, ``partials/demo.j2`` …), sorted."""
    root = resources.files("promptc.templates")
    out: list[str] = []

    def walk(node: resources.abc.Traversable, prefix: str) -> None:
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
    """The text of the shipped JSON Schema ``compiler/schema/<name>``."""
    return resources.files("promptc.schema").joinpath(name).read_text(encoding="utf-8")
