"""Checks that fail fast, naming the option, before any network is built or data is read."""
import os

from .frozen import path_rewritten_by_resume


class OptionError(ValueError):
    """An options-file value that cannot work; the message names the key and the fix."""


def check_checkpoint(opt, network_key, what, required=True):
    path_key = f'pretrain_{network_key}'
    if path_rewritten_by_resume(opt, network_key):
        return  # restored from the training state, see KDModel.resume_training
    path = opt['path'].get(path_key)
    if path is None:
        if required:
            raise OptionError(f'path.{path_key} is not set: {what} needs a pretrained checkpoint.')
        return
    if not os.path.isfile(path):
        raise OptionError(f'path.{path_key}: {what} checkpoint not found: {path}. Download it to that path '
                          '(see README, "Pretrained checkpoints") or correct the path.')


def _network_scale(network_opt):
    for key in ('upscale', 'scale'):
        if key in network_opt:
            return key, network_opt[key]
    return None, None


def check_scales(opt, network_keys):
    """Teacher, student and the data must agree on the scale."""
    scale = opt.get('scale', 1)
    for network_key in network_keys:
        key, value = _network_scale(opt[network_key])
        if key is not None and value != scale:
            raise OptionError(f'{network_key}.{key} = {value} does not match scale = {scale}: teacher, student '
                              'and data must use the same scale.')


def check_windows(opt, network_keys):
    """Training patches of windowed networks (SwinIR) must be whole windows."""
    train_set = opt.get('datasets', {}).get('train', {})
    if 'gt_size' not in train_set:
        return
    scale = opt.get('scale', 1)
    lq_size = train_set['gt_size'] // scale
    for network_key in network_keys:
        window = opt[network_key].get('window_size')
        if window and lq_size % window:
            raise OptionError(f'datasets.train.gt_size / scale = {train_set["gt_size"]} / {scale} = {lq_size} is not '
                              f'a multiple of {network_key}.window_size = {window}; choose gt_size = '
                              f'{scale} * a multiple of {window}.')


def check_choice(value, choices, option_name):
    if value not in choices:
        raise OptionError(f"{option_name} must be one of {list(choices)}, got '{value}'")
