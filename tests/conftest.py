"""Shared test helpers: reference material beside the project, tiny networks and options."""
import ast
import itertools
import os
import sys

import pytest
import torch

import dckd_models  # noqa: F401  (registers dckd's archs, losses, datasets and models in BasicSR's registries)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(PROJECT_ROOT), 'shared')
KEYS_DIR = os.path.join(SHARED, 'reference', 'keys')
BENCHMARKS_DIR = os.path.join(SHARED, 'data', 'benchmarks')
sys.path.insert(0, os.path.join(PROJECT_ROOT, 'benchmarks'))  # the benchmark scripts and their helpers


def reference_layout(name):
    """{key: shape} of a published checkpoint from ../shared/reference/keys; skips when absent."""
    path = os.path.join(KEYS_DIR, name)
    if not os.path.isfile(path):
        pytest.skip(f'reference listing {path} not available')
    layout = {}
    with open(path) as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            layout[key] = tuple(ast.literal_eval(shape))
    return layout


def benchmark_images(name):
    """Paths of the real HR images of ../shared/data/benchmarks/<name>; skips when absent."""
    folder = os.path.join(BENCHMARKS_DIR, name)
    if not os.path.isdir(folder):
        pytest.skip(f'benchmark images {folder} not available')
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.png'))


# the devices a spec runs on: the CPU always, a GPU where there is one (marked, skipped in CI)
DEVICES = ['cpu', pytest.param('cuda', marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                                 reason='needs a CUDA device')])]


@pytest.fixture
def float32_exact():
    """Plain float32 on a GPU too: no TF32 in convolutions or matmuls while the test runs."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


TINY_VQGAN = dict(type='VQGANEncoder', ch=32, ch_mult=[1, 1, 2, 2, 4], num_res_blocks=1, z_channels=8, embed_dim=8,
                  n_embed=16)


def edsr(num_feat, num_block, scale):
    return dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block, upscale=scale,
                res_scale=1, img_range=1., rgb_mean=[0.5, 0.5, 0.5])


# ----- running side by side (pytest-xdist: scripts/test.sh runs `-n auto --dist worksteal`) --------
if os.environ.get('PYTEST_XDIST_WORKER'):  # one core each: torch here, and every process a test starts
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The slow tests (a process, a training run or a compile each) at the head of both halves of
    the run, the quick ones after them: worksteal hands each worker a half to start with and moves
    tests from the end of the longer queue, so no worker is left alone with slow tests at the end.
    A module's slow tests stay in one half, so that its fixtures are made by one worker."""
    halves, quick = ([], []), []
    for _, tests in itertools.groupby(items, key=lambda item: item.path):
        tests = list(tests)
        slow = [item for item in tests if item.get_closest_marker('slow')]
        min(halves, key=len).extend(slow)
        quick += [item for item in tests if not item.get_closest_marker('slow')]
    split = max(0, len(items) // 2 - len(halves[0]))
    items[:] = halves[0] + quick[:split] + halves[1] + quick[split:]
