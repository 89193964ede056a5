"""Cost options of DCKD training: what each keeps in memory, and that bfloat16 mode is float32
training with cheaper forward passes (the exactness of the float32 options against the reference
path is in test_reference_step.py)."""
import pytest
import torch

from basicsr.archs import build_network
from dckd_losses import DynamicContrastiveLoss
from dckd_losses.contrastive_loss import NegativeSums
from dckd_models import DCKDModel
from dckd_models.terms.dynamic_contrastive import DynamicContrastiveKD
from dckd_utils.schema import OptionError
from conftest import DEVICES, TINY_VQGAN, edsr
from test_models import SCALE, batch, make_opt


class SavedForBackward:
    """Records the tensors autograd keeps for backward inside the `with` block."""

    def __enter__(self):
        self.tensors = []
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def _pack(self, tensor):
        self.tensors.append(tensor)
        return tensor

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)

    def bytes_not_in(self, inputs):
        """Bytes of saved tensors that are new allocations, not (views of) `inputs`."""
        known = {t.untyped_storage().data_ptr() for t in inputs}
        fresh = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in self.tensors
                 if t.untyped_storage().data_ptr() not in known}
        return sum(fresh.values())


def test_lean_contrastive_loss_keeps_one_anchor_sized_sign_sum_for_backward():
    anchor = torch.randn(2, 8, 16, 16, requires_grad=True)
    positive, negatives = torch.randn(2, 8, 16, 16), torch.randn(5, 2, 8, 16, 16)
    loss = DynamicContrastiveLoss(1.0, [1.0])
    with SavedForBackward() as lean:
        loss([anchor], [positive], [negatives])
    with SavedForBackward() as plain:
        loss.straightforward([anchor], [positive], [negatives])
    assert lean.bytes_not_in([anchor, positive, negatives]) <= anchor.numel() * 4 + 2 * 4  # sign sum, two sums
    assert plain.bytes_not_in([anchor, positive, negatives]) >= negatives.numel() * 4  # |a - n| for all N


def test_negative_sums_by_hand():
    # B = 2 samples of one value each; negatives (N = 2): n_1 = [1, -1], n_2 = [3, 0]; anchor [2, 0]
    anchor = [torch.tensor([2., 0.]).view(2, 1, 1, 1)]
    negatives = [torch.tensor([[1., -1.], [3., 0.]]).view(2, 2, 1, 1, 1)]
    sums = NegativeSums.of(anchor, negatives)
    # mean|a - n_1| = (1 + 1) / 2, mean|a - n_2| = (1 + 0) / 2; signs: sample 0: +1 - 1, sample 1: +1 + 0
    assert sums.distances[0].item() == pytest.approx(1.5)
    assert sums.signs[0].flatten().tolist() == [0., 1.]


@pytest.mark.parametrize('chunk', [1, 2, 3, 4])
def test_negative_sums_added_in_any_chunks_equal_all_at_once(chunk):
    generator = torch.Generator().manual_seed(0)
    anchor = [torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 6, 4, 4, generator=generator)]
    negatives = [torch.randn((3, ) + a.shape, generator=generator) for a in anchor]
    whole = NegativeSums.of(anchor, negatives)
    chunked = NegativeSums(anchor)
    images = [n.flatten(0, 1) for n in negatives]  # 6 images: negative k // 2 of sample k % 2
    for first in range(0, 6, chunk):
        chunked.add([level[first:first + chunk] for level in images], first_image=first)
    for level in range(2):
        assert chunked.distances[level].item() == pytest.approx(whole.distances[level].item(), rel=1e-6)
        assert torch.equal(chunked.signs[level], whole.signs[level])


def test_recomputed_vqgan_keeps_less_than_half_and_gives_the_same_gradient():
    torch.manual_seed(0)
    vqgan = build_network(dict(TINY_VQGAN)).requires_grad_(False)
    image = torch.rand(2, 3, 64, 64)
    results = {}
    for recompute in (False, True):
        vqgan.encoder.recompute_activations = recompute
        leaf = image.clone().requires_grad_(True)
        with SavedForBackward() as saved:
            features, latent = vqgan(leaf)
        total = sum(f.square().sum() for f in features) + latent.square().sum()
        results[recompute] = (saved.bytes_not_in([leaf]), torch.autograd.grad(total, leaf)[0])
    (kept_plain, grad_plain), (kept_recomputed, grad_recomputed) = results[False], results[True]
    assert kept_recomputed < kept_plain / 2
    assert torch.allclose(grad_recomputed, grad_plain, rtol=1e-5, atol=1e-7)


