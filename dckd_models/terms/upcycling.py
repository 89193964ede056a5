"""DUKD (Zhang et al., "Data Upcycling Knowledge Distillation for Image Super-Resolution", arXiv
2309.14162): the teacher labels inputs the training data holds but the student never sees."""
import torch

from basicsr.utils.matlab_functions import imresize
from dckd_utils.registry import register
from .. import label_consistency as lcr
from . import TERM_REGISTRY, Term


def zoom_in_tiles(gt, tile_size, count, generator):
    """`count` distinct tiles of `tile_size` (the LR patch's height, width) per image, cut from the
    ground truth on its grid of (scale x scale) tiles and drawn per image: (B * count, C, h, w),
    image by image."""
    (height, width), batch = tile_size, gt.shape[0]
    cols = gt.shape[-1] // width
    tiles_per_image = (gt.shape[-2] // height) * cols
    order = torch.rand(batch, tiles_per_image, generator=generator, device=generator.device).argsort(dim=1)[:, :count]
    tiles = [gt[b, :, (k // cols) * height:(k // cols + 1) * height, (k % cols) * width:(k % cols + 1) * width]
             for b in range(batch) for k in order[b].tolist()]
    return torch.stack(tiles)


def zoom_out(lq, scale):
    """The LR input (cropped to a multiple of `scale`) and its bicubic downscaling by `scale`, with
    MATLAB's imresize as the LR training data is made."""
    height, width = lq.shape[-2] - lq.shape[-2] % scale, lq.shape[-1] - lq.shape[-1] % scale
    target = lq[..., :height, :width]
    smaller = torch.stack([imresize(image, 1 / scale) for image in target.float().cpu()]).to(lq)
    return target, smaller.clamp(0, 1)


@register(TERM_REGISTRY)
class DataUpcycling(Term):
    """`train.upcycling_opt` -> with the term's loss:

    - zoom-in (`zoom_in` tiles per image): LR-sized tiles of the HR ground truth; the teacher labels
      each tile, the student restores A(tile) (A: LCR's transforms, each with probability `prob`)
      and A^-1 of its output is compared with the label: l_zoom_in;
    - zoom-out (`zoom_out: true`): the LR input downscaled by the scale; the student's output on it
      is compared with the LR input (l_zoom_out_pix) and with the teacher's (l_zoom_out_kd).

    The released code takes a second optimizer step for these losses, and re-applies its
    transforms in forward order instead of inverting them; here they join the step's sum and A is
    inverted exactly. Tiles and zoom-out inputs run in the networks' passes over the batch.
    """
    options = ('upcycling_opt', )

    def __init__(self, components, model):
        super().__init__(components, model)
        self.scale = model.opt['scale']

    def add_inputs(self, step, generator):
        count = self.component.zoom_in
        if count:
            tiles = zoom_in_tiles(step.gt, step.lq.shape[-2:], count, generator)
            chosen = step.drawn['zoom_in'] = lcr.draw_transforms(len(tiles), self.component.prob, generator)
            step.inputs['teacher']['zoom_in'] = tiles
            step.inputs['student']['zoom_in'] = lcr.apply_transforms(tiles, chosen)
        if self.component.zoom_out:
            step.drawn['zoom_out_target'], smaller = zoom_out(step.lq, self.scale)
            step.inputs['teacher']['zoom_out'] = step.inputs['student']['zoom_out'] = smaller

    def losses(self, step):
        losses = {}
        if self.component.zoom_in:
            restored = lcr.invert_transforms(step.outputs['student']['zoom_in'], step.drawn['zoom_in'])
            losses['l_zoom_in'] = self.criterion(restored, step.teacher('zoom_in'))
        if self.component.zoom_out:
            output = step.outputs['student']['zoom_out']
            losses['l_zoom_out_pix'] = self.criterion(output, step.drawn['zoom_out_target'])
            losses['l_zoom_out_kd'] = self.criterion(output, step.teacher('zoom_out'))
        return losses
