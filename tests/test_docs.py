"""The documentation: the site builds strictly, the README stays short and its links resolve, and
the troubleshooting page says what the bad-input table makes dckd-train say.

The generated tables of docs/options.md and docs/teachers.md are checked in test_option_files.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT
from test_bad_inputs import CASES

DOCS = os.path.join(PROJECT_ROOT, 'docs')
README = os.path.join(PROJECT_ROOT, 'README.md')
MKDOCS = [sys.executable, '-m', 'mkdocs', 'build', '--strict']  # not --quiet: it hides the warnings strict counts
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
ENTRY = re.compile(r'<!-- bad input: (?P<case>[^\n]+?) -->\n### [^\n]+\n\n```text\n(?P<message>[^\n]+)\n```')


def build_site(project, out):
    env = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    return subprocess.run([*MKDOCS, '--site-dir', str(out)], cwd=project, capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_site_builds_with_strict_checks(tmp_path):
    result = build_site(PROJECT_ROOT, tmp_path / 'site')
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ('index', 'getting-started', 'options', 'troubleshooting', 'teachers'):
        assert (tmp_path / 'site' / ('' if page == 'index' else page) / 'index.html').is_file()


@pytest.mark.parametrize('breakage', ['a link to a page that does not exist', 'a link to a missing heading',
                                      'a page left out of the navigation'])
def test_a_broken_link_or_a_page_outside_the_navigation_fails_the_build(tmp_path, breakage):
    """The strict build is the check; it must fail on each thing it guards against."""
    project = tmp_path / 'project'
    shutil.copytree(DOCS, project / 'docs')
    shutil.copy(os.path.join(PROJECT_ROOT, 'mkdocs.yml'), project)
    if breakage == 'a page left out of the navigation':
        (project / 'docs' / 'orphan.md').write_text('# Orphan\n')
    else:
        target = 'no-such-page.md' if breakage == 'a link to a page that does not exist' else 'faults.md#no-such-heading'
        with open(project / 'docs' / 'getting-started.md', 'a') as f:
            f.write(f'\nSee [this]({target}).\n')
    result = build_site(project, tmp_path / 'site')
    assert result.returncode != 0
    assert ('no-such' in result.stdout + result.stderr) or ('orphan.md' in result.stdout + result.stderr)


def test_the_readme_is_short_and_its_links_and_pictures_resolve():
    with open(README) as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 160
    links = [link for link in LINK.findall(readme) if not link.startswith(('http://', 'https://', '#'))]
    assert any(link.endswith('.png') for link in links) and any(link.startswith('docs/') for link in links)
    for link in links:
        path = os.path.join(PROJECT_ROOT, link.split('#')[0])
        assert os.path.exists(path), f'README links to {link}, which does not exist'
        if link.endswith('.png'):
            assert os.path.getsize(path) < 300 * 1024, f'{link} is over 300 KB'


def test_the_readme_lists_every_documentation_page_and_quotes_the_demo_page():
    with open(README) as f:
        readme = f.read()
    pages = sorted(name for name in os.listdir(DOCS) if name.endswith('.md') and name != 'index.md')  # the home
    missing = [page for page in pages if f'(docs/{page})' not in readme]
    assert not missing, f'the README does not list {missing}'
    with open(os.path.join(DOCS, 'demo.md')) as f:
        demo_table = re.search(r'\| model \| parameters \|.*?\n\n', f.read(), re.S).group(0)
    assert demo_table.count('\n') == 8  # header, rule, bicubic, teacher, 3 students, blank line
    assert demo_table in readme, "the README's demo table is not the demo page's"


def test_troubleshooting_has_one_entry_per_bad_input_with_a_message_the_table_accepts():
    with open(os.path.join(DOCS, 'troubleshooting.md')) as f:
        entries = {m['case']: m['message'] for m in ENTRY.finditer(f.read())}
    expected = {case_id: message for case_id, _, message, _ in CASES}
    assert sorted(entries) == sorted(expected), 'docs/troubleshooting.md and tests/test_bad_inputs.py list other cases'
    for case_id, message in entries.items():
        assert re.search(expected[case_id], message), f'{case_id}: the page shows a message the table rejects: {message}'
