"""The teacher checked once before the student trains: is it better than doing nothing?

A teacher loaded with the wrong scale, range, window or weights restores worse than bicubic
upsampling (or, at scale 1, than the degraded input itself), and the student distils that for
hours. `check_teacher` runs the teacher once over a few pairs (the first validation set) and
compares its PSNR (RGB, `scale` border pixels cropped) with that baseline's.
"""
import torch
from torch.nn import functional as F

from dckd_utils import random_states
from dckd_utils.basicsr_versions import psnr_rgb
from dckd_arch.padding import pad_to_multiple
from .restoration_model import TrainingStopped

MARGIN_DB = 0.5  # a teacher this far below the baseline stops the run


class TeacherWorseThanBaseline(TrainingStopped):
    """The teacher restores worse than the baseline; the message lists the usual causes."""


def baseline(lq, scale):
    """Bicubic upsampling for SR; the degraded input itself at scale 1."""
    if scale == 1:
        return lq
    return F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False).clamp(0, 1)


@torch.no_grad()
def restore(net, lq, scale, window=None):
    """net(lq), padded to whole windows for windowed networks and cropped back."""
    padded = pad_to_multiple(lq, window) if window else lq
    return net(padded)[..., :lq.shape[-2] * scale, :lq.shape[-1] * scale].clamp(0, 1)


def teacher_and_baseline_psnr(net, pairs, scale, device, window=None):
    """Mean PSNR of the teacher and of the baseline over (lq, gt) pairs of (C, H, W) tensors; one
    forward pass per pair. Every random state is left as it was."""
    teacher, reference, count = 0.0, 0.0, 0
    with random_states.preserved():
        for lq, gt in pairs:
            lq, gt = lq[None].to(device), gt[None].to(device)
            teacher += psnr_rgb(restore(net, lq, scale, window), gt, crop_border=scale).item()
            reference += psnr_rgb(baseline(lq, scale), gt, crop_border=scale).item()
            count += 1
    return teacher / count, reference / count, count


def check_teacher(net, pairs, scale, device, what, window=None):
    """The log line of the check, or TeacherWorseThanBaseline."""
    teacher, reference, count = teacher_and_baseline_psnr(net, pairs, scale, device, window)
    name = 'bicubic' if scale > 1 else 'the degraded input'
    summary = (f'Teacher check on {what} ({count} images, RGB PSNR, border {scale}): teacher {teacher:.2f} dB, '
               f'{name} {reference:.2f} dB')
    if teacher < reference - MARGIN_DB:
        raise TeacherWorseThanBaseline(
            f'{summary}: the teacher is {reference - teacher:.2f} dB worse than {name}, so the student would '
            'learn to be worse too. Usual causes: a checkpoint for another scale; img_range or rgb_mean not the '
            'ones it was trained with; window_size or img_size; param_key_t (params or params_ema); a '
            'checkpoint of another network. To train with it anyway, set train.teacher_check: false.')
    return summary
