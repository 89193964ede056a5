#!/usr/bin/env bash
# The test suite (CPU). Sets up ./.venv on first use. Extra arguments go to pytest:
#   bash scripts/test.sh -m 'not slow'    # the quick pass
# Tests run side by side, one worker a core (pytest-xdist; -n 0 runs them in this one process).
source "$(dirname "${BASH_SOURCE[0]}")/ensure_env.sh"
cd "$DCKD_ROOT"
exec "$DCKD_VENV/bin/python" -m pytest tests -n auto --dist worksteal "$@"
