"""SwinIR's window attention through torch's fused scaled_dot_product_attention, same weights.

BasicSR's WindowAttention builds the (windows, heads, n, n) score tensor, adds the relative
position bias and the shift mask to it, and keeps the softmax for backward. Here the bias and the
mask are summed once per layer into a (1, windows * heads, n, n) tensor shared by the whole batch,
and the fused kernel does the rest. Checkpoints load unchanged: only the class of each attention
module is switched.
"""
from torch.nn import functional as F

from basicsr.archs.swinir_arch import WindowAttention


class FusedWindowAttention(WindowAttention):

    def forward(self, x, mask=None):
        """x: (num_windows * b, n, c); mask: (num_windows, n, n) of 0 / -100, or None."""
        windows_b, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).reshape(windows_b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, heads)
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # (1, heads, n, n)
        if mask is not None:  # fold the windows into the head dimension, so one bias serves the batch
            windows = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).reshape(1, windows * heads, n, n)
            q, k, v = (t.reshape(windows_b // windows, windows * heads, n, c // heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale,
                                             dropout_p=self.attn_drop.p if self.training else 0.0)
        out = out.reshape(windows_b, heads, n, c // heads).transpose(1, 2).reshape(windows_b, n, c)
        return self.proj_drop(self.proj(out))


def use_fused_attention(net):
    """Switch every SwinIR WindowAttention inside `net` to FusedWindowAttention; returns how many."""
    switched = 0
    for module in net.modules():
        if type(module) is WindowAttention:
            module.__class__ = FusedWindowAttention
            switched += 1
    return switched
