"""The degradations behind the dynamic negatives: shapes, value ranges, per-sample parameters."""
import pytest
import torch

from dckd_utils.schema import OptionError
from dckd_models.negatives import NegativeDegrader
from dckd_models.options import NEGATIVES


def degrader(seed=0, **options):
    return NegativeDegrader(NEGATIVES.parse(options, 'train.negatives'), torch.Generator().manual_seed(seed))


GRAY = torch.full((64, 3, 32, 32), 0.5)


def test_noise_keeps_shape_and_range_and_sigma_within_1_to_30_over_255():
    out = degrader()(GRAY)
    assert out.shape == GRAY.shape and out.min() >= 0 and out.max() <= 1
    sigmas = (out - GRAY).flatten(1).std(dim=1)
    assert sigmas.min() > 0.5 / 255 and sigmas.max() < 33 / 255
    assert sigmas.max() - sigmas.min() > 10 / 255  # drawn per sample, not once per batch


def test_gray_noise_is_identical_on_all_channels():
    out = degrader(noise={'gray_prob': 1.0})(GRAY)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    colour = degrader(noise={'gray_prob': 0.0})(GRAY)
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_about_half_the_samples_get_gray_noise_by_default():
    out = degrader()(torch.full((400, 3, 8, 8), 0.5))
    gray = (out[:, 0] == out[:, 1]).flatten(1).all(dim=1).float().mean().item()
    assert 0.4 < gray < 0.6


def test_blur_kernels_are_normalised_odd_sized_and_per_sample():
    impulse = torch.zeros(32, 1, 23, 23)
    impulse[:, :, 11, 11] = 1
    out = degrader(probs={'noise': 0.0, 'blur': 1.0})(impulse)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(32), atol=1e-5)
    support = out[:, 0] > 0
    rows, cols = support.any(dim=2), support.any(dim=1)
    heights, widths = rows.sum(1), cols.sum(1)
    assert set(heights.tolist()) <= {3, 5, 7, 9, 11} and set(widths.tolist()) <= {3, 5, 7, 9, 11}
    assert len(set(zip(heights.tolist(), widths.tolist()))) > 3


def test_blur_keeps_a_constant_image_constant():
    out = degrader(probs={'noise': 0.0, 'blur': 1.0})(torch.full((4, 3, 16, 16), 0.3))
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-6)


def test_resize_returns_to_the_input_size_within_range():
    images = torch.rand(8, 3, 24, 24)
    out = degrader(probs={'noise': 0.0, 'resize': 1.0})(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)


def test_mix_applies_all_three():
    out = degrader(probs={'noise': 1.0, 'blur': 1.0, 'resize': 1.0})(torch.rand(4, 3, 24, 24))
    assert out.shape == (4, 3, 24, 24) and out.min() >= 0 and out.max() <= 1


def test_same_seed_same_negatives():
    assert torch.equal(degrader(seed=3)(GRAY), degrader(seed=3)(GRAY))


@pytest.mark.parametrize('options, message', [
    ({'probs': {'jpeg': 1.0}}, r'train.negatives.probs.jpeg: unknown option; known: blur, noise, resize'),
    ({'blur': {'kernel_range': [2, 11]}}, r'train.negatives.blur.kernel_range must hold two odd sizes'),
    ({'resize': {'modes': ['nearest-exact']}}, r'train.negatives.resize.modes\[0\] must be one of area, bilinear')])
def test_bad_options_are_named(options, message):
    with pytest.raises(OptionError, match=message):
        degrader(**options)
