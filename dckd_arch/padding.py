"""Padding inputs at the bottom and right to sizes a network accepts (its output is cropped back)."""
from torch.nn import functional as F


def pad_bottom_right(images, pad_h, pad_w):
    """Reflect-pad `pad_h` rows and `pad_w` columns (replicate when the image is too small to reflect)."""
    if not (pad_h or pad_w):
        return images
    height, width = images.shape[-2:]
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


def pad_to_multiple(images, multiple):
    """Pad so that height and width are multiples of `multiple`."""
    height, width = images.shape[-2:]
    return pad_bottom_right(images, (-height) % multiple, (-width) % multiple)
