"""HR images -> paired (GT, bicubic LQ) sub-images, as BasicSR's DIV2K preparation makes them."""
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
    window flush with the end (BasicSR's scheme)."""
    if length < patch:
        return []
    positions = list(range(0, length - patch + 1, step))
    if positions[-1] != length - patch:
        positions.append(length - patch)
    return positions


def paired_subimages(name, hr, scale, patch=None, step=None):
    """Yield (key, gt, lq) for one HR image: the LQ is made from the whole mod-cropped image,
    then GT and LQ are cut at matching positions. `patch=None` keeps the whole image."""
    gt = mod_crop(hr, scale)
    lq = matlab_bicubic(gt, 1 / scale)
    if patch is None:
        yield name, gt, lq
        return
    if patch % scale or step % scale:
        raise ValueError(f'patch {patch} and step {step} must be multiples of the scale {scale}')
    index = 0
    for y in crop_positions(gt.shape[0], patch, step):
        for x in crop_positions(gt.shape[1], patch, step):
            index += 1
            yield (f'{name}_s{index:03d}', gt[y:y + patch, x:x + patch],
                   lq[y // scale:(y + patch) // scale, x // scale:(x + patch) // scale])
