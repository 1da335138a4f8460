#!/usr/bin/env bash
# Create (if absent) the virtualenv .venv-paddle in the repo root with the real PaddlePaddle
# 3.3.1 (CPU) and numpy, used by tools/paddle_golden.py to regenerate tests/golden/paddle:
#
#   bash tools/paddle_env.sh && .venv-paddle/bin/python tools/paddle_golden.py
#
# Only paddlepaddle, numpy and their own dependencies go in there (never torch or polyoptim).
# numpy is pinned too: the pickled .pdopt files name numpy's module ("numpy._core.multiarray"
# under numpy 2), so the pin keeps regenerated checkpoints byte-identical.
# Idempotent: a second run only checks the installed versions.
set -euo pipefail

PADDLE_VERSION="3.3.1"
NUMPY_VERSION="2.4.6"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv-paddle"

if [ ! -x "${VENV}/bin/python" ]; then
    echo "creating ${VENV} with $(python3 --version)"
    python3 -m venv "${VENV}"
fi

if ! "${VENV}/bin/python" - "${PADDLE_VERSION}" "${NUMPY_VERSION}" <<'PY' >/dev/null 2>&1; then
import sys
from importlib.metadata import version

ok = version("paddlepaddle") == sys.argv[1] and version("numpy") == sys.argv[2]
sys.exit(0 if ok else 1)
PY
    "${VENV}/bin/python" -m pip install --quiet --upgrade pip
    "${VENV}/bin/python" -m pip install --quiet "paddlepaddle==${PADDLE_VERSION}" \
        "numpy==${NUMPY_VERSION}"
fi

"${VENV}/bin/python" -W ignore -c \
    "import paddle, numpy; print('paddle', paddle.__version__, '/ numpy', numpy.__version__)" \
    2>/dev/null
