"""PretrainedModel: any model file spandrel recognises, as a network of BasicSR's registry.

`network_t: {type: PretrainedModel, path: teacher.safetensors}` is the whole teacher: spandrel
(chaiNNer-org/spandrel, pinned in requirements.txt) reads `.pth`, `.pt`, `.ckpt` and
`.safetensors` files, detects the architecture and its hyper-parameters from the weights (SwinIR,
HAT, DAT, NAFNet, RCAN in its official layout, ESRGAN, ...) and builds it. The detected network
runs as it is: spandrel's own call clamps outputs to [0, 1], which a teacher must not do (its
targets would differ from the network's). Inputs are padded to the sizes it accepts and the
output is cropped back. What was detected is in `detected`; checking it against the run's scale
and channels is the model's job (dckd_models/frozen.py).
"""
import warnings

from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from dckd_utils.checkpoint import extract_state_dict, load_checkpoint
from dckd_utils.registry import register
from .padding import pad_bottom_right

SPANDREL_VERSION = '0.4.2'
EXPLICIT_OPTIONS = ('give the network explicitly instead: its BasicSR type and options (type: SwinIR, ...) with '
                    'path.pretrain_network_t, and import_modules for an architecture of another project')


def _spandrel():
    try:
        import spandrel
    except ImportError as error:
        raise ImportError(f'PretrainedModel reads model files with spandrel: pip install spandrel=={SPANDREL_VERSION} '
                          f'(Python >= 3.10), or {EXPLICIT_OPTIONS}.') from error
    return spandrel


def _state_dict(path, param_key):
    """The weights under `param_key` of a BasicSR-style checkpoint (`module.` prefixes removed)."""
    if path.lower().endswith('.safetensors'):
        raise ValueError(f'{path}: a .safetensors file holds one flat state dict; leave param_key unset')
    state = extract_state_dict(load_checkpoint(path, 'model file'), param_key)
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def read_model_file(path, param_key=None):
    """spandrel's descriptor of the model in `path` (weights under `param_key`, or found by spandrel:
    params_ema before params, state_dict, ...); ValueError naming the file when it cannot be read,
    spandrel does not recognise it, or it is not an image-to-image model."""
    spandrel = _spandrel()
    loader = spandrel.ModelLoader()
    try:
        with warnings.catch_warnings():  # spandrel tries .pt files as TorchScript first
            warnings.filterwarnings('ignore', category=FutureWarning, module='torch.jit')
            state = loader.load_state_dict_from_file(path) if param_key is None else _state_dict(path, param_key)
    except Exception as error:  # whatever torch, safetensors or the unpickler raise for a file they cannot read
        raise ValueError(f'{path}: cannot be read as a model file ({error}). Is it complete (an interrupted '
                         'download?) and a .pth, .pt, .ckpt or .safetensors file?') from error
    try:
        descriptor = loader.load_from_state_dict(state)
    except spandrel.UnsupportedModelError as error:
        raise ValueError(f'{path}: not a model spandrel {spandrel.__version__} recognises (its weights match none '
                         f'of its {len(spandrel.MAIN_REGISTRY)} architectures, e.g. EDSR, Restormer and RCAN in '
                         f"BasicSR's layout); {EXPLICIT_OPTIONS}.") from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f'{path}: a {descriptor.architecture.name} model for {descriptor.purpose}, not an '
                         'image-to-image model: it cannot be a restoration teacher.')
    return descriptor


@register(ARCH_REGISTRY)
class PretrainedModel(nn.Module):
    """The network in model file `path` (see module doc); `param_key`: where its weights are in a
    BasicSR-style checkpoint, or ~ to let spandrel find them."""

    def __init__(self, path, param_key=None):
        super().__init__()
        descriptor = read_model_file(path, param_key)
        self.model = descriptor.model
        self.call = descriptor._call_fn  # output of architectures that return more than the image
        self.size_requirements = descriptor.size_requirements
        self.scale = descriptor.scale
        self.detected = {
            'architecture': descriptor.architecture.name, 'scale': descriptor.scale,
            'in_channels': descriptor.input_channels, 'out_channels': descriptor.output_channels,
            'parameters': sum(p.numel() for p in descriptor.model.parameters()), 'file': path,
            'by': f'spandrel {_spandrel().__version__}',
        }

    def describe(self):
        d = self.detected
        return (f"{d['architecture']} x{d['scale']}, {d['in_channels']}->{d['out_channels']} channels, "
                f"{d['parameters'] / 1e6:.2f}M parameters (detected by {d['by']} in {d['file']})")

    def forward(self, images):
        height, width = images.shape[-2:]
        pad_w, pad_h = self.size_requirements.get_padding(width, height)
        output = self.call(self.model, pad_bottom_right(images, pad_h, pad_w))
        return output[..., :height * self.scale, :width * self.scale]
