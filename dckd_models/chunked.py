"""No-grad passes of frozen networks over more images than a training batch, a chunk at a time.

The negatives multiply the batch by N + 1; one pass over all of them at once holds N + 1 times a
batch's activations at full resolution. Chunks bound that to one batch's worth, and the outputs
go straight into tensors allocated once, so no concatenation doubles them either.
"""
import torch


@torch.no_grad()
def run_in_chunks(net, images, chunk_size):
    """net(images), `chunk_size` images per pass; `net` may return a tensor or nested lists/tuples
    of tensors whose first dimension follows the images."""
    if chunk_size >= len(images):
        return net(images)
    outputs = None
    for start in range(0, len(images), chunk_size):
        part = net(images[start:start + chunk_size])
        if outputs is None:
            outputs = _allocate_like(part, len(images))
        _copy_into(outputs, part, start)
    return outputs


def _allocate_like(part, total):
    if isinstance(part, torch.Tensor):
        return part.new_empty((total, ) + part.shape[1:])
    return type(part)(_allocate_like(p, total) for p in part)


def _copy_into(outputs, part, start):
    if isinstance(part, torch.Tensor):
        outputs[start:start + len(part)].copy_(part)
    else:
        for output, p in zip(outputs, part):
            _copy_into(output, p, start)
