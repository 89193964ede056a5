#!/usr/bin/env bash
# Sourced by scripts/demo.sh and scripts/test.sh: creates ./.venv on first use (and again whenever
# requirements.txt or setup.py change) with torch, torchvision, basicsr 1.4.2 and dckd (editable).
# basicsr 1.4.2 is installed with --no-deps: its metadata names the uninstallable tb-nightly, and
# requirements.txt lists its real runtime needs instead.
set -euo pipefail
DCKD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DCKD_VENV="$DCKD_ROOT/.venv"
fingerprint=$(cat "$DCKD_ROOT/requirements.txt" "$DCKD_ROOT/setup.py" | sha1sum | cut -c1-12)
stamp="$DCKD_VENV/.dckd-env-$fingerprint"
if [ ! -f "$stamp" ]; then
  python="${PYTHON:-python3}"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "dckd needs Python >= 3.10 (set PYTHON=/path/to/python3.x)" >&2; exit 1; }
  echo "Setting up $DCKD_VENV (first use; torch is a large download) ..."
  "$python" -m venv "$DCKD_VENV"
  "$DCKD_VENV/bin/python" -m pip install -q -r "$DCKD_ROOT/requirements.txt"
  "$DCKD_VENV/bin/python" -m pip install -q --no-deps --no-build-isolation basicsr==1.4.2
  "$DCKD_VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$DCKD_ROOT"
  rm -f "$DCKD_VENV"/.dckd-env-*
  touch "$stamp"
fi
