#!/usr/bin/env bash
# The test suite (CPU). Sets up ./.venv on first use. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/ensure_env.sh"
cd "$DCKD_ROOT"
exec "$DCKD_VENV/bin/python" -m pytest tests "$@"
