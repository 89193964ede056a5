"""8-bit networks: the quantizers of the deployment targets, a network's quantized graph, and the
INT8 artifact that holds it.

Backends:
  x86      torchao's PT2E with X86InductorQuantizer: int8 weights per output channel, uint8
           activations per tensor; run through torch.compile with frozen weights, which lowers
           the graph to oneDNN's int8 kernels (VNNI, AMX).
  xnnpack  ExecuTorch's XNNPACKQuantizer (ARM CPUs, phones): int8, weights per channel or per
           tensor; needs the executorch package.
  onnx     onnxruntime's static quantization of the ONNX export, QDQ (dckd/quantize.py).

The graph is captured with torch.export (any height and width), prepared by the backend's
quantizer (observers on weights and activations), calibrated by running it, and converted.

An artifact of the PT2E backends is a .pth read weights-only, as any checkpoint: no graph and no
pickled code, only the network's options, the backend's settings and the state of the calibrated
graph (its weights and every observer's range). Loading builds the network, captures and
prepares it the same way and loads that state, so the converted graph is the calibrated one, bit
for bit; a different torch or torchao that captures another graph is named, not guessed at.
"""
import importlib.util
import os
import traceback

import torch

from basicsr.archs import build_network
from dckd_utils.checkpoint import load_checkpoint
from .padding import Deployable, example_input

INSTALL = {  # the package each backend needs, and its install line
    'x86': ('torchao', 'pip install torchao==0.18.0  (or: pip install dckd[quantize])'),
    'xnnpack': ('executorch', 'pip install executorch==1.5.1  (or: pip install dckd[executorch]; it takes torchao 0.18)'),
    'onnx': ('onnxruntime', 'pip install onnx onnxscript onnxruntime  (or: pip install dckd[export])'),
}
BACKENDS = tuple(INSTALL)
PT2E_BACKENDS = ('x86', 'xnnpack')
ARTIFACT_FORMAT = 1  # the artifact's 'dckd_int8' entry


PER_CHANNEL_ONLY = {'x86': "oneDNN's int8 convolutions"}  # backends without per-tensor weights, and why


def per_channel_only(backend):
    return f'backend {backend} quantizes weights per output channel only ({PER_CHANNEL_ONLY[backend]})'


class QuantizationError(RuntimeError):
    """A backend that cannot be used here, a network it cannot quantize, an artifact that cannot be
    read: the message names the option, module or file and what to do."""


def require(backend):
    """Stop with the install line when `backend`'s package is missing."""
    if backend not in INSTALL:
        raise QuantizationError(f'backend {backend!r}: choose one of {", ".join(BACKENDS)}')
    package, line = INSTALL[backend]
    if importlib.util.find_spec(package) is None:
        raise QuantizationError(f'backend {backend} needs the {package} package, which is not installed: {line}')


def quantizer(backend, per_channel=True, training=False):
    """The backend's PT2E quantizer: weights per output channel (`per_channel`) or per tensor; with
    `training`, fake quantization for quantization-aware training instead of observers, its
    activation ranges running extremes with either backend (running_ranges)."""
    require(backend)
    if not per_channel and backend in PER_CHANNEL_ONLY:
        raise QuantizationError(f'{per_channel_only(backend)}; per-tensor weights: backend xnnpack or onnx')
    if backend == 'x86':
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer, get_default_x86_inductor_quantization_config)

        class X86(X86InductorQuantizer):
            def annotate(self, model):
                return pixel_shuffles_in_int8(super().annotate(model))

        chosen, config = X86(), get_default_x86_inductor_quantization_config(is_qat=training)
    elif backend == 'xnnpack':
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                             get_symmetric_quantization_config)
        chosen, config = XNNPACKQuantizer(), get_symmetric_quantization_config(is_per_channel=per_channel, is_qat=training)
    else:
        raise QuantizationError(f'backend {backend} is not a PT2E backend ({", ".join(PT2E_BACKENDS)} are)')
    return chosen.set_global(running_ranges(config) if training else config)


