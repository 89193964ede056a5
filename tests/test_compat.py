"""BasicSR 1.4.2 imports through our packages on torchvision without functional_tensor, also in
spawned DataLoader workers; the distutils stand-in compares versions like LooseVersion."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from dckd_utils import compat


def test_loose_version_orders_versions_like_distutils():
    V = compat.LooseVersion
    assert V('0.29.2+cu132') >= V('0.9.0')
    assert V('0.8.2') < V('0.9.0')
    assert V('1.10') > V('1.9')
    assert V('2.0') == V('2.0')
    assert V('1.0') < V('1.0a')


def test_distutils_stand_in_provides_loose_version():
    finder = compat._StandInFinder()
    spec = finder.find_spec('distutils.version')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.LooseVersion('0.17') > module.LooseVersion('0.9')


def test_stand_ins_are_only_a_last_resort():
    compat.install()
    compat.install()
    finders = [f for f in sys.meta_path if isinstance(f, compat._StandInFinder)]
    assert len(finders) == 1 and sys.meta_path[-1] is finders[0]


def test_basicsr_imports_after_our_package_and_in_spawned_workers(tmp_path):
    """A fresh interpreter: importing dckd_models makes `import basicsr` work, and a spawned
    DataLoader worker (which unpickles a BasicSR dataset) works too."""
    import torchvision.transforms
    if os.path.exists(os.path.join(os.path.dirname(torchvision.transforms.__file__), 'functional_tensor.py')):
        pytest.skip(f'torchvision {torchvision.__version__} still has functional_tensor')
    script = tmp_path / 'spawn_check.py'
    script.write_text(textwrap.dedent('''
        import numpy as np
        import cv2
        import torch
        import dckd_models  # noqa: F401  (must come first)
        from basicsr.data.paired_image_dataset import PairedImageDataset

        if __name__ == '__main__':
            import sys
            folder = sys.argv[1]
            for sub in ('gt', 'lq'):
                import os
                os.makedirs(os.path.join(folder, sub))
                size = 16 if sub == 'gt' else 8
                cv2.imwrite(os.path.join(folder, sub, 'a.png'), np.full((size, size, 3), 100, np.uint8))
            dataset = PairedImageDataset(dict(dataroot_gt=os.path.join(folder, 'gt'),
                                              dataroot_lq=os.path.join(folder, 'lq'), io_backend=dict(type='disk'),
                                              phase='val', scale=2))
            loader = torch.utils.data.DataLoader(dataset, num_workers=1, multiprocessing_context='spawn')
            batch = next(iter(loader))
            print('worker batch', tuple(batch['gt'].shape))
    '''))
    result = subprocess.run([sys.executable, str(script), str(tmp_path / 'data')], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'worker batch (1, 3, 16, 16)' in result.stdout
