"""The benchmark script runs every variant and writes its table (a functional check, not a timing)."""
import os
import sys

from conftest import PROJECT_ROOT

sys.path.insert(0, os.path.join(PROJECT_ROOT, 'benchmarks'))
import dckd_step  # noqa: E402


def test_benchmark_writes_one_row_per_variant(tmp_path):
    out = tmp_path / 'table.md'
    dckd_step.main(['--preset', 'cpu', '--device', 'cpu', '--iterations', '1', '--warmup', '0', '--out', str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith('| ') and 'variant' not in line]
    assert [row.split(' | ')[0][2:] for row in rows] == list(dckd_step.VARIANTS)
    assert rows[1].split(' | ')[2] == '1.00'  # Logits KD is the unit
