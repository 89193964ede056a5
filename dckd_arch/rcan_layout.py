"""Official RCAN checkpoints in BasicSR's `RCAN` layout (used by teachers and by dckd-convert-rcan).

The released RCAN teachers (yulunzhang/RCAN, `RCAN_BIX2/3/4.pt`) are flat EDSR-PyTorch state dicts:
other key names (`head.0`, `body.g.body.b.body.3.conv_du.0`, `tail.0.0`...), no `params` key, and two
1x1 mean-shift convs (`sub_mean`, `add_mean`) on images in [0, 255]. BasicSR's `RCAN` has no such
layers: it subtracts `rgb_mean` and scales by `img_range` itself, on images in [0, 1]. The mean-shift
tensors are therefore checked to encode exactly that (std 1, rgb_range 255, DIV2K mean) and dropped;
every other tensor is renamed, unchanged. The network options are read off the keys and shapes.
"""
import re

import torch

RGB_RANGE = 255.
RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean; RCAN's default and BasicSR RCAN's default
# Float32 round-off of 255 * mean is ~1e-5; 1e-3 on the [0, 255] scale is still < 1/250 of a grey level.
MEAN_SHIFT_ATOL = 1e-3

_MEAN_SHIFT_SIGNS = {'sub_mean': -1., 'add_mean': 1.}

# (official pattern, BasicSR name, kind) - tried in this order, anchored; kind drives the structure checks.
_RULES = [
    (r'head\.0\.(weight|bias)', 'conv_first.{0}', 'head'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.0\.(weight|bias)', 'body.{0}.residual_group.{1}.rcab.0.{2}', 'rcab'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.2\.(weight|bias)', 'body.{0}.residual_group.{1}.rcab.2.{2}', 'rcab'),
    # channel attention: BasicSR keeps the average pool inside the Sequential, so indices shift by one
    (r'body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.(weight|bias)',
     'body.{0}.residual_group.{1}.rcab.3.attention.1.{2}', 'squeeze'),
    (r'body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.(weight|bias)',
     'body.{0}.residual_group.{1}.rcab.3.attention.3.{2}', 'rcab'),
    (r'body\.(\d+)\.body\.(\d+)\.(weight|bias)', 'body.{0}.conv.{2}', 'group_tail'),  # index must be num_block
    (r'body\.(\d+)\.(weight|bias)', 'conv_after_body.{1}', 'body_tail'),  # index must be num_group
    (r'tail\.0\.(\d+)\.(weight|bias)', 'upsample.{0}.{1}', 'upsample'),
    (r'tail\.1\.(weight|bias)', 'conv_last.{0}', 'last'),
]
_RULES = [(re.compile(pattern + r'\Z'), target, kind) for pattern, target, kind in _RULES]


def is_official_rcan(state_dict):
    """True for the official (EDSR-PyTorch style) RCAN layout; False for BasicSR's, and for official EDSR
    (same `head`/`sub_mean` keys, but no channel attention)."""
    return (isinstance(state_dict, dict) and 'head.0.weight' in state_dict and 'sub_mean.weight' in state_dict
            and any('.conv_du.' in key for key in state_dict))


def _fmt(values):
    return '(' + ', '.join(f'{float(v):.7g}' for v in values) + ')'


def _check_mean_shift(state_dict):
    """Raise ValueError unless sub_mean/add_mean are RCAN's MeanShift(255, DIV2K mean, std 1, sign -1/+1)."""
    expected_shift = torch.tensor(RGB_MEAN, dtype=torch.float64) * RGB_RANGE
    for name, sign in _MEAN_SHIFT_SIGNS.items():
        if f'{name}.weight' not in state_dict or f'{name}.bias' not in state_dict:
            raise ValueError(f'{name}.weight/{name}.bias missing: not a complete official RCAN state dict')
        if tuple(state_dict[f'{name}.weight'].shape) != (3, 3, 1, 1) or state_dict[f'{name}.bias'].numel() != 3:
            raise ValueError(f'{name} is not a 3->3 1x1 conv: weight {tuple(state_dict[f"{name}.weight"].shape)}')
        weight = state_dict[f'{name}.weight'].detach().double().reshape(3, 3)
        bias = state_dict[f'{name}.bias'].detach().double().reshape(3)
        diagonal = torch.diagonal(weight)
        off_diagonal = (weight - torch.diag(diagonal)).abs().max()
        # MeanShift: weight = eye(3) / std, bias = sign * rgb_range * mean / std
        std = 1 / diagonal
        shift = sign * bias * std  # rgb_range * mean
        if (off_diagonal > 1e-5 or (diagonal - 1).abs().max() > 1e-5
                or (shift - expected_shift).abs().max() > MEAN_SHIFT_ATOL):
            mixing = f', and mixes channels (off-diagonal weight up to {off_diagonal:.3g})' if off_diagonal else ''
            raise ValueError(
                f'{name} encodes std {_fmt(std)} and rgb_range*mean {_fmt(shift)} '
                f'(mean {_fmt(shift / RGB_RANGE)} if rgb_range is 255){mixing}; BasicSR RCAN with img_range=255 '
                f'and rgb_mean={_fmt(RGB_MEAN)} needs std (1, 1, 1) and rgb_range*mean {_fmt(expected_shift)}. '
                'This checkpoint was trained with another rgb_range/mean/std and cannot be converted as is.')


