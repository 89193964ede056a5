"""The demo's data: colour photographs bundled with scikit-image, as paired x4 LMDBs.

Training uses 96x96 GT sub-images (step 48) of four photographs; validation uses two other
photographs whole, so the reported numbers are on images never trained on.
"""
import os

import cv2

from dckd.lmdb_writer import write_image_lmdb
from dckd.paired_data import paired_subimages

SCALE = 4
TRAIN_IMAGES = ('astronaut', 'coffee', 'hubble_deep_field', 'immunohistochemistry')
HELD_OUT_IMAGES = ('chelsea', 'rocket')
LMDBS = ('train_gt.lmdb', 'train_lq_x4.lmdb', 'val_gt.lmdb', 'val_lq_x4.lmdb')


def skimage_photo_bgr(name):
    import skimage.data
    return cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)


def _write_pairs(folder, split, names, patch, step):
    pairs = [p for name in names for p in paired_subimages(name, skimage_photo_bgr(name), SCALE, patch, step)]
    write_image_lmdb(os.path.join(folder, f'{split}_gt.lmdb'), [(k, gt) for k, gt, _ in pairs])
    write_image_lmdb(os.path.join(folder, f'{split}_lq_x{SCALE}.lmdb'), [(k, lq) for k, _, lq in pairs])
    return len(pairs)


def prepare_demo_data(folder, logger):
    """Create the four LMDBs under `folder` unless all exist already (then they are reused)."""
    present = [os.path.isdir(os.path.join(folder, name)) for name in LMDBS]
    if all(present):
        logger.info(f'Demo data: reusing the LMDBs in {folder}')
        return
    if any(present):
        raise FileExistsError(f'{folder} holds only some of {LMDBS}; remove that folder to rebuild the demo data.')
    os.makedirs(folder, exist_ok=True)
    train = _write_pairs(folder, 'train', TRAIN_IMAGES, patch=96, step=48)
    val = _write_pairs(folder, 'val', HELD_OUT_IMAGES, patch=None, step=None)
    logger.info(f'Demo data: {train} training pairs from {", ".join(TRAIN_IMAGES)}; '
                f'{val} held-out images ({", ".join(HELD_OUT_IMAGES)}) in {folder}')
