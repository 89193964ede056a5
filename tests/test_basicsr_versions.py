"""BasicSR 1.3.4.9 and 1.4.2: what differs between them is provided by dckd (dckd_utils/basicsr_versions.py),
each piece checked here against the version that has it."""
import pytest
import torch

import basicsr
from dckd_utils.basicsr_versions import SUPPORTED, psnr_rgb


def test_the_installed_basicsr_is_a_supported_version():
    assert basicsr.__version__ in SUPPORTED


def test_psnr_rgb_is_basicsr_1_4_psnr_of_tensors():
    psnr_ssim = pytest.importorskip('basicsr.metrics.psnr_ssim')
    if not hasattr(psnr_ssim, 'calculate_psnr_pt'):
        pytest.skip(f'basicsr {basicsr.__version__} has no calculate_psnr_pt')
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 20, 17, generator=generator), torch.rand(3, 3, 20, 17, generator=generator)
    for border in (0, 2):
        assert torch.equal(psnr_rgb(a, b, border), psnr_ssim.calculate_psnr_pt(a, b, crop_border=border))


def test_psnr_rgb_by_hand():
    """An error of 0.1 everywhere: MSE 0.01, PSNR 10 log10(1 / 0.01) = 20 dB (to the 1e-8 guard)."""
    gt = torch.zeros(1, 3, 6, 6)
    assert psnr_rgb(gt + 0.1, gt, 1).item() == pytest.approx(20.0, abs=1e-5)
