"""A CUDA device made of the CPU, for tests: tensors on "the GPU" that hold CPU data.

Inside `fake_cuda()`, `torch.zeros(..., device='cuda')`, `x.to('cuda')`, `net.to('cuda')` and
`torch.Generator(device='cuda')` give FakeCudaTensors and FakeCudaGenerators; every operation on
them runs the CPU kernel on the data they hold and wraps the result again, so forward, backward,
optimizer steps, `.item()` and data-dependent control flow all run with real numbers. What a CUDA
build refuses is refused here too, by the same rules:

- an operation that mixes a device tensor with a CPU tensor of one or more dimensions raises
  `DeviceMismatch` (a CPU scalar, 0-dim, is allowed, as CUDA allows it: Adam keeps its step
  count there); copies between the devices (`.to`, `.cpu()`, `copy_`) are of course allowed;
- a random draw whose generator is on the other device than the tensor it fills raises.

The fake tensors say they are on `meta`, not `cuda`: torch asks the CUDA driver for a stream or
a device guard whenever autograd records a tensor that says `cuda` and in many Python bindings
(indexing, `.contiguous()`, `copy_`), and without a driver it aborts. `torch.device('cuda')` is
left alone, so a model's `self.device` is `cuda` and its `device.type == 'cuda'` branches
(`torch.autocast('cuda')`...) are taken; code that branches on a tensor's `.device.type` sees
`meta`. `torch.cuda.is_available()` is True inside.

What it cannot see: CUDA kernels and their numerics (TF32, cuDNN, bfloat16: autocast casts
nothing here), CUDA random streams (draws come from CPU generators), memory, streams and
asynchronous errors, torch.compile and torch.export (the fake-quantized twins of `train.quantization`:
tests/test_qat.py runs their step on a real CUDA device), fused attention kernels, and NCCL; those need a GPU
(benchmarks/gpu_check.sh).
"""
import contextlib
import types
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

RealGenerator, RealAutocast = torch.Generator, torch.autocast
DEVICE = torch.device('meta')  # what the fake tensors say they are on (see the module doc)
aten = torch.ops.aten


class DeviceMismatch(RuntimeError):
    """What CUDA raises for an operation over tensors of two devices."""


class FakeCudaTensor(torch.Tensor):
    """Says `cuda:0`; holds a CPU tensor (`cpu_data`) that every operation runs on."""

    @staticmethod
    def __new__(cls, data):
        tensor = torch.Tensor._make_wrapper_subclass(cls, data.shape, strides=data.stride(),
                                                     storage_offset=data.storage_offset(), dtype=data.dtype,
                                                     layout=data.layout, device=DEVICE, requires_grad=False)
        tensor.cpu_data = data
        return tensor

    def __repr__(self, *, tensor_contents=None):
        return f'FakeCudaTensor({self.cpu_data!r})'

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return run(func, args, kwargs or {})


class _GeneratorType(type(RealGenerator)):
    def __instancecheck__(cls, obj):
        return isinstance(obj, RealGenerator)


_SEED_MARK = 1 << 62  # in the seed of every fake CUDA generator: torch hands operations a fresh wrapper of it


class FakeCudaGenerator(RealGenerator):
    """A CPU generator that says it is on the fake device: draws for CUDA tensors must come from one.

    Operations receive a new Python wrapper of the generator, not this object, so it is recognised
    by its seed, which always carries _SEED_MARK."""

    def __init__(self):
        super().__init__()
        self.manual_seed(0)

    @property
    def device(self):
        return DEVICE

    def manual_seed(self, seed):
        return super().manual_seed(_SEED_MARK | (int(seed) % _SEED_MARK))


def _is_fake_generator(generator):
    return generator.device.type == 'cpu' and generator.initial_seed() & _SEED_MARK


class Generator(RealGenerator, metaclass=_GeneratorType):
    """`torch.Generator` inside fake_cuda(): a FakeCudaGenerator for a CUDA device."""

    def __new__(cls, device='cpu'):
        return FakeCudaGenerator() if _on_device(device) else RealGenerator(device)


def _on_device(device):
    """Whether `device` (as requested, or as a fake tensor says) is the fake CUDA device."""
    return device is not None and torch.device(device).type in ('cuda', DEVICE.type)


def _is_cpu_tensor(value):
    return isinstance(value, torch.Tensor) and not isinstance(value, FakeCudaTensor) and value.device.type == 'cpu'


