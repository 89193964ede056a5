"""BasicSR 1.3.4.9 (pinned by HAT and other forks) and 1.4.2: what dckd uses that differs.

Everything dckd imports from BasicSR exists in both, except what is listed here, which dckd
provides itself so that one code path serves both versions:

- `basicsr.metrics.psnr_ssim.calculate_psnr_pt` (1.4 only): `psnr_rgb`, the same PSNR on [0, 1]
  tensors (float64, border cropped), checked against 1.4.2's in tests/test_basicsr_versions.py.
"""
import torch

SUPPORTED = ('1.3.4.9', '1.4.2')


def psnr_rgb(img, img2, crop_border):
    """PSNR (dB) per image of (N, C, H, W) tensors in [0, 1], `crop_border` pixels cropped."""
    if img.shape != img2.shape:
        raise ValueError(f'image shapes differ: {tuple(img.shape)} and {tuple(img2.shape)}')
    if crop_border:
        img = img[..., crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[..., crop_border:-crop_border, crop_border:-crop_border]
    mse = (img.double() - img2.double()).pow(2).mean(dim=[1, 2, 3])
    return 10 * torch.log10(1 / (mse + 1e-8))
