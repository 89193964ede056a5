"""Label consistency (LCR): random invertible transforms A and their exact inverse A^-1.

Each sample draws, independently with probability `prob`, colour inversion, horizontal flip,
vertical flip and transpose, applied in that order. Every op is its own inverse, so A^-1 applies
the same ops in reverse order; re-applying them in the forward order (a defect of public code)
is wrong whenever transpose meets a flip.
"""
import torch

OPS = (
    ('invert', lambda x: 1 - x),
    ('hflip', lambda x: x.flip(-1)),
    ('vflip', lambda x: x.flip(-2)),
    ('transpose', lambda x: x.transpose(-2, -1)),
)


def draw_transforms(batch_size, prob, generator):
    """(4, B) booleans, one row per op of OPS, on the generator's device."""
    return torch.rand(len(OPS), batch_size, generator=generator, device=generator.device) < prob


def _apply_ops(images, chosen, ops):
    for index, op in ops:
        mask = chosen[index].view(-1, 1, 1, 1)
        images = torch.where(mask, op(images), images)
    return images


def apply_transforms(images, chosen):
    if chosen[3].any() and images.shape[-1] != images.shape[-2]:
        raise ValueError(f'label consistency with transpose needs square images, got {tuple(images.shape[-2:])}')
    return _apply_ops(images, chosen, [(i, op) for i, (_, op) in enumerate(OPS)])


def invert_transforms(images, chosen):
    return _apply_ops(images, chosen, [(i, op) for i, (_, op) in reversed(list(enumerate(OPS)))])
