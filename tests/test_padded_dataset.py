"""PaddedPairedImageDataset: images smaller than the patch are reflect-padded, not refused."""
import os

import cv2
import numpy as np
import pytest

from basicsr.data.paired_image_dataset import PairedImageDataset
from dckd_data import PaddedPairedImageDataset


@pytest.fixture
def small_pair(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for kind in ('gt', 'lq'):
        os.makedirs(tmp_path / kind)
        cv2.imwrite(str(tmp_path / kind / 'a.png'), img)
    return tmp_path, img


def options(root, phase):
    return {'dataroot_gt': str(root / 'gt'), 'dataroot_lq': str(root / 'lq'), 'io_backend': {'type': 'disk'},
            'phase': phase, 'scale': 1, 'gt_size': 32, 'use_hflip': False, 'use_rot': False}


def test_basicsr_refuses_pairs_smaller_than_the_patch(small_pair):
    with pytest.raises(ValueError):
        PairedImageDataset(options(small_pair[0], 'train'))[0]


def test_small_pairs_are_reflect_padded_to_the_patch(small_pair):
    root, img = small_pair
    item = PaddedPairedImageDataset(options(root, 'train'))[0]
    assert item['gt'].shape == item['lq'].shape == (3, 32, 32)
    rgb = img[..., ::-1].astype(np.float32) / 255
    expected = np.pad(rgb, ((0, 12), (0, 2), (0, 0)), mode='reflect')  # 20 x 30 -> 32 x 32
    assert np.allclose(item['gt'].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_validation_is_basicsrs_unchanged(small_pair):
    root, _ = small_pair
    item = PaddedPairedImageDataset(options(root, 'val'))[0]
    assert item['gt'].shape == (3, 20, 30)
