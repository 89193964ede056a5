"""Networks built from their options, frozen ones (teacher, VQGAN) frozen for good, and loaded
with errors that name the option and the file."""
import copy
import types

import torch

from basicsr.archs import ARCH_REGISTRY
from dckd_utils.checkpoint import load_checkpoint
from dckd_arch.rcan_layout import is_official_rcan, official_to_basicsr
from dckd_utils.schema import OptionError
from dckd_arch.pretrained_arch import PretrainedModel
from dckd_arch.vqgan_arch import load_vqgan_encoder

# where the networks dckd ships declare their input channels
CHANNEL_KEYS = ('num_in_ch', 'in_chans', 'img_channel', 'inp_channels', 'n_colors')


def build(component, network_key):
    """The network a parsed `network_*` component describes (not BasicSR's build_network, whose log
    line would set up the logger before the run's log file exists); OptionError naming the key
    when its options, or a PretrainedModel's file, do not build it."""
    try:
        return ARCH_REGISTRY.get(component.type)(**copy.deepcopy(component.arguments))
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError, ImportError) as error:
        raise OptionError(f'{network_key}: {component.type} cannot be built from these options: {error}') from error


def _data_channels(parsed):
    """The image channels of the run: the student's declared input channels, else colour images."""
    for key in CHANNEL_KEYS:
        if key in parsed.network_g.arguments:
            return parsed.network_g.arguments[key], f'network_g.{key}'
    return 3, 'the data (colour images)'


def check_detected(net, parsed, network_key):
    """A PretrainedModel must fit the run: the scale of the options, the channels of the student.
    Returns what was detected, for the log (None for other networks)."""
    if not isinstance(net, PretrainedModel):
        return None
    detected, file = net.detected, net.detected['file']
    if detected['scale'] != parsed.scale:
        raise OptionError(f'{network_key}.path: {file} holds a x{detected["scale"]} {detected["architecture"]} model, '
                          f'but the options say scale: {parsed.scale}. Use a x{parsed.scale} model file, or train at '
                          f'x{detected["scale"]} (scale, the student and the data together).')
    channels, where = _data_channels(parsed)
    if (detected['in_channels'], detected['out_channels']) != (channels, channels):
        raise OptionError(f'{network_key}.path: {file} holds a {detected["architecture"]} model with '
                          f'{detected["in_channels"]} input and {detected["out_channels"]} output channels, but '
                          f'{where} has {channels}: teacher and student must read and write the same images.')
    return net.describe()


def _stay_in_eval(net, mode=True):
    return net


def freeze(net):
    """eval mode for good (stochastic depth or dropout in a teacher would make its targets random),
    no gradients for its parameters."""
    net.eval()
    net.requires_grad_(False)
    net.train = types.MethodType(_stay_in_eval, net)
    return net


def checkpoint_source(path, network_key):
    """What the parsed `path:` options say to load into `network_<label>`: path, param key and
    strictness (the teacher's `param_key_t`, `strict_load_t`; defaults where none is declared)."""
    label = network_key[len('network_'):]
    return {
        'path': getattr(path, f'pretrain_{network_key}'),
        'param_key': getattr(path, f'param_key_{label}', 'params'),
        'strict': getattr(path, f'strict_load_{label}', True),
    }


def _not_finite(state):
    return [key for key, value in state.items() if torch.is_tensor(value) and value.is_floating_point()
            and not torch.isfinite(value).all()]


def checkpoint_weights(source, network_key):
    """The state dict `source` (see checkpoint_source) gives `network_key`: a BasicSR checkpoint
    under its `param_key`, or an official RCAN file converted on the fly; every failure an
    OptionError that names the option and the file."""
    file, label = source['path'], network_key[len('network_'):]
    try:
        checkpoint = load_checkpoint(file, 'checkpoint')
    except (RuntimeError, FileNotFoundError) as error:
        raise OptionError(f'path.pretrain_{network_key}: {error}. The file is damaged or not a torch checkpoint '
                          '(an interrupted download?): download it again.') from error
    if is_official_rcan(checkpoint):
        return official_to_basicsr(checkpoint)[0]
    param_key = source['param_key']
    if param_key is not None:
        if not isinstance(checkpoint, dict) or param_key not in checkpoint:
            keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else []
            raise OptionError(f"path.param_key_{label}: no '{param_key}' in {file}; its top-level keys are {keys}. "
                              f'Set param_key_{label} to the key holding the weights, or ~ when the file is the '
                              'state dict itself.')
        checkpoint = checkpoint[param_key]
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in checkpoint.items()}


def load_weights(net, state, network_key, file, strict=True):
    """Load `state` into `net`; OptionError naming `file` when it is not this network's checkpoint
    (keys missing or extra, other shapes) or holds NaN/inf values."""
    broken = _not_finite(state)
    if broken:
        raise OptionError(f'path.pretrain_{network_key}: {file} holds NaN or inf values in {len(broken)} tensor(s), '
                          f'e.g. {broken[:3]}; training on it would spread them. Use an intact checkpoint.')
    expected = net.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    shapes = [f'{k}: {tuple(state[k].shape)} in the file, {tuple(v.shape)} in {network_key}'
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if shapes or (strict and (missing or unexpected)):
        found = '; '.join(part for part in (
            f'{len(missing)} key(s) missing, e.g. {missing[:3]}' if missing else '',
            f'{len(unexpected)} unexpected, e.g. {unexpected[:3]}' if unexpected else '',
            f'other shapes: {shapes[:3]}' if shapes else '') if part)
        raise OptionError(f'path.pretrain_{network_key}: {file} does not fit {network_key} '
                          f'({type(net).__name__}): {found}. Is it the checkpoint of another network, or do the '
                          f'{network_key} options differ from the ones it was trained with?')
    net.load_state_dict(state, strict=strict)


def load_into(net, source, network_key):
    """Load the checkpoint `source` (see checkpoint_source) into `network_key`'s `net`: taming's VQGAN
    layout for the VQGAN, BasicSR's (or official RCAN's) for the others."""
    if network_key == 'network_vqgan':
        load_vqgan(net, source)
    else:
        load_weights(net, checkpoint_weights(source, network_key), network_key, source['path'], source['strict'])


def load_vqgan(net, source):
    try:
        load_vqgan_encoder(net, source['path'])
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as error:
        reason = error.args[0] if isinstance(error, KeyError) else error  # str(KeyError) adds quotes
        raise OptionError(f'path.pretrain_network_vqgan: {reason}') from error
    broken = _not_finite(net.state_dict())
    if broken:
        raise OptionError(f'path.pretrain_network_vqgan: {source["path"]} holds NaN or inf values, e.g. '
                          f'{broken[:3]}. Use an intact checkpoint.')