def running_ranges(config):
    """A quantization-aware `config` whose activations' fake quantizers keep the minimum and maximum
    of every batch they observe (torchao's FakeQuantize with MinMaxObserver), where the default of
    both backends (torchao's x86, ExecuTorch's xnnpack) moves them 1 % a step towards each batch's
    own. In the 64-channel study (docs/quantization.md) the moving averages held ranges 4 to 31 %
    inside those calibration sees, and the INT8 students ended under PTQ; with running ranges, above
    it."""
    import dataclasses

    from torchao.quantization.pt2e.fake_quantize import FakeQuantize
    from torchao.quantization.pt2e.observer import MinMaxObserver

    spec = config.input_activation
    settings = spec.observer_or_fake_quant_ctr.p.keywords  # torchao's own (its eps)
    running = dataclasses.replace(spec, observer_or_fake_quant_ctr=FakeQuantize.with_args(
        observer=MinMaxObserver, quant_min=spec.quant_min, quant_max=spec.quant_max, dtype=spec.dtype,
        qscheme=spec.qscheme, **settings))
    return dataclasses.replace(config, input_activation=running, output_activation=running)


def pixel_shuffles_in_int8(graph):
    """Move the quantization after each pixel shuffle of an annotated `graph` (PT2E annotations)
    whose every user quantizes its output to before it, sharing one observer: the same integers
    (a pixel shuffle only moves values), but the convolution before it writes them in 8 bits instead
    of 32 (X86InductorQuantizer leaves the upsamplers' convolutions, the largest outputs of an SR
    network, in float). A pixel shuffle whose output is not quantized (SRVGGNetCompact's, added to
    the upsampled input) is left as it is: it would add a rounding."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    def annotation(node):
        return node.meta.get('quantization_annotation')

    for node in graph.graph.nodes:
        if node.target is not torch.ops.aten.pixel_shuffle.default or annotation(node) is not None:
            continue
        qspecs = [annotation(user).input_qspec_map.get(node) if annotation(user) else None for user in node.users]
        if qspecs and all(qspec is not None for qspec in qspecs):
            source = node.args[0]
            node.meta['quantization_annotation'] = QuantizationAnnotation(
                input_qspec_map={source: qspecs[0]}, output_qspec=SharedQuantizationSpec((source, node)),
                _annotated=True)
    return graph


def capture(module, window, batches=False, device='cpu'):
    """`module` as an ATen graph for inputs of any height and width, and of any batch size with
    `batches` (torch.export). An operation the exporter cannot trace is named with the module that
    holds it."""
    dynamic = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC, **({0: torch.export.Dim.DYNAMIC} if batches else {})}
    example = example_input(window, device).repeat(2 if batches else 1, 1, 1, 1)  # a batch of 1 would be fixed
    try:
        return torch.export.export(module, (example, ), dynamic_shapes={'images': dynamic}).module()
    except Exception as error:  # noqa: BLE001  (torch.export raises many kinds; each is reported the same way)
        raise QuantizationError(f'the network cannot be captured as one graph for quantization (torch.export)'
                                f'{_where(module, error)}: {type(error).__name__}: {str(error)[:1500]}') from error


def _where(module, error):
    """' in module PATH (Class)': the innermost module whose forward the failed trace was in, from the
    frames of `error` and of the errors it came from ('' when no frame is in a module's forward)."""
    frames = []
    while error is not None:  # the original error's frames are the innermost
        frames = [*traceback.extract_tb(error.__traceback__), *(getattr(error, 'real_stack', None) or [])] + frames
        error = error.__cause__ or error.__context__
    inner = module.net if isinstance(module, Deployable) else module
    for frame in reversed(frames):
        paths = [name for name, sub in inner.named_modules() if _runs(type(sub).forward, frame)]
        if paths:
            kind = type(inner.get_submodule(paths[0])).__name__
            more = f' (and {len(paths) - 1} more of its class)' if len(paths) > 1 else ''
            return f' in module {paths[0] or "(the network itself)"} ({kind}){more}'
    return ''


def _runs(function, frame):
    """Whether `frame` (a traceback.FrameSummary) is a line of `function`."""
    code = getattr(function, '__code__', None)
    if code is None or code.co_filename != frame.filename or frame.lineno is None:
        return False
    lines = [line for _, _, line in code.co_lines() if line is not None]
    return min(lines) <= frame.lineno <= max(lines)


def recipe(network_opt, scale, backend, per_channel=True, training=False):
    """What decides the quantized graph: the network's options (its window size among them), its
    scale, the backend, the weights' granularity, and whether it was trained quantization-aware
    (fake quantization) or calibrated (observers)."""
    return {'network_g': dict(network_opt), 'window': network_opt.get('window_size'), 'scale': scale,
            'backend': backend, 'per_channel': per_channel, 'training': training}


def prepare(net, made):
    """`net` captured as in eval mode for any input size and prepared by the backend of the recipe
    `made`: a graph module whose observers learn the ranges as it runs (calibration), or, for a
    recipe with `training`, whose fake quantizers do as it trains (any batch size). The graph's
    parameters are `net`'s own tensors: an optimizer of `net` trains it."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    was_training = net.training
    training = made.get('training', False)
    device = next(net.parameters()).device
    graph = capture(Deployable(net.eval(), made['window'], made['scale']), made['window'], batches=training,
                    device=device)
    net.train(was_training)
    if training:
        return prepare_qat_pt2e(graph, quantizer(made['backend'], made['per_channel'], training=True))
    return prepare_pt2e(graph, quantizer(made['backend'], made['per_channel']))


def fake_quantizers(graph):
    """The fake quantizers of a graph prepared for training, by name, as a module whose state is
    theirs alone (their ranges, scales, zero points and switches; not the network's weights)."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    return torch.nn.ModuleDict({name: module for name, module in graph.named_children()
                                if isinstance(module, FakeQuantizeBase)})


