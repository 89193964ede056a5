"""Restoration data sets that ship as pairs (scale 1): GoPro (deblurring), Rain13K (deraining)."""
import os

from tqdm import tqdm

from dckd.paired_data import crop_pairs
from dckd_data.image_files import check_pairs, list_images, lmdb_shapes, read_bgr, stem
from .outputs import already_prepared, open_writer

RAIN_TEST_SETS = ('Test100', 'Rain100H', 'Rain100L', 'Test2800', 'Test1200')


def matched_files(input_folder, target_folder, key_prefix=''):
    """[(key, input path, target path)] paired by file stem; unmatched files are an error."""
    inputs = {stem(p): p for p in list_images(input_folder)}
    targets = {stem(p): p for p in list_images(target_folder)}
    if set(inputs) != set(targets):
        only = sorted(set(inputs) ^ set(targets))
        raise ValueError(f'{input_folder} and {target_folder} do not pair up: {len(only)} unmatched, e.g. {only[:3]}')
    return [(f'{key_prefix}{name}', inputs[name], targets[name]) for name in sorted(inputs)]


def write_given_pairs(pairs, input_path, target_path, patch=None, step=None, overwrite=False, what=''):
    """(key, input, target) files -> two LMDBs of matching (optionally cropped) images, checked."""
    if not already_prepared([input_path, target_path], overwrite):
        count = 0
        with open_writer(input_path, overwrite) as inputs, open_writer(target_path, overwrite) as targets:
            for key, input_file, target_file in tqdm(pairs, unit='pair', desc=what):
                target, degraded = read_bgr(target_file), read_bgr(input_file)
                if target.shape != degraded.shape:
                    raise ValueError(f'{input_file} is {degraded.shape[:2]} but {target_file} is {target.shape[:2]}')
                for crop_key, target_crop, degraded_crops in crop_pairs(key, target, {1: degraded}, patch, step):
                    targets.put(crop_key, target_crop)
                    inputs.put(crop_key, degraded_crops[1])
                    count += 1
    else:
        print(f'{what}: outputs exist, checking them (pass --overwrite to rebuild)')
        count = None
    return check_pairs(lmdb_shapes(target_path), lmdb_shapes(input_path), 1, what, count)


def prepare_gopro(root, out_folder, patch=512, step=256, overwrite=False):
    """GOPRO_Large (train|test/<sequence>/blur|sharp/*.png) -> NAFNet's LMDB layout:
    train/blur_crops.lmdb + sharp_crops.lmdb (patch x patch crops), test/input.lmdb + target.lmdb."""
    counts = {}
    for split in ('train', 'test'):
        split_folder = os.path.join(root, split)
        if not os.path.isdir(split_folder):
            raise FileNotFoundError(f'{split_folder} not found: point at the GOPRO_Large folder (train/ and test/)')
        pairs = []
        for sequence in sorted(os.listdir(split_folder)):
            folder = os.path.join(split_folder, sequence)
            pairs += matched_files(os.path.join(folder, 'blur'), os.path.join(folder, 'sharp'), f'{sequence}_')
        if split == 'train':
            outputs = ('blur_crops.lmdb', 'sharp_crops.lmdb')
            crop = dict(patch=patch, step=step)
        else:
            outputs, crop = ('input.lmdb', 'target.lmdb'), {}
        paths = [os.path.join(out_folder, split, name) for name in outputs]
        counts[split] = write_given_pairs(pairs, *paths, overwrite=overwrite, what=f'GoPro {split}', **crop)
    return counts


def prepare_rain13k(root, out_folder, overwrite=False):
    """Restormer's deraining layout (train/Rain13K/input|target, test/<set>/input|target) ->
    train/input.lmdb + target.lmdb and test/<set>/input.lmdb + target.lmdb, whole images."""
    jobs = [('Rain13K train', os.path.join(root, 'train', 'Rain13K'), os.path.join(out_folder, 'train'))]
    missing = []
    for name in RAIN_TEST_SETS:
        folder = os.path.join(root, 'test', name)
        if os.path.isdir(folder):
            jobs.append((name, folder, os.path.join(out_folder, 'test', name)))
        else:
            missing.append(name)
    if not os.path.isdir(jobs[0][1]):
        raise FileNotFoundError(f'{jobs[0][1]} not found: point at the folder holding train/Rain13K and test/')
    if missing:
        print(f'test sets not found under {os.path.join(root, "test")}, skipped: {", ".join(missing)}')
    counts = {}
    for what, folder, out in jobs:
        pairs = matched_files(os.path.join(folder, 'input'), os.path.join(folder, 'target'))
        counts[what] = write_given_pairs(pairs, os.path.join(out, 'input.lmdb'), os.path.join(out, 'target.lmdb'),
                                         overwrite=overwrite, what=what)
    return counts