def official_to_basicsr(state_dict):
    """Rename an official RCAN state dict to BasicSR `RCAN` keys.

    Returns (basicsr_state_dict, info): tensors are the official ones (not copied), the 4 mean-shift tensors
    are checked and dropped, and `info` holds the BasicSR network options (`type`, `num_feat`, `num_group`,
    `num_block`, `squeeze_factor`, `upscale`, `img_range`, `rgb_mean`...), ready for `network_t`.
    Raises ValueError on unknown or missing keys, an inconsistent structure, or another mean-shift.
    """
    if not is_official_rcan(state_dict):
        raise ValueError('not an official RCAN state dict (expected head.0.weight, sub_mean.weight and '
                         f'channel-attention conv_du keys); first keys: {list(state_dict)[:5]}')
    _check_mean_shift(state_dict)

    converted, found, unknown = {}, {kind: [] for _, _, kind in _RULES}, []
    for key, tensor in state_dict.items():
        if key.split('.')[0] in _MEAN_SHIFT_SIGNS:
            continue
        for pattern, target, kind in _RULES:
            match = pattern.match(key)
            if match:
                converted[target.format(*match.groups())] = tensor
                found[kind].append((match.groups(), tensor))
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f'{len(unknown)} keys of no official RCAN layer: {unknown[:5]}')

    head = state_dict['head.0.weight']
    num_feat, num_in_ch = head.shape[:2]
    groups = sorted({int(groups[0]) for groups, _ in found['rcab']})
    num_group = len(groups)
    num_block = len({int(groups[1]) for groups, _ in found['rcab']})
    body_tail = {int(groups[0]) for groups, _ in found['body_tail']}
    group_tails = {(int(groups[0]), int(groups[1])) for groups, _ in found['group_tail']}
    if groups != list(range(num_group)) or body_tail != {num_group}:
        raise ValueError(f'residual groups {groups} and trunk conv body.{sorted(body_tail)} do not form '
                         f'RCAN\'s body.0..body.{{G-1}} + body.{{G}}')
    if group_tails != {(g, num_block) for g in groups}:
        raise ValueError(f'group-tail convs {sorted(group_tails)} are not body.g.body.{num_block} for every group')
    squeezed = {tuple(tensor.shape)[0] for groups, tensor in found['squeeze'] if groups[2] == 'weight'}
    if len(squeezed) != 1 or num_feat % next(iter(squeezed)):
        raise ValueError(f'channel-attention widths {sorted(squeezed)} do not divide num_feat {num_feat}')
    squeeze_factor = num_feat // next(iter(squeezed))

    upsample = sorted((int(groups[0]), tensor.shape[0]) for groups, tensor in found['upsample']
                      if groups[1] == 'weight')
    if len(upsample) == 1 and upsample[0] == (0, 9 * num_feat):
        upscale = 3
    elif upsample and upsample == [(2 * i, 4 * num_feat) for i in range(len(upsample))]:
        upscale = 2**len(upsample)
    else:
        raise ValueError(f'upsampler convs (index, out channels) {upsample} are neither x3 nor x2^n')

    info = dict(type='RCAN', num_in_ch=int(num_in_ch), num_out_ch=int(state_dict['tail.1.weight'].shape[0]),
                num_feat=int(num_feat), num_group=num_group, num_block=num_block, squeeze_factor=squeeze_factor,
                upscale=upscale, res_scale=1, img_range=RGB_RANGE, rgb_mean=list(RGB_MEAN))
    expected = set(_basicsr_keys(info))
    missing = sorted(expected - set(converted))
    if missing or len(converted) != len(expected):
        raise ValueError(f'incomplete official RCAN state dict: {len(missing)} BasicSR keys would be missing, '
                         f'e.g. {missing[:5]}')
    return converted, info


def _basicsr_keys(info):
    keys = ['conv_first']
    for g in range(info['num_group']):
        for b in range(info['num_block']):
            keys += [f'body.{g}.residual_group.{b}.rcab.{i}' for i in ('0', '2', '3.attention.1', '3.attention.3')]
        keys.append(f'body.{g}.conv')
    keys.append('conv_after_body')
    if info['upscale'] == 3:
        keys.append('upsample.0')
    else:
        keys += [f'upsample.{2 * i}' for i in range(info['upscale'].bit_length() - 1)]
    keys.append('conv_last')
    return [f'{key}.{p}' for key in keys for p in ('weight', 'bias')]
