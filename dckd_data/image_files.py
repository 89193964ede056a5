"""Image folders and LMDBs: reading them, their images' shapes, and whether GT and LQ pair (for the
checks before training, dckd-prepare's checks of what it wrote, and evaluation)."""
import os

import cv2
import lmdb
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def list_images(folder):
    """Sorted image paths of `folder` (not recursive); a clear error when there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'input folder not found: {folder}')
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {folder}')
    return paths


def read_bgr(path):
    """uint8 BGR, three channels (gray images are repeated, as BasicSR's loaders read them)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cannot read image {path}')
    return img


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def lmdb_shapes(path):
    """{key: (h, w, c)} from an LMDB's meta_info.txt, every key checked to be present."""
    shapes = {}
    with open(os.path.join(path, 'meta_info.txt')) as meta:
        for line in meta:
            name, shape, _ = line.split(' ')
            shapes[name.rsplit('.', 1)[0]] = tuple(int(v) for v in shape.strip('()').split(','))
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        missing = [k for k in shapes if txn.get(k.encode()) is None]
    env.close()
    if missing:
        raise ValueError(f'{path}: meta_info lists {len(missing)} key(s) the LMDB lacks, e.g. {missing[:3]}')
    return shapes


def folder_shapes(path):
    """{stem: (h, w, 3)} from the image headers alone (fast on large folders); BasicSR's loaders,
    like read_bgr, read every image with three channels."""
    shapes = {}
    for image_path in list_images(path):
        with Image.open(image_path) as image:
            shapes[stem(image_path)] = (image.height, image.width, 3)
    return shapes


def check_pairs(gt_shapes, lq_shapes, scale, what, expected_count=None):
    """Same keys on both sides, GT = scale x LQ for every pair, and the expected count."""
    if set(gt_shapes) != set(lq_shapes):
        only = sorted(set(gt_shapes) ^ set(lq_shapes))
        raise ValueError(f'{what}: GT and LQ keys differ, e.g. {only[:3]}')
    if expected_count is not None and len(gt_shapes) != expected_count:
        raise ValueError(f'{what}: {len(gt_shapes)} pairs, expected {expected_count}')
    for key, (h, w, _) in gt_shapes.items():
        lh, lw, _ = lq_shapes[key]
        if (h, w) != (lh * scale, lw * scale):
            raise ValueError(f'{what}: {key} GT is {h}x{w}, LQ {lh}x{lw}: not x{scale}')
    return len(gt_shapes)


def shapes(path):
    """{key: (h, w, c)} of an LMDB (from its meta_info, keys checked) or of a folder of images."""
    return lmdb_shapes(path) if path.endswith('.lmdb') else folder_shapes(path)


def read_images(path):
    """{key: BGR image} of an LMDB (one transaction) or of a folder of images."""
    if not path.endswith('.lmdb'):
        return {stem(p): read_bgr(p) for p in list_images(path)}
    keys = sorted(lmdb_shapes(path))
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        images = {k: cv2.imdecode(np.frombuffer(txn.get(k.encode()), np.uint8), cv2.IMREAD_UNCHANGED) for k in keys}
    env.close()
    return images


def image_from_lmdb(path, key):
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        data = txn.get(key.encode())
    env.close()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
