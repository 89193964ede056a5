"""Every command of setup.py answers --help with its usage and does nothing else."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

# One fresh interpreter runs every command (torch and BasicSR are imported once, not once a
# command): each command's module imported and its main() run as `COMMAND --help` in an empty
# folder of its own; per command, its exit code, what it printed, its traceback if it raised, and
# what its folder and the project hold afterwards.
EVERY_COMMANDS_HELP = r'''
import contextlib, importlib, io, json, os, sys, traceback
commands, project = json.loads(sys.argv[1]), sys.argv[2]
results = {}
for command, module, folder in commands:
    os.chdir(folder)
    printed, code, error = io.StringIO(), 0, ''
    with contextlib.redirect_stdout(printed):
        try:
            sys.argv = [command, '--help']
            importlib.import_module(module).main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except Exception:
            code, error = 1, traceback.format_exc()
    results[command] = {'code': code, 'stdout': printed.getvalue(), 'error': error, 'folder': os.listdir(folder),
                        'project': sorted(os.listdir(project))}
print(json.dumps(results))
'''


def console_scripts():
    with open(os.path.join(PROJECT_ROOT, 'setup.py')) as f:
        return re.findall(r"'(dckd-[a-z-]+)=([\w.]+):main'", f.read())


@pytest.fixture(scope='module')
def helps(tmp_path_factory):
    """{command: what `COMMAND --help` did}, and the project's files before."""
    before = sorted(os.listdir(PROJECT_ROOT))
    commands = [(command, module, str(tmp_path_factory.mktemp(command))) for command, module in console_scripts()]
    done = subprocess.run([sys.executable, '-c', EVERY_COMMANDS_HELP, json.dumps(commands), PROJECT_ROOT],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), before


@pytest.mark.parametrize('command, module', console_scripts(), ids=[c for c, _ in console_scripts()])
def test_help_prints_the_usage_without_side_effects(command, module, helps):
    results, before = helps
    result = results[command]
    assert result['code'] == 0, result['error'][-2000:]
    assert result['stdout'].startswith('usage:') and command in result['stdout'].splitlines()[0]
    assert result['folder'] == [] and result['project'] == before
