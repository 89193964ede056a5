"""What a network costs at inference: multiply-adds, latency and peak memory of one forward pass."""
import statistics
import time

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode


def multiply_adds(forward, images):
    """Multiply-adds of `forward(images)`, from PyTorch's own counter (which counts a multiply-add
    as two FLOPs; element-wise operations are not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward(images)
    return counter.get_total_flops() // 2


def _synchronize(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def latency_ms(forward, images, precision='float32', warmup=2, runs=5):
    """Median milliseconds of `forward(images)` after `warmup` passes, batch as given; bfloat16 under
    autocast."""
    return statistics.median(timings_ms(forward, images, precision, warmup, runs))


def timings_ms(forward, images, precision='float32', warmup=2, runs=5):
    """The milliseconds of each of `runs` passes of `forward(images)` after `warmup` (see latency_ms)."""
    device = images.device.type
    times = []
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=precision == 'bfloat16'):
        for index in range(warmup + runs):
            _synchronize(images.device)
            start = time.perf_counter()
            forward(images)
            _synchronize(images.device)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return times


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of the tensor storages that operations create inside it and that are still alive,
    checked after every operation (views and in-place results share their storage and count once)."""

    def __init__(self):
        super().__init__()
        self.live, self.peak = {}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        self.live = {ptr: held for ptr, held in self.live.items() if not held[0].expired()}
        for tensor in tree_leaves(output):
            if isinstance(tensor, torch.Tensor) and tensor.device.type != 'meta':
                storage = tensor.untyped_storage()
                if storage.data_ptr() and storage.data_ptr() not in self.live:
                    self.live[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return output


def peak_memory_mib(forward, images):
    """MiB of the tensors one forward pass creates, at their peak (weights and input excluded):
    CUDA's allocator peak, or on the CPU the live tensors tracked operation by operation."""
    with torch.no_grad():
        if images.device.type == 'cuda':
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            forward(images)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        with LiveTensorBytes() as tracker:
            forward(images)
        return tracker.peak / 2**20
