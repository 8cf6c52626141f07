#!/usr/bin/env bash
# Engine vace on a machine with an accelerator, as it is: install vedit if this python
# lacks it (offline from .whl/ when that folder exists: see bench/vace_wheels.sh), show the
# GPU, then run bench/vace_gpu.py (the tiny random-weight model through a real
# `vedit serve`; one real 480p edit too when VEDIT_VACE_MODEL_DIR names real weights).
#
#   bash bench/vace_gpu.sh [--json out.json] [other bench/vace_gpu.py options]
#
# PYTHON picks the interpreter (default python3); VEDIT_VACE_DEVICE defaults to cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# The vace extra's packages, named too in case pyproject.toml does not declare the extra.
VACE_PACKAGES=(diffusers transformers ftfy accelerate)

if ! "$PY" -c 'import vedit, diffusers, transformers, ftfy' 2>/dev/null; then
    # A distribution's own python refuses pip (PEP 668); the machine is lent, so allow it.
    if "$PY" -c 'import os, sys, sysconfig; sys.exit(sys.prefix != sys.base_prefix or not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
        export PIP_BREAK_SYSTEM_PACKAGES=1
    fi
    if [ -d .whl ]; then
        echo "installing vedit offline from .whl/ into $("$PY" -c 'import sys; print(sys.prefix)')"
        "$PY" -m pip install -q --no-index --find-links .whl -e '.[vace]' "${VACE_PACKAGES[@]}"
        # mediapipe's wheel, when there, only for its person model files (see README)
        if compgen -G '.whl/mediapipe-*.whl' >/dev/null; then
            "$PY" -m pip install -q --no-index --find-links .whl --no-deps mediapipe
        fi
    else
        echo "installing vedit into $("$PY" -c 'import sys; print(sys.prefix)')"
        "$PY" -m pip install -q -e '.[vace]' "${VACE_PACKAGES[@]}"
    fi
fi
"$PY" -c 'import sys, torch, diffusers, vedit; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "diffusers", diffusers.__version__)'

if command -v nvidia-smi >/dev/null; then
    nvidia-smi || true
fi

export VEDIT_VACE_DEVICE="${VEDIT_VACE_DEVICE:-cuda}"
exec "$PY" bench/vace_gpu.py "$@"
