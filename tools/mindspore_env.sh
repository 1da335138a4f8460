#!/usr/bin/env bash
# Create (if absent) the MindSpore virtualenv used by tools/mindspore_golden.py.
#
#   bash tools/mindspore_env.sh
#   .venv-mindspore/bin/python tools/mindspore_golden.py
#
# The environment lives in <repo>/.venv-mindspore (git-ignored through `.venv-*`). It holds only
# mindspore==2.10.0 and numpy (plus their own dependencies); polyoptim and torch are never
# installed there. Running this script again is harmless: it only installs what is missing.
set -euo pipefail

MINDSPORE_VERSION="2.10.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv-mindspore"
PYTHON="${PYTHON:-python3.11}"
if ! command -v "${PYTHON}" >/dev/null 2>&1; then
    PYTHON=python3
fi

if [ ! -x "${VENV}/bin/python" ]; then
    echo "creating ${VENV} with $(${PYTHON} --version)"
    "${PYTHON}" -m venv "${VENV}"
fi

if "${VENV}/bin/python" - "${MINDSPORE_VERSION}" <<'EOF' >/dev/null 2>&1; then
import sys
from importlib.metadata import version

import numpy  # noqa: F401

ok = version("mindspore") == sys.argv[1] and int(version("numpy").split(".")[0]) < 2
sys.exit(0 if ok else 1)
EOF
    echo "mindspore ${MINDSPORE_VERSION} already installed in ${VENV}"
    exit 0
fi

"${VENV}/bin/python" -m pip install --quiet --upgrade pip
# numpy<2: some MindSpore 2.10.0 extension is built against numpy 1.x; with numpy 2 the first
# Tensor.reshape(()) (used by Optimizer.get_lr for a dynamic lr) fails with
# "A module that was compiled using NumPy 1.x cannot be run in NumPy 2.x".
"${VENV}/bin/python" -m pip install --quiet "mindspore==${MINDSPORE_VERSION}" "numpy<2"
"${VENV}/bin/python" -c "import mindspore, numpy; print('mindspore', mindspore.__version__, 'numpy', numpy.__version__)"
