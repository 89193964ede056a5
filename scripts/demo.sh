#!/usr/bin/env bash
# The main job: prepare data, train a teacher and three students (scratch, Logits KD, DCKD), print
# their PSNR/SSIM table. Sets up ./.venv on first use.
source "$(dirname "${BASH_SOURCE[0]}")/ensure_env.sh"
cd "$DCKD_ROOT"
exec "$DCKD_VENV/bin/dckd-demo" "$@"
