"""Every command of setup.py answers --help with its usage and does nothing else."""
import os
import re
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT


def console_scripts():
    with open(os.path.join(PROJECT_ROOT, 'setup.py')) as f:
        return re.findall(r"'(dckd-[a-z-]+)=([\w.]+):main'", f.read())


@pytest.mark.parametrize('command, module', console_scripts(), ids=[c for c, _ in console_scripts()])
def test_help_prints_the_usage_without_side_effects(command, module, tmp_path):
    before = set(os.listdir(PROJECT_ROOT))
    result = subprocess.run([sys.executable, '-c', f'import sys; from {module} import main; sys.argv[0] = '
                             f'{command!r}; main()', '--help'], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith('usage:') and command in result.stdout.splitlines()[0]
    assert os.listdir(tmp_path) == [] and set(os.listdir(PROJECT_ROOT)) == before
