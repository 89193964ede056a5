"""Prepared benchmarks as (key, LQ, GT) pairs, and photographs without ground truth, from image
folders or LMDBs."""
import os

from dckd_data.image_files import read_images


def resolve(spec, scale, root='datasets'):
    """`NAME=GT,LQ` (explicit paths), or a NAME prepared by `dckd-prepare benchmark` under `root`
    (GTmod12 + LRbicx<scale>, folders or LMDBs). Returns (name, gt path, lq path)."""
    name, sep, paths = spec.partition('=')
    if sep:
        gt, _, lq = paths.partition(',')
        if not lq:
            raise ValueError(f'--benchmark {spec}: expected NAME=GT_PATH,LQ_PATH')
    else:
        for suffix in ('', '.lmdb'):
            gt = os.path.join(root, name, f'GTmod12{suffix}')
            lq = os.path.join(root, name, f'LRbicx{scale}{suffix}')
            if os.path.exists(gt) and os.path.exists(lq):
                break
        else:
            raise FileNotFoundError(f'--benchmark {name}: no {root}/{name}/GTmod12 and LRbicx{scale}; prepare it with '
                                    f'`dckd-prepare benchmark <HR folder> --name {name}` or give NAME=GT,LQ')
    for path in (gt, lq):
        if not os.path.exists(path):
            raise FileNotFoundError(f'--benchmark {spec}: {path} not found')
    return name, gt, lq


def load_pairs(gt_path, lq_path):
    gts, lqs = read_images(gt_path), read_images(lq_path)
    if set(gts) != set(lqs):
        raise ValueError(f'{gt_path} and {lq_path} hold different images: {sorted(set(gts) ^ set(lqs))[:3]}')
    return [(key, lqs[key], gts[key]) for key in sorted(gts)]


def resolve_photos(spec):
    """`NAME=PATH`: a folder (or LMDB) of low-quality photographs, no ground truth. (name, path)."""
    name, sep, path = spec.partition('=')
    if not (sep and name and path):
        raise ValueError(f'--photos {spec}: expected NAME=FOLDER (a folder or LMDB of photographs)')
    if not os.path.exists(path):
        raise FileNotFoundError(f'--photos {spec}: {path} not found')
    return name, path


def load_photos(path):
    """{key: BGR image} of the photographs at `path`."""
    photos = read_images(path)
    if not photos:
        raise ValueError(f'--photos: no images in {path}')
    return photos
