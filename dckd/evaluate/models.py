"""What gets evaluated: a network from an options file and a BasicSR checkpoint, an INT8 artifact of
dckd-quantize, bicubic, or the LR image itself enlarged by nearest neighbour."""
import os

import numpy as np
import torch
import yaml

from basicsr.archs import build_network
from basicsr.utils import img2tensor, tensor2img
from dckd_utils.checkpoint import extract_state_dict, load_checkpoint
from dckd.paired_data import matlab_bicubic
from dckd_arch import quantized
from dckd_arch.padding import pad_to_multiple
from .tiles import restore_tiled


def load_network(network_opt, checkpoint_path, param_key='params_ema'):
    """Build `network_opt` and load `param_key` (falling back to `params`) from a BasicSR checkpoint
    (random weights when `checkpoint_path` is None: what a cost profile needs)."""
    net = build_network(network_opt)
    if checkpoint_path is None:
        return net.eval()
    checkpoint = load_checkpoint(checkpoint_path, 'network checkpoint')
    key = param_key if param_key in checkpoint else 'params'
    net.load_state_dict(extract_state_dict(checkpoint, key), strict=True)
    return net.eval()


class Restorer:
    """uint8 BGR images through `_forward` (a batch of RGB tensors in [0, 1]); with `tile`, images
    larger than it are restored in overlapping tiles (dckd/evaluate/tiles.py); with
    `self_ensemble`, the mean over the 8 flips and rotations."""

    def __init__(self, name, device='cpu', self_ensemble=False, tile=None, overlap=32):
        self.name, self.device, self.self_ensemble = name, device, self_ensemble
        self.tile, self.overlap = tile, overlap

    def _tiled(self, lq):
        if not self.tile:
            return self._forward(lq)
        return restore_tiled(self._forward, lq, self.tile, self.overlap)

    def restore(self, lq_bgr):
        """uint8 BGR in, uint8 BGR out."""
        lq = img2tensor(lq_bgr.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0).to(self.device)
        out = self_ensemble(self._tiled, lq) if self.self_ensemble else self._tiled(lq)
        return tensor2img(out.clamp(0, 1))


class NetworkModel(Restorer):
    """A trained network; windowed networks (SwinIR) get padded inputs and cropped outputs."""

    def __init__(self, name, network_opt, checkpoint_path, device='cpu', self_ensemble=False, tile=None,
                 overlap=32):
        super().__init__(name, device, self_ensemble, tile, overlap)
        self.net = load_network(network_opt, checkpoint_path).to(device)
        self.network_opt = network_opt
        self.window_size = network_opt.get('window_size')
        self.parameters = sum(p.numel() for p in self.net.parameters())

    @torch.no_grad()
    def _forward(self, lq):
        padded = pad_to_multiple(lq, self.window_size) if self.window_size else lq
        out = self.net(padded)
        scale = out.shape[-1] // padded.shape[-1]
        return out[..., :lq.shape[-2] * scale, :lq.shape[-1] * scale]


class Int8Model(Restorer):
    """An INT8 artifact of dckd-quantize, on the CPU: a .pth (x86: inductor's int8 kernels; xnnpack:
    the quantized reference graph) or a QDQ .onnx run by onnxruntime. Its graph pads windowed
    networks itself."""

    def __init__(self, name, path, device='cpu', self_ensemble=False, tile=None, overlap=32):
        if str(device) != 'cpu':
            raise ValueError(f'--model {name}={path}: INT8 artifacts run on the CPU; pass --device cpu')
        super().__init__(name, 'cpu', self_ensemble, tile, overlap)
        if path.endswith('.onnx'):
            self.graph = quantized.OnnxInt8(path)
            self.scale, self.parameters, self.network_opt = self.graph.scale, self.graph.parameters, None
        else:
            graph, info = quantized.load_artifact(path)
            self.graph = quantized.Compiled(graph) if info['backend'] == 'x86' else graph
            self.scale, self.parameters, self.network_opt = info['scale'], info['parameters'], info['network_g']

    @torch.no_grad()
    def _forward(self, lq):
        return self.graph(lq)


class BicubicModel:
    """MATLAB-bicubic upsampling: the baseline every SR table starts with."""

    parameters = 0

    def __init__(self, scale, name='bicubic'):
        self.name, self.scale = name, scale

    def restore(self, lq_bgr):
        return matlab_bicubic(lq_bgr, self.scale)