def follow(graph, source):
    """Set the fake quantizers of `graph` (a twin of another network of the same options) from the
    graph `source`'s: the activations' ranges copied from `source`, the weights' measured on
    `graph`'s own weights (reset and observed once), as calibration would measure them."""
    import operator

    weights = {node.target: node.args[0].target for node in graph.graph.nodes
               if node.op == 'call_module' and node.args and getattr(node.args[0], 'op', None) == 'get_attr'}
    sources = fake_quantizers(source)
    for name, quantizer in fake_quantizers(graph).items():
        if name in weights:
            switch = quantizer.observer_enabled.clone()
            quantizer.activation_post_process.reset_min_max_vals()
            quantizer.enable_observer()
            with torch.no_grad():
                quantizer(operator.attrgetter(weights[name])(graph).detach())
            quantizer.observer_enabled.copy_(switch)
        else:
            quantizer.load_state_dict(sources[name].state_dict())


def load_state(module, state, strict=True):
    """`module.load_state_dict(state)` for a state saved as a plain dict: torchao's observers read a
    state without its version metadata as their first version's and reset their `eps` (x86's is
    2**-12) to float32's; the metadata is the module's own, of the same code."""
    from collections import OrderedDict

    state = OrderedDict(state)
    state._metadata = module.state_dict()._metadata  # noqa: SLF001  (torch's own attribute for this)
    return module.load_state_dict(state, strict=strict)


def observe(graph, on):
    """Switch the observers of a prepared graph's fake quantizers on or off (off: the ranges stay
    as they are; fake quantization goes on)."""
    from torchao.quantization.pt2e.fake_quantize import disable_observer, enable_observer

    graph.apply(enable_observer if on else disable_observer)


def convert(prepared):
    """The calibrated graph with its observers replaced by quantize and dequantize operations (the
    integer weights folded in): runs as the reference INT8 graph; `Compiled` gives the fast one."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    return convert_pt2e(prepared)


class OnnxInt8:
    """A QDQ ONNX artifact of dckd-quantize run by onnxruntime on the CPU; its scale and parameter
    count come from the file's metadata."""

    def __init__(self, path):
        require('onnx')
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        except Exception as error:  # noqa: BLE001  (onnxruntime's errors have no common type)
            raise QuantizationError(f'{path}: not a readable ONNX model (damaged or truncated?): {error}') from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        if 'dckd_scale' not in metadata:
            raise QuantizationError(f'{path} is not an INT8 artifact of dckd-quantize (its metadata has no dckd_scale)')
        self.scale, self.parameters = int(metadata['dckd_scale']), int(metadata['dckd_parameters'])

    def __call__(self, images):
        return torch.from_numpy(self.session.run(None, {'lq': images.contiguous().numpy()})[0])


