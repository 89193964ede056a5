"""The straightforward DCR/DMM computation, kept as the reference every faster path is checked and
benchmarked against: encoder passes in grad mode over anchor, positive and each negative batch,
as the released code runs them, separate encoder passes for the DMM, the contrastive ratio left
to autograd, and no recomputation. (The VQGAN is frozen here, so the passes over positive and
negatives record no graph; the released code's do, so it costs more than this reference.)"""
import torch


def reference_feature_losses(term, output, output_t, negatives):
    """Same contract as DynamicContrastiveKD.feature_losses: {'l_dcl', 'l_ce'} for the enabled terms."""
    vqgan, losses = term.net_vqgan, {}
    recompute, vqgan.encoder.recompute_activations = vqgan.encoder.recompute_activations, False
    try:
        if term.cri_dcl:
            anchor, _ = vqgan(output)
            positive, _ = vqgan(output_t)
            per_negative = [vqgan(images)[0] for images in negatives.chunk(term.num_negatives)]
            negative = [torch.stack([levels[i] for levels in per_negative]) for i in range(len(anchor))]
            losses['l_dcl'] = term.cri_dcl.straightforward(anchor, positive, negative)
        if term.cri_ce:
            _, student_latent = vqgan(output)
            _, teacher_latent = vqgan(output_t)
            losses['l_ce'] = term.cri_ce(student_latent, teacher_latent, vqgan.codebook)
    finally:
        vqgan.encoder.recompute_activations = recompute
    return losses
