"""SwinIR with fused window attention is the same function of the same weights."""
import pytest
import torch

from basicsr.archs import build_network
from dckd_arch.fused_attention import FusedWindowAttention, use_fused_attention
from dckd_models import DCKDModel
from conftest import DEVICES
from test_models import make_opt

# two blocks per stage, so every stage has a shifted (masked) block; no stochastic depth
SWINIR = dict(type='SwinIR', upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1., depths=[2, 2],
              embed_dim=12, num_heads=[2, 3], mlp_ratio=2, upsampler='pixelshuffle', drop_path_rate=0.0)


@pytest.mark.parametrize('device', DEVICES)
def test_fused_swinir_gives_the_same_output_and_gradients_from_the_same_checkpoint(device, float32_exact):
    torch.manual_seed(0)
    plain = build_network(SWINIR).to(device)
    fused = build_network(SWINIR).to(device)
    fused.load_state_dict(plain.state_dict())
    assert use_fused_attention(fused) == 4
    image = torch.rand(2, 3, 16, 16, device=device)
    results = []
    for net in (plain, fused):
        leaf = image.clone().requires_grad_(True)
        output = net(leaf)
        output.square().mean().backward()
        weight_grads = torch.cat([p.grad.flatten() for p in net.parameters()])
        results.append((output.detach(), leaf.grad, weight_grads))
    for plain_value, fused_value in zip(*results):
        assert torch.allclose(fused_value, plain_value, rtol=1e-4, atol=1e-6)
    assert fused.state_dict().keys() == plain.state_dict().keys()


def test_switching_twice_changes_nothing_more():
    net = build_network(SWINIR)
    assert use_fused_attention(net) == 4
    assert use_fused_attention(net) == 0
    assert sum(isinstance(m, FusedWindowAttention) for m in net.modules()) == 4


def test_fused_attention_option_switches_student_ema_teacher_and_history(tmp_path):
    swinir = dict(SWINIR, img_size=8)
    opt = make_opt(tmp_path, student=swinir, teacher=swinir, terms=('kd', 'dcl'))
    opt['fused_attention'] = True
    model = DCKDModel(opt)
    for net in (model.net_g, model.net_g_ema, model.net_t, model.net_history):
        assert sum(isinstance(m, FusedWindowAttention) for m in net.modules()) == 4
