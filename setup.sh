#!/usr/bin/env bash
# setup.sh: idempotent set-up of sysdl on a fresh machine.
#   1. a virtual environment in .venv (Python 3.11),
#   2. sysdl installed editable with its exact pins and dev tools (torch from the local wheel store),
#   3. Fashion-MNIST from Debian's package dataset-fashion-mnist, when apt can install it.
# Re-running it does only what is missing. PYTHON=/path/to/python3.11 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3.11}
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then    # absent, or half-made by a failed try
    rm -rf .venv
    echo "setup: creating .venv with $python"
    if ! "$python" -m venv .venv 2>/dev/null; then
        echo "setup: $python cannot make a venv here; installing Debian's python3.11-venv"
        rm -rf .venv
        $sudo apt-get install -y -q python3.11-venv >/dev/null
        "$python" -m venv .venv
    fi
fi

stamp=.venv/.sysdl-setup-stamp
want=$(cat pyproject.toml setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing sysdl and its pinned dependencies (first time: several minutes)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    # Guard: no dependency may have replaced the pinned torch.
    .venv/bin/python -c "import torch, sys; v = torch.__version__.split('+')[0]; sys.exit(0 if v == '2.14.1' else f'torch {v} installed, 2.14.1 pinned')"
    echo "$want" > "$stamp"
fi

data=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -f "$data" ] && [ -z "${SYSDL_DATA:-}" ]; then
    if command -v apt-get >/dev/null; then
        echo "setup: installing Debian package dataset-fashion-mnist"
        $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
            || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
            || echo "setup: could not install dataset-fashion-mnist; 'sysdl train --download' fetches the data once instead"
    else
        echo "setup: no apt-get here; 'sysdl train --download' fetches Fashion-MNIST once, or set SYSDL_DATA"
    fi
fi
# Debian's chromium and chromedriver: the browser tests open the pages sysdl writes in them (never a
# downloaded browser). Each apt-get is bounded; without them the browser tests skip, saying why.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages chromium and chromium-driver (browser tests)"
        apt_install="timeout 900 $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver"
        $apt_install >/dev/null 2>&1 \
            || { timeout 300 $sudo apt-get update -q >/dev/null 2>&1 && $apt_install >/dev/null 2>&1; } \
            || echo "setup: could not install chromium and chromium-driver; the browser tests will be skipped"
    else
        echo "setup: no apt-get here; install chromium and chromedriver, or the browser tests will be skipped"
    fi
fi
echo "setup: ready (.venv/bin/sysdl, .venv/bin/python -m pytest)"
