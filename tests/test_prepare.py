"""dckd-prepare: counts, sizes, pairing, BasicSR-readable LMDBs, LR = MATLAB imresize, idempotence."""
import os

import cv2
import numpy as np
import pytest

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.matlab_functions import imresize
from dckd.prepare import pairs, sr
from dckd.prepare.cli import main as prepare_main
from dckd_data.image_files import image_from_lmdb, lmdb_shapes
from conftest import BENCHMARKS_DIR, benchmark_images


def real_or_synthetic_hr(folder, count, size=(150, 200)):
    """HR photographs from ../shared (cropped for speed), else textured synthetic images."""
    os.makedirs(folder)
    source = os.path.join(BENCHMARKS_DIR, 'BSD68')
    names = sorted(os.listdir(source))[:count] if os.path.isdir(source) else [f'{i}.png' for i in range(count)]
    for index, name in enumerate(names):
        if os.path.isdir(source):
            img = cv2.imread(os.path.join(source, name))[:size[0], :size[1]]
        else:
            y, x = np.mgrid[0:size[0], 0:size[1]]
            img = np.stack([127 + 100 * np.sin(x / (4 + c + index)) * np.cos(y / 7) for c in range(3)], -1)
        cv2.imwrite(os.path.join(folder, f'{index + 1:04d}.png'), img.astype(np.uint8))
    return folder


def expected_positions(length, patch, step):
    """BasicSR's extract_subimages (thresh_size 0), written out independently."""
    positions = list(np.arange(0, length - patch + 1, step))
    if length - (positions[-1] + patch) > 0:
        positions.append(length - patch)
    return len(positions)