def test_chunked_history_negatives_equal_unchunked(tmp_path):
    negatives = []
    for chunk in (None, 1):
        model = DCKDModel(make_opt(tmp_path, terms=('dcl', ), negatives={'num': 3}, frozen_chunk=chunk))
        model.feed_data(batch())
        negatives.append(model.term(DynamicContrastiveKD).history_negatives(model.lq))
    assert negatives[0].shape == (3 * 2, 3, 32, 32)
    assert torch.allclose(negatives[0], negatives[1], atol=1e-6)


@pytest.mark.parametrize('chunk', [0, 2.5, 'all'])
def test_frozen_chunk_must_be_a_positive_count(tmp_path, chunk):
    with pytest.raises(OptionError, match='train.frozen_chunk'):
        DCKDModel(make_opt(tmp_path, frozen_chunk=chunk))


def test_unknown_precision_is_an_option_error(tmp_path):
    with pytest.raises(OptionError, match="train.precision must be one of float32, bfloat16, got 'float16'"):
        DCKDModel(make_opt(tmp_path, precision='float16'))


def one_step_losses(tmp_path, precision, device='cpu', **train):
    torch.manual_seed(0)
    opt = make_opt(tmp_path, terms=('kd', 'dcl', 'ce'), precision=precision, **train)
    opt['num_gpu'] = int(device == 'cuda')
    model = DCKDModel(opt)
    model.feed_data(batch())
    model.optimize_parameters(1)
    return model


def test_bfloat16_mode_trains_float32_weights_with_bfloat16_frozen_vqgan(tmp_path):
    model = one_step_losses(tmp_path, 'bfloat16')
    assert {p.dtype for p in model.net_vqgan.parameters()} == {torch.bfloat16}
    for net in (model.net_g, model.net_g_ema, model.net_history, model.net_t):
        assert {p.dtype for p in net.parameters()} == {torch.float32}
    assert all(p.grad.dtype == torch.float32 for p in model.net_g.parameters() if p.grad is not None)
    assert model.output.dtype == torch.float32


@pytest.mark.parametrize('device', DEVICES)
def test_bfloat16_losses_are_the_float32_losses_to_bfloat16_accuracy(tmp_path, device, float32_exact):
    low = one_step_losses(tmp_path, 'bfloat16', device).log_dict
    full = one_step_losses(tmp_path, 'float32', device).log_dict
    assert set(low) == set(full) == {'l_pix', 'l_kd', 'l_dcl', 'l_ce'}
    for key in full:  # bfloat16 keeps 8 bits of mantissa: about 0.4 % per rounding
        assert low[key] == pytest.approx(full[key], rel=0.05), key


# compiling on a CPU costs a C++ compiler run per distinct kernel: a VQGAN of two levels (a minute
# less than the five levels of TINY_VQGAN; the student's path through it is compiled for backward
# too) and a teacher of the student's layout, whose compiled graph is then the history model's
TWO_LEVEL_VQGAN = dict(TINY_VQGAN, ch_mult=[1, 2])
FEW_KERNELS = {'vqgan': TWO_LEVEL_VQGAN, 'teacher': edsr(8, 1, SCALE),
               'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1, 'level_weights': [0.5, 1.0]}}


@pytest.mark.slow
def test_compiled_frozen_networks_give_the_eager_step(tmp_path):
    eager = one_step_losses(tmp_path, 'float32', **FEW_KERNELS).log_dict
    model = one_step_losses(tmp_path, 'float32', compile_frozen=True, **FEW_KERNELS)
    for key in eager:
        assert model.log_dict[key] == pytest.approx(eager[key], rel=1e-4), key
    for net in (model.net_t, model.net_vqgan, model.net_history):  # checkpoints keep their key names
        assert not any(key.startswith('_orig_mod') for key in net.state_dict())
