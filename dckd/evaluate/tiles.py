"""Restoring an image too large for one pass: overlapping tiles, blended.

Tiles of `tile` x `tile` input pixels are taken every `tile - overlap` pixels (the last ones flush
with the image edge). Each tile's output is weighted by a ramp that is 0 within a quarter of the
overlap from an edge it shares with another tile, rises linearly to 1 at half the overlap, and is
1 elsewhere (image borders included); the image is the weighted mean. Every output pixel thus comes
only from tiles in which it lies at least overlap / 4 input pixels inside, so for a network whose
receptive field reaches no further than that the result equals the untiled one.
"""
import torch


def _starts(length, tile, step):
    """Tile starts along one axis: every `step`, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length, start, stop, extent, overlap, scale):
    """Weights along one axis of a tile's output covering input [start, stop) of `extent` pixels."""
    position = torch.arange(length, dtype=torch.float32) / scale  # output pixels in input units
    weight = torch.ones(length)
    low, high = overlap / 4, overlap / 2
    if start > 0:  # an edge shared with the previous tile
        weight = torch.minimum(weight, ((position - low) / (high - low)).clamp(0, 1))
    if stop < extent:
        weight = torch.minimum(weight, ((stop - start - position - 1 / scale - low) / (high - low)).clamp(0, 1))
    return weight


@torch.no_grad()
def restore_tiled(forward, images, tile, overlap):
    """`forward` over overlapping tiles of `images` (B, C, H, W), blended (see module doc); the scale
    is read off the first tile's output."""
    if not 0 <= overlap < tile:
        raise ValueError(f'the overlap ({overlap}) must be smaller than the tile ({tile})')
    height, width = images.shape[-2:]
    if height <= tile and width <= tile:
        return forward(images)
    step = tile - overlap
    output = weights = None
    for top in _starts(height, tile, step):
        for left in _starts(width, tile, step):
            bottom, right = min(top + tile, height), min(left + tile, width)
            restored = forward(images[..., top:bottom, left:right])
            if output is None:
                scale = restored.shape[-1] // (right - left)
                output = images.new_zeros(*restored.shape[:2], height * scale, width * scale)
                weights = images.new_zeros(1, 1, height * scale, width * scale)
            rows = _ramp(restored.shape[-2], top, bottom, height, overlap, scale).to(images)
            cols = _ramp(restored.shape[-1], left, right, width, overlap, scale).to(images)
            weight = rows[:, None] * cols[None, :]
            output[..., top * scale:bottom * scale, left * scale:right * scale] += restored * weight
            weights[..., top * scale:bottom * scale, left * scale:right * scale] += weight
    return output / weights