def direct_bicubic(gt, scale):
    return np.clip(np.round(imresize(gt.astype(np.float64) / 255., 1 / scale) * 255), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def div2k(tmp_path_factory):
    root = tmp_path_factory.mktemp('div2k')
    hr = real_or_synthetic_hr(str(root / 'DIV2K_train_HR'), 3, size=(150, 200))
    count = sr.prepare_div2k(hr, str(root / 'out'), scales=[2, 3, 4], patch=96, step=48, workers=2)
    return root, count


def test_div2k_sub_images_follow_basicsr_scheme_and_naming(div2k):
    root, count = div2k
    # HR mod-cropped to 12: 144 x 192; 96-pixel windows every 48 pixels
    per_image = expected_positions(144, 96, 48) * expected_positions(192, 96, 48)
    assert per_image == 2 * 3 and count == 3 * per_image
    gt = lmdb_shapes(str(root / 'out/DIV2K_train_HR_sub.lmdb'))
    assert sorted(gt)[:2] == ['0001_s001', '0001_s002'] and len(gt) == count
    assert set(gt.values()) == {(96, 96, 3)}
    for scale in (2, 3, 4):
        lq = lmdb_shapes(str(root / f'out/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'))
        assert set(lq) == set(gt) and set(lq.values()) == {(96 // scale, 96 // scale, 3)}


def test_div2k_lr_is_matlab_imresize_of_the_whole_image_cropped(div2k):
    root, _ = div2k
    hr = cv2.imread(str(root / 'DIV2K_train_HR/0001.png'))[:144, :192]
    lq = direct_bicubic(hr, 3)
    # windows: rows at 0 and 48, columns at 0, 48 and 96 -> s005 is the second row, second column
    stored = image_from_lmdb(str(root / 'out/DIV2K_train_LR_bicubic_X3_sub.lmdb'), '0001_s005')
    assert np.array_equal(stored, lq[48 // 3:(48 + 96) // 3, 48 // 3:(48 + 96) // 3])


def test_div2k_lmdbs_read_with_basicsr_paired_dataset(div2k):
    root, _ = div2k
    dataset = PairedImageDataset({
        'dataroot_gt': str(root / 'out/DIV2K_train_HR_sub.lmdb'),
        'dataroot_lq': str(root / 'out/DIV2K_train_LR_bicubic_X4_sub.lmdb'),
        'io_backend': {'type': 'lmdb'}, 'phase': 'train', 'scale': 4, 'gt_size': 64, 'use_hflip': True,
        'use_rot': True})
    item = dataset[0]
    assert item['gt'].shape == (3, 64, 64) and item['lq'].shape == (3, 16, 16)


def test_preparing_again_checks_instead_of_rewriting(div2k):
    root, count = div2k
    data_file = root / 'out/DIV2K_train_HR_sub.lmdb/data.mdb'
    before = os.stat(data_file).st_mtime_ns
    assert sr.prepare_div2k(str(root / 'DIV2K_train_HR'), str(root / 'out'), [2, 3, 4], 96, 48) == count
    assert os.stat(data_file).st_mtime_ns == before


def test_partial_outputs_are_refused_not_overwritten(tmp_path):
    hr = real_or_synthetic_hr(str(tmp_path / 'hr'), 1)
    os.makedirs(tmp_path / 'out/gt.lmdb')
    (tmp_path / 'out/gt.lmdb/mine.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='pass --overwrite'):
        sr.prepare_folder(hr, str(tmp_path / 'out'), scale=2)
    assert (tmp_path / 'out/gt.lmdb/mine.txt').read_text() == 'user data'
    assert sr.prepare_folder(hr, str(tmp_path / 'out'), scale=2, overwrite=True) == 1


def test_benchmark_set5_gt_mod12_and_bicubic_lr(tmp_path):
    paths = benchmark_images('Set5')
    assert prepare_main(['benchmark', os.path.dirname(paths[0]), '--out', str(tmp_path)]) is None
    for path in paths:
        name = os.path.basename(path)
        hr = cv2.imread(path)
        gt = cv2.imread(str(tmp_path / 'Set5/GTmod12' / name))
        assert gt.shape == (hr.shape[0] // 12 * 12, hr.shape[1] // 12 * 12, 3)
        assert np.array_equal(gt, hr[:gt.shape[0], :gt.shape[1]])
        for scale in (2, 3, 4):
            lq = cv2.imread(str(tmp_path / f'Set5/LRbicx{scale}' / name))
            assert np.array_equal(lq, direct_bicubic(gt, scale))


def test_benchmark_with_a_grayscale_image_gives_three_channels(tmp_path):
    bridge = [p for p in benchmark_images('Set14') if p.endswith('bridge.png')]
    folder = tmp_path / 'gray'
    os.makedirs(folder)
    cv2.imwrite(str(folder / 'bridge.png'), cv2.imread(bridge[0], cv2.IMREAD_UNCHANGED))
    assert sr.prepare_benchmark(str(folder), str(tmp_path), 'Gray', scales=[4], mod=4, fmt='lmdb') == 1
    assert lmdb_shapes(str(tmp_path / 'Gray/GTmod4.lmdb'))['bridge'][2] == 3


def test_user_folder_to_paired_sub_image_lmdbs(tmp_path):
    hr = real_or_synthetic_hr(str(tmp_path / 'mine'), 2, size=(100, 130))
    count = sr.prepare_folder(hr, str(tmp_path / 'out'), scale=4, patch=48, step=24)
    # mod 4: 100 x 128 -> rows 0, 24, 48, 52; columns 0, 24, 48, 72, 80
    assert count == 2 * 4 * 5
    assert set(lmdb_shapes(str(tmp_path / 'out/lq_x4.lmdb')).values()) == {(12, 12, 3)}


def photographs(count, size):
    """Real BSD68 crops where ../shared is present, else textured synthetic images."""
    source = os.path.join(BENCHMARKS_DIR, 'BSD68')
    if os.path.isdir(source):
        return [cv2.imread(os.path.join(source, n))[:size[0], :size[1]] for n in sorted(os.listdir(source))[:count]]
    y, x = np.mgrid[0:size[0], 0:size[1]]
    return [np.stack([127 + 100 * np.sin(x / (3 + c + i)) * np.cos(y / 5) for c in range(3)], -1).astype(np.uint8)
            for i in range(count)]


def gopro_like(root, sequences=('GOPR0372_07_00', 'GOPR0384_11_01'), frames=2, size=(96, 160)):
    sharp_frames = iter(photographs(2 * len(sequences) * frames, size))
    for split in ('train', 'test'):
        for sequence in sequences:
            for f in range(frames):
                sharp = next(sharp_frames)
                for kind, img in (('sharp', sharp), ('blur', cv2.GaussianBlur(sharp, (7, 7), 2))):
                    os.makedirs(root / split / sequence / kind, exist_ok=True)
                    cv2.imwrite(str(root / split / sequence / kind / f'{f:06d}.png'), img)
    return root


def test_gopro_train_crops_and_whole_test_pairs(tmp_path):
    root = gopro_like(tmp_path / 'GOPRO_Large')
    counts = pairs.prepare_gopro(str(root), str(tmp_path / 'GoPro'), patch=64, step=32)
    # 96 x 160 with 64-pixel crops every 32: rows 0, 32; columns 0, 32, 64, 96
    assert counts == {'train': 4 * 2 * 4, 'test': 4}
    train = lmdb_shapes(str(tmp_path / 'GoPro/train/blur_crops.lmdb'))
    assert 'GOPR0372_07_00_000000_s001' in train and set(train.values()) == {(64, 64, 3)}
    test = lmdb_shapes(str(tmp_path / 'GoPro/test/target.lmdb'))
    assert set(test.values()) == {(96, 160, 3)}
    blurred = image_from_lmdb(str(tmp_path / 'GoPro/test/input.lmdb'), 'GOPR0384_11_01_000001')
    source = cv2.imread(str(root / 'test/GOPR0384_11_01/blur/000001.png'))
    assert np.array_equal(blurred, source)
    dataset = PairedImageDataset({
        'dataroot_gt': str(tmp_path / 'GoPro/train/sharp_crops.lmdb'),
        'dataroot_lq': str(tmp_path / 'GoPro/train/blur_crops.lmdb'),
        'io_backend': {'type': 'lmdb'}, 'phase': 'train', 'scale': 1, 'gt_size': 48, 'use_hflip': True,
        'use_rot': True})
    assert dataset[0]['gt'].shape == dataset[0]['lq'].shape == (3, 48, 48)


def test_gopro_unmatched_frames_are_an_error(tmp_path):
    root = gopro_like(tmp_path / 'GOPRO_Large')
    os.remove(root / 'train/GOPR0372_07_00/sharp/000001.png')
    with pytest.raises(ValueError, match='do not pair up'):
        pairs.prepare_gopro(str(root), str(tmp_path / 'GoPro'))


def test_rain13k_train_and_the_test_sets_present(tmp_path, capsys):
    clean = photographs(3, (40, 60))
    streaks = np.zeros((40, 60, 3), np.uint8)
    streaks[:, ::7] = 80  # vertical "rain"
    for folder in ('train/Rain13K', 'test/Rain100L'):
        for kind in ('input', 'target'):
            os.makedirs(tmp_path / 'Datasets' / folder / kind)
            for i, img in enumerate(clean):
                rainy = cv2.add(img, streaks) if kind == 'input' else img
                cv2.imwrite(str(tmp_path / 'Datasets' / folder / kind / f'{i}.png'), rainy)
    counts = pairs.prepare_rain13k(str(tmp_path / 'Datasets'), str(tmp_path / 'Rain13K'))
    assert counts == {'Rain13K train': 3, 'Rain100L': 3}
    assert 'skipped: Test100, Rain100H, Test2800, Test1200' in capsys.readouterr().out
    assert set(lmdb_shapes(str(tmp_path / 'Rain13K/test/Rain100L/input.lmdb'))) == {'0', '1', '2'}