class NearestModel:
    """The LR input itself, each pixel repeated scale x scale times: what the network was given."""

    parameters = 0

    def __init__(self, scale, name='LR'):
        self.name, self.scale = name, scale

    def restore(self, lq_bgr):
        return lq_bgr.repeat(self.scale, axis=0).repeat(self.scale, axis=1)


BASELINES = {'bicubic': BicubicModel, 'nearest': NearestModel}


def self_ensemble(forward, images):
    """Mean over the 8 flips/rotations (x8), each output mapped back before averaging."""
    outputs = []
    for transpose in (False, True):
        for flips in ([], [-1], [-2], [-2, -1]):
            x = images.transpose(-2, -1) if transpose else images
            x = x.flip(flips) if flips else x
            y = forward(x)
            y = y.flip(flips) if flips else y
            outputs.append(y.transpose(-2, -1) if transpose else y)
    return torch.stack(outputs).mean(0)


def is_int8_artifact(source):
    """An artifact of dckd-quantize is given by its path alone (.onnx or .pth), not OPTIONS.yml:CHECKPOINT."""
    return os.path.splitext(source.partition(':')[0])[1] in ('.onnx', '.pth', '.pt')


def model_from_spec(spec, scale, device='cpu', self_ensemble=False, weights=True, tile=None, overlap=32):
    """`bicubic`, `nearest`, `NAME=INT8_ARTIFACT` (.pth or .onnx of dckd-quantize), or
    `NAME=OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]`: the network `NETWORK_KEY` (default `network_g`;
    `network_t` for the teacher) of an options file, with weights from CHECKPOINT or else the
    file's `path.pretrain_<NETWORK_KEY>` (`params_ema` first). Without `weights`, a network whose
    options name no existing checkpoint keeps random weights. `tile`, `overlap`: see Restorer."""
    if spec in BASELINES:
        return BASELINES[spec](scale)
    name, sep, source = spec.partition('=')
    if not sep:
        raise ValueError(f"--model {spec}: expected 'bicubic', 'nearest', NAME=INT8_ARTIFACT or "
                         'NAME=OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]')
    if is_int8_artifact(source):
        if not os.path.isfile(source):
            raise FileNotFoundError(f'--model {spec}: INT8 artifact not found: {source}')
        try:
            return Int8Model(name, source, device, self_ensemble, tile, overlap)
        except quantized.QuantizationError as error:  # one line for the user, from every command
            raise SystemExit(f'--model {spec}: {error}') from error
    options_part, _, checkpoint = source.partition(':')
    options_file, _, network_key = options_part.partition('@')
    network_key = network_key or 'network_g'
    if not os.path.isfile(options_file):
        raise FileNotFoundError(f'--model {spec}: options file not found: {options_file}')
    with open(options_file) as f:
        opt = yaml.safe_load(f)
    if network_key not in opt:
        raise KeyError(f'--model {spec}: {options_file} has no {network_key}')
    if not checkpoint:
        checkpoint = (opt.get('path') or {}).get(f'pretrain_{network_key}')
        if not weights and not (checkpoint and os.path.isfile(checkpoint)):
            checkpoint = None  # random weights
        elif not checkpoint:
            raise ValueError(f'--model {spec}: give a checkpoint (NAME=OPTIONS.yml:CHECKPOINT); '
                             f'{options_file} sets no path.pretrain_{network_key}')
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'--model {spec}: checkpoint not found: {checkpoint}')
    return NetworkModel(name, opt[network_key], checkpoint, device, self_ensemble, tile, overlap)


def options_path(spec):
    """The options file of `OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]`."""
    return spec.partition(':')[0].partition('@')[0]


def model_at_its_scale(spec, device='cpu', **options):
    """(model, scale) for `OPTIONS.yml[@NETWORK_KEY][:CHECKPOINT]` at the options file's `scale`, or an
    INT8 artifact at its own (see model_from_spec for the rest; `options` go to it)."""
    if is_int8_artifact(spec):
        model = model_from_spec(f'model={spec}', None, device, **options)
        return model, model.scale
    options_file = options_path(spec)
    if not os.path.isfile(options_file):
        raise FileNotFoundError(f'--model {spec}: options file not found: {options_file}')
    with open(options_file) as f:
        scale = yaml.safe_load(f).get('scale', 1)
    return model_from_spec(f'model={spec}', scale, device, **options), scale
