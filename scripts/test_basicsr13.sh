#!/usr/bin/env bash
# The tests that touch BasicSR's API (pipeline and drop-in, teacher check, resume, a stop under a
# fork's train.py, bad inputs, evaluation) on BasicSR 1.3.4.9, the version HAT and other forks pin. Builds ./.venv-basicsr13 on
# first use: ./.venv's packages (torch and the rest, set up by ensure_env.sh) with basicsr 1.3.4.9
# in front of them. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/ensure_env.sh"
cd "$DCKD_ROOT"
venv="$DCKD_ROOT/.venv-basicsr13"
if [ ! -f "$venv/.dckd-basicsr-1.3.4.9" ]; then
  echo "Setting up $venv (basicsr 1.3.4.9 over .venv) ..."
  rm -rf "$venv"
  base_python=$("$DCKD_VENV/bin/python" -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')
  "$base_python" -m venv "$venv"
  main_site=$("$DCKD_VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
  own_site=$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
  echo "import site; site.addsitedir('$main_site')" > "$own_site/zz_dckd_main_venv.pth"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation basicsr==1.3.4.9
  touch "$venv/.dckd-basicsr-1.3.4.9"
fi
"$venv/bin/python" -c 'import basicsr; assert basicsr.__version__ == "1.3.4.9", basicsr.__version__'
exec "$venv/bin/python" -m pytest tests/test_basicsr_versions.py tests/test_pipeline.py tests/test_teacher_check.py \
  tests/test_bad_inputs.py tests/test_evaluate.py "tests/test_resume.py::test_resumed_runs_equal_the_uninterrupted_one" \
  "tests/test_faults.py::test_a_stop_signal_under_a_forks_own_train_py_exits_75_with_one_line_and_resumes_exactly" \
  -p no:cacheprovider -n auto --dist worksteal "$@"
