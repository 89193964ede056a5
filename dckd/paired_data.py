"""Paired sub-images: GT and LQ cut at matching positions (BasicSR's sub-image scheme)."""
import numpy as np

from basicsr.utils.matlab_functions import imresize


def mod_crop(img, scale):
    """Crop bottom/right so that height and width are multiples of `scale`."""
    height, width = img.shape[:2]
    return img[:height - height % scale, :width - width % scale]


def matlab_bicubic(img_uint8, factor):
    """MATLAB-compatible bicubic resizing by `factor` (BasicSR's imresize), uint8 in and out."""
    resized = imresize(img_uint8.astype(np.float64) / 255., factor)
    return np.clip(np.round(resized * 255), 0, 255).astype(np.uint8)


def crop_positions(length, patch, step):
    """Top-left offsets covering [0, length) with `patch`-sized windows every `step`, the last
    window flush with the end (BasicSR's extract_subimages with thresh_size 0)."""
    if length < patch:
        return []
    positions = list(range(0, length - patch + 1, step))
    if positions[-1] != length - patch:
        positions.append(length - patch)
    return positions


def crop_pairs(name, gt, lqs, patch=None, step=None):
    """Yield (key, gt_crop, {scale: lq_crop}) for GT and its LQ images ({scale: image}).

    Keys are `<name>_s001`, `_s002`, ... in row-major order (BasicSR's naming); `patch=None`
    keeps the whole images under `name`. Patch and step must be multiples of every scale.
    """
    if patch is None:
        yield name, gt, dict(lqs)
        return
    for scale in lqs:
        if patch % scale or step % scale:
            raise ValueError(f'patch {patch} and step {step} must be multiples of the scale {scale}')
    index = 0
    for y in crop_positions(gt.shape[0], patch, step):
        for x in crop_positions(gt.shape[1], patch, step):
            index += 1
            crops = {s: lq[y // s:(y + patch) // s, x // s:(x + patch) // s] for s, lq in lqs.items()}
            yield f'{name}_s{index:03d}', gt[y:y + patch, x:x + patch], crops


def bicubic_pairs(name, hr, scales, patch=None, step=None, mod=None):
    """SR pairs: HR mod-cropped to `mod` (default: the lcm of `scales`), MATLAB-bicubic LQ for
    each scale made from the whole image, then cut with `crop_pairs`."""
    gt = mod_crop(hr, mod or int(np.lcm.reduce(list(scales))))
    return crop_pairs(name, gt, {s: matlab_bicubic(gt, 1 / s) for s in scales}, patch, step)


def paired_subimages(name, hr, scale, patch=None, step=None):
    """Single-scale `bicubic_pairs`: yields (key, gt, lq)."""
    for key, gt, lqs in bicubic_pairs(name, hr, [scale], patch, step):
        yield key, gt, lqs[scale]
