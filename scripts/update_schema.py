"""Regenerates the ``layer`` definitions of the spec JSON Schema from its ``spec`` definition.

A spec with ``extends`` is a layer over the spec it extends: its keys merge into the base
(mappings key by key, lists and scalars replace, ``null`` removes), so it need not repeat the
keys it inherits and may write ``null``. Editors see the file alone, so the schema describes a
layer as the complete spec with every requirement dropped and every mapping value nullable —
written out here, from ``$defs/spec``, so that the two can never drift apart.

    python scripts/update_schema.py           # rewrite compiler/promptc/schema/spec.schema.json
    python scripts/update_schema.py --check   # exit 1 if the file is not what this writes

``tests/test_schema_truth.py`` runs the check.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

SCHEMA = (
    Path(__file__).resolve().parents[1] / "compiler" / "promptc" / "schema" / "spec.schema.json"
)
#: The schema's stable identity, the same wherever the file is copied (``promptc init`` writes
#: it beside each new spec): editors and ``yaml.schemas`` settings know it by this ``$id``. A
#: URN, not a URL: nothing resolves it over the network, and it names the distribution.
SCHEMA_ID = "urn:promptc-compiler:spec:1"
PREFIX = "#/$defs/"
LAYER = "layer"
#: Keywords that only add requirements: a layer leaves them to the merged spec.
DROPPED = ("required", "if", "then", "else", "minProperties")
NULL = {"type": "null", "description": "null removes the inherited value"}


def _layer_name(name: str) -> str:
    return LAYER if name == "spec" else f"{LAYER}_{name}"


def _nullable(node: Any, description: str | None = None) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    description = node.get("description", description)
    if description is not None:
        out["description"] = description
    out["anyOf"] = [NULL, node]
    return out


def layer_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``layer`` definitions of ``schema`` (``layer`` for ``spec``, ``layer_X`` for ``X``)."""
    defs = schema["$defs"]
    made: dict[str, Any] = {}

    def ref(target: str) -> str:
        name = target[len(PREFIX) :]
        if defs[name].get("type") != "object":
            return target  # a string or number definition: the same in a layer
        layer = _layer_name(name)
        if layer not in made:
            made[layer] = {}  # reserve the name first: definitions may refer to each other
            made[layer] = convert(defs[name])
        return PREFIX + layer

    def described(node: Any) -> str | None:
        target = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(target, str) and target.startswith(PREFIX):
            found = defs[target[len(PREFIX) :]].get("description")
            return found if isinstance(found, str) else None
        return None

    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROPPED:
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(PREFIX):
                out[key] = ref(value)
            elif key == "properties":
                # null removes an inherited key: not one the merged spec must have (nor the
                # extends itself, which a null would not remove but break)
                keep = {*node.get("required", ()), "extends"}
                out[key] = {
                    k: convert(v) if k in keep else _nullable(convert(v), described(v))
                    for k, v in value.items()
                }
            elif key == "additionalProperties" and isinstance(value, dict):
                out[key] = _nullable(convert(value))
            else:
                out[key] = copy.deepcopy(value)  # lists replace: their items stay complete
        return out

    top = convert(defs["spec"])
    top["description"] = (
        "A spec that extends another: only the keys it changes. Mappings merge into the "
        "inherited ones key by key, lists and scalars replace them, and null removes one."
    )
    top.setdefault("required", ["extends"])
    made[LAYER] = top
    return dict(sorted(made.items()))


def generate(schema: dict[str, Any]) -> str:
    """The schema's text with its layer definitions regenerated."""
    defs = {k: v for k, v in schema["$defs"].items() if not k.startswith(LAYER)}
    base = {**schema, "$defs": defs}
    head = {"$schema": schema["$schema"], "$id": SCHEMA_ID}
    out = {**head, **base, "$defs": {**defs, **layer_defs(base)}}
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = SCHEMA.read_text(encoding="utf-8")
    new = generate(json.loads(text))
    if "--check" in argv:
        if new != text:
            print(f"{SCHEMA}: stale; run python scripts/update_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
