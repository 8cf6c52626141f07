#!/usr/bin/env bash
# Run on a machine with network: the wheels a GPU machine without network lacks, into
# .whl/ of the repo root, for CPython 3.12 on manylinux x86_64. bench/vace_gpu.sh installs
# from there (pip install --no-index --find-links .whl). torch is left out: the GPU
# machine has its own CUDA build. .whl/ is ignored by git; never commit it.
#
#   bash bench/vace_wheels.sh        (PYTHON: the interpreter whose pip downloads)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64
        --platform manylinux2014_x86_64 --platform any -d .whl)

# vedit's runtime dependencies, as pyproject.toml lists them (its [project] dependencies).
mapfile -t DEPS < <("$PY" - <<'PYEOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    for dep in tomllib.load(f)["project"]["dependencies"]:
        print(dep.split(";")[0].strip())
PYEOF
)
mkdir -p .whl
# With their dependencies: none of these needs torch.
"$PY" -m pip download -q "${TARGET[@]}" "${DEPS[@]}" diffusers transformers ftfy psutil setuptools wheel
# Without them: accelerate requires torch, which would pull the CUDA build (gigabytes);
# mediapipe is installed for its person model files only (see README).
"$PY" -m pip download -q "${TARGET[@]}" --no-deps accelerate mediapipe==0.10.21
if ls .whl/torch-* >/dev/null 2>&1; then
    echo "a torch wheel was downloaded (some dependency wants it): remove it" >&2
    exit 1
fi
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1), in .whl/"
