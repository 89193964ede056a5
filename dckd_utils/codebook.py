"""A VQGAN codebook's geometry, shared by the VQGAN (dckd_arch: nearest codes) and DMM (dckd_losses:
soft assignments)."""


def codebook_logits(latent, codebook):
    """-||z - e_k||^2 for every token z of `latent` (B, C, h, w) and code e_k of `codebook` (K, C).

    Returns (B*h*w, K), tokens in (B, h, w) order: its argmax is each token's nearest code, its
    softmax over K the soft assignment C of the paper's DMM.
    """
    tokens = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
    squared = tokens.pow(2).sum(1, keepdim=True) - 2 * tokens @ codebook.t() + codebook.pow(2).sum(1)
    return -squared
