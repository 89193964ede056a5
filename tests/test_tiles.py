"""Large images in overlapping, blended tiles: equal to one pass where the network's receptive field
fits in a quarter of the overlap (EDSR here: about 8 LR pixels), for SR and for scale 1; and
dckd-restore over a folder."""
import os

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from basicsr.archs import build_network
from dckd import restore
from dckd.evaluate.models import NetworkModel
from dckd.evaluate.tiles import restore_tiled
from conftest import edsr


@pytest.mark.parametrize('scale', [2, 4])
def test_sr_tiles_equal_one_pass(scale):
    torch.manual_seed(0)
    net = build_network(edsr(8, 2, scale)).eval()
    images = torch.rand(2, 3, 90, 77)  # not a multiple of the tile step
    with torch.no_grad():
        whole = net(images)
    tiled = restore_tiled(net, images, tile=44, overlap=32)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() <= 1e-5


def test_same_size_restoration_tiles_equal_one_pass():
    """Scale 1 (deblurring, deraining): a network of receptive field 2 with overlap 8."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()
    images = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        assert (restore_tiled(net, images, tile=16, overlap=8) - net(images)).abs().max() <= 1e-5


def test_a_too_small_overlap_shows_and_a_bad_one_is_refused():
    torch.manual_seed(0)
    net = build_network(edsr(8, 2, 2)).eval()
    images = torch.rand(1, 3, 60, 60)
    with torch.no_grad():
        assert (restore_tiled(net, images, tile=20, overlap=4) - net(images)).abs().max() > 1e-4
    with pytest.raises(ValueError, match='overlap'):
        restore_tiled(net, images, tile=16, overlap=16)


def test_windowed_and_global_networks_restore_tiled_to_the_right_size(tmp_path):
    """SwinIR (padded to its windows per tile) and NAFNet (global pooling: close, not equal)."""
    swinir = dict(type='SwinIR', upscale=2, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle')
    nafnet = dict(type='NAFNet', img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1])
    for options, scale in ((swinir, 2), (nafnet, 1)):
        model = NetworkModel('net', options, None, tile=24, overlap=8)
        image = np.random.default_rng(0).integers(0, 255, (50, 37, 3), dtype=np.uint8)
        assert model.restore(image).shape == (50 * scale, 37 * scale, 3)


def write_images(folder, sizes):
    folder.mkdir()
    for index, (height, width) in enumerate(sizes):
        cv2.imwrite(str(folder / f'photo{index}.jpg'),
                    np.random.default_rng(index).integers(0, 255, (height, width, 3), dtype=np.uint8))


def test_restore_writes_every_image_tiled_as_one_pass_and_keeps_existing_outputs(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / 'net.pth'
    torch.save({'params_ema': build_network(edsr(8, 2, 2)).state_dict()}, checkpoint)
    options = tmp_path / 'test.yml'
    options.write_text(yaml.safe_dump({'scale': 2, 'network_g': edsr(8, 2, 2)}))
    write_images(tmp_path / 'in', [(70, 90), (30, 20)])
    out = tmp_path / 'out'
    restore.main(['--model', f'{options}:{checkpoint}', '--input', str(tmp_path / 'in'), '--output', str(out),
                  '--tile', '44', '--overlap', '32', '--device', 'cpu'])
    assert sorted(os.listdir(out)) == ['photo0.png', 'photo1.png']
    whole = NetworkModel('net', edsr(8, 2, 2), str(checkpoint))
    for index in range(2):
        restored = cv2.imread(str(out / f'photo{index}.png'))
        expected = whole.restore(cv2.imread(str(tmp_path / 'in' / f'photo{index}.jpg')))
        assert restored.shape == expected.shape and np.abs(restored.astype(int) - expected).max() <= 1
    with pytest.raises(SystemExit, match=r'2 output\(s\) exist, e.g. .*photo0.png; choose another --output or pass '
                                         '--overwrite'):
        restore.main(['--model', f'{options}:{checkpoint}', '--input', str(tmp_path / 'in'), '--output', str(out)])
