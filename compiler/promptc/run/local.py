"""The embedded model: a llama.cpp server that ``promptc run --local`` starts and stops itself.

The server is llama.cpp's own OpenAI-compatible C++ server with GBNF grammars, from
``xllamacpp``'s prebuilt CPU wheel (AVX2, no AVX-512/AMX: portable), installed in seconds by
``pip install 'promptc-compiler[local]'``; it runs here as ``python -m promptc.run.local``
(:func:`serve`). The model is SmolLM2-135M-Instruct (``SmolLM2-135M-Instruct.Q4_1.gguf``, 98
MB), which :mod:`promptc.run.models` fetches into promptc's cache on first use, or any GGUF file.

:func:`local_server` starts it on 127.0.0.1 on a free port with a context that fits the build,
waits until ``GET /v1/models`` answers, and stops it when the run ends — normally, on an error
or on Ctrl-C. On Linux the server also gets SIGTERM from the kernel if promptc itself is killed,
so that no server is ever left running.

:class:`Embedded` is the ``local`` engine of ``promptc run``: this server, spoken to as any
OpenAI-compatible chat API (:class:`promptc.run.chat_api.ChatAPI`). The server itself runs in
a child process, which alone imports xllamacpp.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc.errors import BackendError, UsageError
from promptc.replies import ReplyTooLarge, read_reply, urlopen
from promptc.run.chat_api import ChatAPI
from promptc.run.context import PROBE_MAX_BYTES, ServerContext, fit_warning, largest_need
from promptc.run.models import INSTALL_LOCAL, fetch_model, find_model

if TYPE_CHECKING:
    from promptc.build import BuiltRequest
    from promptc.run.options import RunOptions

#: The package whose prebuilt wheel carries llama.cpp's server.
SERVER_PACKAGE = "xllamacpp"
#: The model name the embedded server answers to (and that requests are sent with).
LOCAL_ALIAS = "smollm2"
LOOPBACK = "127.0.0.1"
#: SmolLM2-135M was trained with an 8,192-token context: more would not help it.
MAX_CONTEXT = 8192
MIN_CONTEXT = 2048
STARTUP_TIMEOUT = 180.0  # seconds; a warm start takes 2-3 s, a cold page cache more
THREADS = max(1, min(4, os.cpu_count() or 1))


def server_installed() -> bool:
    """Whether xllamacpp, which serves the model, is installed (found, not imported)."""
    return importlib.util.find_spec(SERVER_PACKAGE) is not None


def local_available() -> bool:
    """Whether the embedded model can run without fetching anything: its server installed
    and its model file on this machine."""
    return server_installed() and find_model() is not None


def context_for(need: int) -> int:
    """A context (tokens) that fits a request needing ``need`` tokens
    (:attr:`promptc.run.context.Need.total`), rounded up to 512, within what the model can
    take."""
    return max(MIN_CONTEXT, min(MAX_CONTEXT, -(-need // 512) * 512))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    # llama.cpp reads LLAMA_ARG_* settings from the environment: the child gets none, so that
    # the parameters below are what it runs with.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
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
        with urlopen(base_url + "/models", timeout=2) as resp:
            # The server's one model: a few hundred bytes, read within the probes' cap.
            data = read_reply(resp, PROBE_MAX_BYTES, "the reply of GET /models", base_url, 2)
            return resp.status == 200 and bool(json.loads(data.decode()).get("data"))
    except (urllib.error.URLError, OSError, ValueError, ReplyTooLarge):
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


def _command(model: Path, port: int, n_ctx: int, embedding: bool) -> list[str]:
    return [
        sys.executable,
        "-m",
        "promptc.run.local",
        str(model),
        str(port),
        str(n_ctx),
        str(THREADS),
        "embedding" if embedding else "chat",
    ]


def serve(  # pragma: no cover - runs in the child
    model: str, port: int, n_ctx: int, threads: int, embedding: bool = False
) -> None:
    """Runs xllamacpp's llama.cpp server on 127.0.0.1:``port`` until SIGTERM or SIGINT
    (``embedding``: serving ``/v1/embeddings`` instead of chat)."""
    xllamacpp: Any = importlib.import_module(SERVER_PACKAGE)  # untyped: imported by name
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.model_alias = {LOCAL_ALIAS}
    params.n_ctx = n_ctx
    params.port = port
    params.hostnames = [LOOPBACK]
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.sampling.seed = 1234
    params.embedding = embedding
    if embedding:  # /v1/embeddings answers one vector per text; a chat model has no pooling
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
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


def _said(log: str) -> list[str]:
    """The lines of a log a user can act on: a Python traceback's frames (the server's own
    code, quoted) left out, its last line (the error) kept."""
    out = []
    for line in log.splitlines():
        stripped = line.strip()
        if line.startswith(("Traceback (most recent call last)", " ")):
            continue
        if stripped:
            out.append(stripped)
    return out


#: The first bytes of every GGUF file.
GGUF_MAGIC = b"GGUF"


def _model_file(model_path: str | os.PathLike[str] | None, say: Callable[[str], None]) -> Path:
    """``model_path``, else the embedded model (fetched into the cache if it is not here).

    Raises:
        UsageError: ``model_path`` is not a file.
        BackendError: No ``model_path``, and the embedded model could not be fetched.
    """
    if model_path is None:
        return find_model() or fetch_model(say=say)
    model = Path(model_path)
    if not model.is_file():
        raise UsageError(
            f"model file {str(model)!r} not found", hint="pass a .gguf file", code="no-model"
        )
    try:
        with model.open("rb") as f:  # a regular file (is_file), or a link to one: the user's
            magic = f.read(4)
    except OSError as e:
        raise UsageError(
            f"cannot read model file {str(model)!r}: {e.strerror or e}", code="no-model"
        ) from None
    if magic != GGUF_MAGIC:  # else llama.cpp fails with a traceback of the server process
        raise UsageError(
            f"model file {str(model)!r} is not a GGUF model (it does not begin with 'GGUF')",
            hint="pass a .gguf file",
            code="not-gguf",
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
                + " | ".join(_said(_tail(log))[-5:]),
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
    embedding: bool = False,
) -> Iterator[str]:
    """Runs the embedded llama.cpp server and yields its base URL (``http://127.0.0.1:P/v1``).

    Args:
        model_path: A GGUF file; default SmolLM2-135M-Instruct (fetched on first use).
        n_ctx: The context size in tokens (see :func:`context_for`).
        say: Where to report starting and stopping (one line each).
        embedding: Serve ``/v1/embeddings`` (the model as an embedding model, its token
            vectors mean-pooled) instead of chat.

    Raises:
        BackendError: llama.cpp's server or the model is not installed, or the server did
            not start (with the tail of its log).
        UsageError: ``model_path`` is not a file.
    """
    if not server_installed():
        raise BackendError(
            f"the embedded model needs llama.cpp's server ({SERVER_PACKAGE}), which is not "
            "installed",
            hint=f"{INSTALL_LOCAL}, or pass --base-url URL of a running server",
            code="missing-local",
        )
    report = say or (lambda _line: None)
    model = _model_file(model_path, report)
    port = _free_port()
    base_url = f"http://{LOOPBACK}:{port}/v1"
    fd, log_name = tempfile.mkstemp(prefix="promptc-local-", suffix=".log")
    log = Path(log_name)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            _command(model, port, n_ctx, embedding),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    try:
        report(
            f"starting the embedded model {model.name} on {base_url} "
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


class Embedded(ChatAPI):
    """The ``local`` engine: the embedded llama.cpp server (see the module's docstring),
    started when the run starts and stopped when it ends, spoken to as a chat API.

    Its context is made to fit the longest request (up to the model's own: past that, it
    says so).

    Args:
        options: The run's options (``model_path``: a GGUF file, default the bundled
            SmolLM2-135M-Instruct; the timeout).
        url: Unused: the server makes its own.
        requests: The requests of the run.
        say: Where to report starting and stopping.
    """

    #: The embedded server takes no key: one in the environment, however odd, is not read.
    sends_key = False

    def __init__(
        self,
        options: RunOptions,
        url: str | None,
        requests: Sequence[BuiltRequest],
        say: Callable[[str], None],
    ) -> None:
        # Both packages of the local extra, said before the chat client's own check (whose
        # hint, the openai extra, would leave the server missing).
        missing = [
            package
            for package, there in (
                ("openai", importlib.util.find_spec("openai") is not None),
                (SERVER_PACKAGE, server_installed()),
            )
            if not there
        ]
        if missing:
            raise BackendError(
                f"promptc run --local needs {' and '.join(missing)}, which "
                f"{'is' if len(missing) == 1 else 'are'} not installed",
                hint=f"{INSTALL_LOCAL}, or pass --base-url URL of a running server",
                code="missing-local",
            )
        super().__init__(options, None, requests, say)
        need = largest_need(requests)
        if need is not None and need.total > MAX_CONTEXT:
            trained = ServerContext(MAX_CONTEXT, "the most it was trained for")
            warning = fit_warning(need, trained, "the embedded model's")
            if warning is not None:
                say(warning)
        self.model_path = options.model_path
        self.n_ctx = context_for(need.total if need is not None else 0)
        self.say = say
        # The port changes every run; the cache is keyed by the model file instead.
        self.cache_scope = "local:" + (
            Path(self.model_path).name if self.model_path else LOCAL_ALIAS
        )
        self.answer_scope = self.cache_scope
        self.model = LOCAL_ALIAS
        # One request at a time, whatever --concurrency says: the server has one slot
        # (n_parallel 1), and a request sent while another is generated waits in its queue
        # with its timeout running. With 4 in flight, long answers passed the 600 s timeout
        # and were generated again; one at a time, each timeout covers its own answer alone.
        self.slots = 1
        self._server = contextlib.ExitStack()

    def start(self) -> None:
        super().start()
        self.name = self.url = self._server.enter_context(
            local_server(self.model_path, n_ctx=self.n_ctx, say=self.say)
        )

    def stop(self) -> None:
        self._server.close()

    async def context(self, model: str | None) -> ServerContext | None:
        return None  # made to fit when it started; what could not fit was said then


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m promptc.run.local MODEL PORT N_CTX THREADS chat|embedding``: the server of
    :func:`serve`, in this process (the child :func:`local_server` starts, or one a user
    keeps running across commands: docs/run.md). Arguments a user gets wrong end in argparse's
    usage line and exit 2; a model that is no GGUF file in promptc's own message."""
    parser = argparse.ArgumentParser(
        prog="python -m promptc.run.local",
        description="Serve a GGUF model with llama.cpp's OpenAI-compatible server on 127.0.0.1.",
    )

    def positive(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= 1):
            raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
        return int(text)

    def port(text: str) -> int:
        value = positive(text)
        if value > 65535:
            raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, not {value}")
        return value

    parser.add_argument("model", help="the GGUF model file")
    parser.add_argument("port", type=port, help="the port on 127.0.0.1")
    parser.add_argument("n_ctx", type=positive, help="the context size in tokens")
    parser.add_argument("threads", type=positive, help="CPU threads")
    parser.add_argument("mode", choices=("chat", "embedding"), help="what to serve")
    args = parser.parse_args(argv)
    try:
        model = _model_file(args.model, lambda _line: None)
    except UsageError as e:
        print(f"error: {e.format()}", file=sys.stderr)
        return 2
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(str(model), args.port, args.n_ctx, args.threads, args.mode == "embedding")
    return 0


if __name__ == "__main__":  # pragma: no cover - the xllamacpp server's child process
    sys.exit(main())