def run(func, args, kwargs):
    """One aten operation: checked as CUDA would check it, run on the CPU data, results wrapped."""
    leaves = pytree.tree_leaves((args, kwargs))
    cuda_inputs = any(isinstance(a, FakeCudaTensor) for a in leaves)
    requested = kwargs.get('device')
    requested = torch.device(requested) if requested is not None else None
    if func is aten._to_copy.default:  # .to(), .cuda(), .cpu(): between the devices, as on CUDA
        to_cuda = _on_device(requested) if requested is not None else isinstance(args[0], FakeCudaTensor)
    elif func is aten.copy_.default:
        to_cuda = isinstance(args[0], FakeCudaTensor)
    else:
        to_cuda = _on_device(requested) if requested is not None else cuda_inputs
        cpu_tensors = [a for a in leaves if _is_cpu_tensor(a) and a.dim() > 0]
        if to_cuda and cpu_tensors:
            raise DeviceMismatch(f'Expected all tensors to be on the same device, but found at least two devices, '
                                 f'cuda:0 and cpu! ({func} got CPU tensors of shapes '
                                 f'{[tuple(t.shape) for t in cpu_tensors]})')
        generator = kwargs.get('generator')
        if generator is not None and bool(_is_fake_generator(generator)) != to_cuda:
            raise DeviceMismatch(f"{func}: Expected a '{'cuda' if to_cuda else 'cpu'}' device type for generator "
                                 f"but found '{'cpu' if to_cuda else 'cuda'}'")
    unwrapped_args, unwrapped_kwargs = pytree.tree_map_only(FakeCudaTensor, lambda t: t.cpu_data, (args, kwargs))
    if _on_device(requested):
        unwrapped_kwargs['device'] = torch.device('cpu')
    with torch.no_grad():  # autograd runs on the wrappers, above this
        out = func(*unwrapped_args, **unwrapped_kwargs)
    if func is aten.copy_.default:
        return args[0]
    originals = {id(a.cpu_data): a for a in leaves if isinstance(a, FakeCudaTensor)}

    def wrap(value):
        if id(value) in originals:  # an in-place operation returns its input
            return originals[id(value)]
        return FakeCudaTensor(value) if to_cuda else value

    return pytree.tree_map_only(torch.Tensor, wrap, out)


class _FakeCudaFactories(TorchDispatchMode):
    """Catches factory functions (`torch.zeros(..., device='cuda')`) and CPU-only operations.

    Registered under the FAKE mode key, so torch skips its CUDA initialisation as it does for
    FakeTensorMode (nothing else reads that key outside torch.compile)."""

    def __init__(self):
        super().__init__()
        self._mode_key = torch._C._TorchDispatchModeKey.FAKE

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return run(func, args, kwargs or {})


def _indexed(value):
    if isinstance(value, str) and value == 'cuda' or isinstance(value, torch.device) and value == torch.device('cuda'):
        return DEVICE
    return value


class _DeviceIndex(TorchFunctionMode):
    """`x.to('cuda')` asks the driver for the current device before dispatching: give it the fake one.
    (`tolist` refuses tensor subclasses before dispatching: it reads the data held.)"""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.tolist and isinstance(args[0], FakeCudaTensor):  # a copy to the host, as on CUDA
            return args[0].cpu_data.tolist()
        if func is torch.device:  # a model's device stays 'cuda'
            return func(*args, **(kwargs or {}))
        args, kwargs = pytree.tree_map(_indexed, (args, kwargs or {}))
        return func(*args, **kwargs)


def _autocast(device_type, *args, **kwargs):
    """torch.autocast for a fake tensor's device type is autocast on CUDA."""
    return RealAutocast('cuda' if device_type == DEVICE.type else device_type, *args, **kwargs)


_NOT_CAPTURING = types.SimpleNamespace(is_capturing=lambda: False)  # the optimizers ask before each step


@contextlib.contextmanager
def fake_cuda():
    """Inside, CUDA is a device made of the CPU (see the module doc): one device, bfloat16
    supported; CUDA random states, synchronisation and memory counters are no-ops."""
    with contextlib.ExitStack() as stack:
        for name, value in {'is_available': lambda: True, 'device_count': lambda: 1, 'current_device': lambda: 0,
                            'is_bf16_supported': lambda *a, **k: True, 'synchronize': lambda *a, **k: None,
                            'get_rng_state_all': lambda: [], 'set_rng_state_all': lambda states: None,
                            'memory_allocated': lambda *a, **k: 0, 'max_memory_allocated': lambda *a, **k: 0,
                            'reset_peak_memory_stats': lambda *a, **k: None}.items():
            stack.enter_context(mock.patch(f'torch.cuda.{name}', value))
        stack.enter_context(mock.patch('torch.accelerator.current_stream', lambda *a, **k: _NOT_CAPTURING))
        stack.enter_context(mock.patch('torch.Generator', Generator))
        stack.enter_context(mock.patch('torch.autocast', _autocast))
        # net.to('cuda') replaces each parameter by a new one around the fake tensor (the default
        # would move the fake tensor's impl into the old parameter, which then hides it)
        stack.enter_context(mock.patch('torch.__future__._overwrite_module_params_on_conversion', True))
        stack.enter_context(_FakeCudaFactories())
        stack.enter_context(_DeviceIndex())
        yield