PTE_MAX_SIDE = 1024  # ExecuTorch plans memory for the largest input: LR sides up to this


def write_pte(converted, window, path):
    """The converted xnnpack graph lowered to XNNPACK's kernels as an ExecuTorch program (.pte) for
    LR inputs of 16 to PTE_MAX_SIDE pixels a side."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    side = {2: torch.export.Dim('height', min=16, max=PTE_MAX_SIDE), 3: torch.export.Dim('width', min=16, max=PTE_MAX_SIDE)}
    program = torch.export.export(converted, (example_input(window), ), dynamic_shapes={'images': side})
    with open(path + '.tmp', 'wb') as f:
        f.write(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
    os.replace(path + '.tmp', path)


class Pte:
    """An ExecuTorch program run by ExecuTorch's runtime here (XNNPACK's kernels run on x86 too)."""

    def __init__(self, path):
        from executorch.runtime import Runtime

        self.method = Runtime.get().load_program(path).load_method('forward')

    def __call__(self, images):
        return self.method.execute([images.contiguous()])[0]


class Compiled:
    """The converted x86 graph lowered by inductor to int8 kernels, its weights frozen as constants
    (inductor's `freezing`, set around every call: a new input size compiles again)."""

    def __init__(self, converted):
        import torch._inductor.config

        self.graph, self.config = torch.compile(converted), torch._inductor.config

    def __call__(self, images):
        with self.config.patch(freezing=True):
            return self.graph(images)


def versions():
    import torchao

    return {'torch': str(torch.__version__), 'torchao': str(torchao.__version__)}


def artifact(made, prepared, parameters):
    """What an INT8 artifact holds (see the module doc): the recipe `made`, the calibrated graph's
    state, the network's parameter count; torch.save it, read it with read_artifact."""
    return {'dckd_int8': ARTIFACT_FORMAT, **made, 'parameters': parameters, 'versions': versions(),
            'state': {key: value.detach().clone() for key, value in prepared.state_dict().items()}}


def read_artifact(path):
    """An INT8 artifact, read weights-only; one message for a damaged file or another kind of file."""
    try:
        content = load_checkpoint(path, 'INT8 artifact')
    except FileNotFoundError:
        raise
    except RuntimeError as error:
        raise QuantizationError(f'{path}: not a readable INT8 artifact (damaged or truncated?): {error}') from error
    if not isinstance(content, dict) or content.get('dckd_int8') != ARTIFACT_FORMAT:
        raise QuantizationError(f'{path} is not an INT8 artifact of dckd-quantize (a checkpoint? give it as '
                                'OPTIONS.yml:CHECKPOINT)')
    return content


def load_artifact(path):
    """(converted graph, artifact) of an INT8 artifact: the network rebuilt and prepared as it was
    calibrated, its state loaded, converted. Run `Compiled(graph)` for x86's int8 kernels."""
    content = read_artifact(path)
    require(content['backend'])
    net = build_network(dict(content['network_g'])).eval()
    prepared = prepare(net, recipe(content['network_g'], content['scale'], content['backend'], content['per_channel'],
                                   content.get('training', False)))
    try:
        missing, unexpected = load_state(prepared, content['state'], strict=False)
        differ = (missing or unexpected) and (f'{len(missing)} entries missing, {len(unexpected)} unexpected, e.g. '
                                              f'{(missing or unexpected)[0]}')
    except RuntimeError as error:  # an entry of the same name and another shape
        differ = str(error).split('\n\t')[-1]
    if differ:
        made, now = content['versions'], versions()
        raise QuantizationError(
            f'{path}: its calibrated graph does not match the one captured here ({differ}); it was made with torch '
            f'{made["torch"]}, torchao {made["torchao"]}, this is torch {now["torch"]}, torchao {now["torchao"]}: '
            'quantize again here (as for x86 artifacts made before dckd ran their upsamplers in int8)')
    return convert(prepared), content
