"""``manifest.json``: what a build is, written last, and the first thing every reader reads.

It holds the build format (:data:`BUILD_FORMAT`), the promptc version, the task's name, the
target, strategy, selection and model; the sha256 of the spec, the specs it extends, the data,
each template used and every file written (``files``, and the grammar files under
``grammar``); the counts and a plain statement of the cost. Each request's facts are in
``batches.jsonl``, line for line, so the manifest stays small whatever the build's size.

Every reader of a build folder starts with :func:`read_manifest`: a folder without a manifest
is not a build, and a build of another format is refused, saying to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptc.build.files import build_error, document, open_regular, read_text
from promptc.build.targets import NAMES, TARGETS
from promptc.errors import Location
from promptc.strategies import NAMES as STRATEGY_NAMES
from promptc.text import or_list

MANIFEST_FILE = "manifest.json"
#: The form of the build folder this promptc writes and reads: a change of any file's form
#: (a field renamed, moved or given another meaning) is a new format, and a build of another
#: one is refused with a request to rebuild it.
BUILD_FORMAT = 1


def manifest_text(manifest: Mapping[str, object]) -> str:
    """``manifest.json``: the one writer of it, the build format included."""
    return document({**manifest, "build_format": BUILD_FORMAT})


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """A build folder's manifest, checked to be of this promptc's build format.

    Raises:
        UsageError: No manifest (``not-a-build``), one that is not a JSON object
            (``bad-manifest``), of another build format or none (``build-format``), or
            naming no target promptc knows (``bad-target``).
    """
    path = Path(folder) / MANIFEST_FILE
    where = Location(str(path))
    try:
        manifest = json.loads(read_text(path))
    except FileNotFoundError:
        raise build_error("not-a-build", where, folder=str(folder), name=MANIFEST_FILE) from None
    except (OSError, ValueError, RecursionError) as e:  # ValueError: decoding, digits
        raise build_error("bad-manifest", where, problem=str(e)) from None
    if not isinstance(manifest, dict):
        raise build_error("bad-manifest", where, problem="it is not a JSON object")
    found = manifest.get("build_format")
    if found is None:
        raise build_error("no-build-format", where, want=BUILD_FORMAT)
    if found != BUILD_FORMAT or isinstance(found, bool):
        raise build_error("build-format", where, found=found, want=BUILD_FORMAT)
    target = manifest.get("target")
    if not isinstance(target, str) or target not in TARGETS:
        raise build_error("bad-target", where, found=target, known=or_list(NAMES))
    problem = _shape_problem(manifest)
    if problem is not None:
        raise build_error("bad-manifest", where, problem=problem)
    return manifest


def _shape_problem(manifest: Mapping[str, Any]) -> str | None:
    """What is wrong with the fields the readers of a build take from its manifest, if
    anything: a manifest edited by hand (its hashes updated) must end in a message, not in a
    reader's ``TypeError``."""

    def mapping_of(value: object, kind: type) -> bool:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, kind) and not isinstance(v, bool)
            for k, v in value.items()
        )

    strategy = manifest.get("strategy")
    grammar = manifest.get("grammar", {})
    wanted = {
        "name": isinstance(manifest.get("name"), str),
        "strategy": isinstance(strategy, dict)
        and strategy.get("kind") in STRATEGY_NAMES
        and isinstance(strategy.get("batch_size"), int)
        and not isinstance(strategy.get("batch_size"), bool)
        and strategy["batch_size"] >= 1,
        "files": mapping_of(manifest.get("files", {}), str),
        "grammar": isinstance(grammar, dict)
        and mapping_of(grammar.get("files", {}), str)
        and mapping_of(grammar.get("stems", {}), str),
        "counts": mapping_of(manifest.get("counts", {}), int),
        "selection": isinstance(manifest.get("selection", {}), dict),
    }
    wrong = [key for key, ok in wanted.items() if not ok]
    if not wrong:
        return None
    return f"{', '.join(wrong)}: not as promptc build writes {'them' if wrong[1:] else 'it'}"


def check_hashes(folder: Path, manifest: Mapping[str, Any], names: Sequence[str]) -> None:
    """Refuses a build whose files ``names`` were changed after building.

    Raises:
        UsageError: A file does not have the sha256 the manifest lists (``build-modified``).
    """
    listed = manifest.get("files")
    listed = listed if isinstance(listed, Mapping) else {}
    for name in names:
        want = listed.get(name)
        try:
            with open_regular(folder / name) as f:
                got = hashlib.file_digest(f, "sha256").hexdigest()
        except FileNotFoundError:
            raise build_error(
                "not-a-build", Location(str(folder / name)), folder=str(folder), name=name
            ) from None
        except OSError:
            got = None
        if want != got:
            if want is not None and _lf_digest(folder / name) == want:
                where = Location(str(folder / name))
                raise build_error("build-crlf", where, name=name, folder=str(folder))
            raise build_error(
                "build-modified",
                Location(str(folder / name)),
                name=name,
                unlisted=" (it is not listed)" if want is None else "",
            )


def _lf_digest(path: Path) -> str | None:
    """The sha256 of a file with each CRLF read as LF, or ``None`` if it holds none (or
    cannot be read): a build checked out by git with ``core.autocrlf`` has them."""
    digest, crlf, carry = hashlib.sha256(), False, b""
    try:
        with open_regular(path) as f:
            while chunk := f.read(1 << 20):
                chunk = carry + chunk
                carry = b"\r" if chunk.endswith(b"\r") else b""
                chunk = chunk[: len(chunk) - len(carry)]
                crlf = crlf or b"\r\n" in chunk
                digest.update(chunk.replace(b"\r\n", b"\n"))
    except OSError:
        return None
    digest.update(carry)
    return digest.hexdigest() if crlf else None
