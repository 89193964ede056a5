"""Super-resolution data: DIV2K sub-image LMDBs, benchmark folders, and any folder of HR images."""
import functools
import multiprocessing
import os

import numpy as np
from tqdm import tqdm

from dckd.paired_data import bicubic_pairs
from dckd_data.image_files import check_pairs, list_images, read_bgr, shapes, stem
from .outputs import already_prepared, open_writer


def _pairs_of(path, scales, patch, step, mod):
    return list(bicubic_pairs(stem(path), read_bgr(path), scales, patch, step, mod))


def write_bicubic_pairs(hr_paths, gt_path, lq_paths, patch=None, step=None, overwrite=False, workers=1, what='',
                        mod=None):
    """HR images -> GT and one LQ output per scale (`lq_paths`: {scale: path}), then checked.

    Returns the number of pairs. When every output exists already it only checks them.
    """
    scales = sorted(lq_paths)
    outputs = [gt_path] + [lq_paths[s] for s in scales]
    if not already_prepared(outputs, overwrite):
        writers = {'gt': open_writer(gt_path, overwrite), **{s: open_writer(lq_paths[s], overwrite) for s in scales}}
        expected = 0
        make = functools.partial(_pairs_of, scales=scales, patch=patch, step=step, mod=mod)
        # spawn, not fork: forking after torch/BLAS started their thread pools can deadlock
        with multiprocessing.get_context('spawn').Pool(workers) if workers > 1 else _InProcess() as pool:
            for pairs in tqdm(pool.imap(make, hr_paths), total=len(hr_paths), unit='image', desc=what):
                for key, gt, lqs in pairs:
                    writers['gt'].put(key, gt)
                    for scale, lq in lqs.items():
                        writers[scale].put(key, lq)
                    expected += 1
        for writer in writers.values():
            writer.close()  # only after every image is in: an error leaves <path>.partial behind
    else:
        print(f'{what}: outputs exist, checking them (pass --overwrite to rebuild)')
        expected = None
    gt_shapes = shapes(gt_path)
    for scale in scales:
        count = check_pairs(gt_shapes, shapes(lq_paths[scale]), scale, f'{what} x{scale}', expected)
    return count


class _InProcess:
    """`Pool`'s imap without worker processes (workers=1)."""

    def imap(self, function, items):
        return map(function, items)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        pass


def prepare_div2k(hr_folder, out_folder, scales=(2, 3, 4), patch=480, step=240, overwrite=False, workers=1):
    """DIV2K HR folder -> DIV2K_train_HR_sub.lmdb and DIV2K_train_LR_bicubic_X{s}_sub.lmdb.

    Sub-images are named `0001_s001` ... as in BasicSR's meta_info for DIV2K800 sub-images; HR is
    mod-cropped to the lcm of the scales first, so one HR LMDB serves every scale.
    """
    lcm = int(np.lcm.reduce(list(scales)))
    if patch % lcm or step % lcm:
        raise ValueError(f'--patch {patch} and --step {step} must be multiples of {lcm} for scales {list(scales)}')
    gt_path = os.path.join(out_folder, 'DIV2K_train_HR_sub.lmdb')
    lq_paths = {s: os.path.join(out_folder, f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb') for s in scales}
    return write_bicubic_pairs(list_images(hr_folder), gt_path, lq_paths, patch, step, overwrite, workers, 'DIV2K')


def prepare_benchmark(hr_folder, out_root, name, scales=(2, 3, 4), mod=12, fmt='folder', overwrite=False):
    """Benchmark HR images -> <out_root>/<name>/GTmod<mod> and LRbicx<s> (PNG folders or LMDBs)."""
    if any(mod % s for s in scales):
        raise ValueError(f'--mod {mod} must be a multiple of every scale {list(scales)}')
    suffix = '.lmdb' if fmt == 'lmdb' else ''
    gt_path = os.path.join(out_root, name, f'GTmod{mod}{suffix}')
    lq_paths = {s: os.path.join(out_root, name, f'LRbicx{s}{suffix}') for s in scales}
    return write_bicubic_pairs(list_images(hr_folder), gt_path, lq_paths, overwrite=overwrite, what=name, mod=mod)


def prepare_folder(hr_folder, out_folder, scale, patch=None, step=None, overwrite=False, workers=1):
    """Any folder of HR images -> <out>/gt.lmdb and <out>/lq_x<scale>.lmdb, optionally as sub-images."""
    if (patch is None) != (step is None):
        raise ValueError('--patch and --step go together')
    gt_path = os.path.join(out_folder, 'gt.lmdb')
    lq_paths = {scale: os.path.join(out_folder, f'lq_x{scale}.lmdb')}
    return write_bicubic_pairs(list_images(hr_folder), gt_path, lq_paths, patch, step, overwrite, workers,
                               os.path.basename(os.path.normpath(hr_folder)))
