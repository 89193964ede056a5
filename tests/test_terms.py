"""The distillation terms (dckd_models/terms): FAKD's affinities, FitNets' hints and DUKD's
upcycled inputs against hand-computed cases, and, for every term, that its loss trains the
student and its adapters (through the graph) and nothing else."""
import pytest
import torch

from basicsr.utils.matlab_functions import imresize
from dckd_utils.schema import OptionError
from dckd_models import DCKDModel, KDModel
from dckd_models import label_consistency as lcr
from dckd_models.terms import Step, term_classes
from dckd_models.terms.feature_affinity import FeatureAffinity, spatial_affinity
from dckd_models.terms.feature_hint import FeatureHint
from dckd_models.terms.upcycling import zoom_in_tiles, zoom_out
from conftest import edsr
from test_models import SCALE, batch, make_opt, same, snapshot

FAKD = {'type': 'L1Loss', 'loss_weight': 10.0, 'student_taps': ['body.0'], 'teacher_taps': ['body.1']}
HINT = {'type': 'MSELoss', 'loss_weight': 1.0, 'student_taps': ['body.0'], 'teacher_taps': ['body.1']}
DUKD = {'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 2, 'zoom_out': True, 'prob': 0.5}


# ----- FAKD -----------------------------------------------------------------------------------------

def test_spatial_affinity_is_the_cosine_similarity_of_every_two_positions():
    # positions (3, 4) and (1, 0): unit vectors (0.6, 0.8) and (1, 0), cosine 0.6
    features = torch.tensor([[[[3., 1.]], [[4., 0.]]]])  # (1, C=2, H=1, W=2)
    expected = torch.tensor([[[1.0, 0.6], [0.6, 1.0]]])
    assert torch.allclose(spatial_affinity(features), expected, atol=1e-6)
    tokens = features.flatten(2).transpose(1, 2)  # SwinIR's (B, N, C)
    assert torch.allclose(spatial_affinity(tokens), expected, atol=1e-6)


def test_fakd_loss_is_the_weighted_l1_between_affinities(tmp_path):
    model = KDModel(make_opt(tmp_path, terms=(), feature_opt=dict(FAKD)))
    term = model.term(FeatureAffinity)
    step = Step(torch.zeros(1, 3, 1, 2), None, teacher=True)
    step.features['student']['body.0'] = torch.tensor([[[[3., 1.]], [[4., 0.]]]])  # affinity [[1, .6], [.6, 1]]
    step.features['teacher']['body.1'] = torch.tensor([[[[3., 0.]], [[4., 1.]]]])  # (0.6, 0.8) and (0, 1): .8
    # mean |0.6 - 0.8| over the four entries (two off-diagonal) = 0.1, times loss_weight 10
    assert term.losses(step)['l_fakd'].item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize('option, term', [('feature_opt', FAKD), ('hint_opt', HINT)])
def test_dckd_train_check_names_a_tap_that_is_no_module(tmp_path, option, term):
    from dckd_models.preflight import preflight
    opt = make_opt(tmp_path, terms=(), **{option: dict(term, teacher_taps=['body.7'])})
    opt['datasets'] = {}
    with pytest.raises(OptionError, match=rf"train.{option}.teacher_taps: EDSR has no module 'body.7'; did you "
                                          r'mean body.1'):
        preflight(opt)


def test_taps_are_checked_before_training(tmp_path):
    with pytest.raises(OptionError, match=r"train.feature_opt.student_taps: EDSR has no module 'body.9'; did you mean body.0"):
        KDModel(make_opt(tmp_path, terms=(), feature_opt=dict(FAKD, student_taps=['body.9'])))
    with pytest.raises(OptionError, match=r'train.feature_opt pairs student_taps with teacher_taps'):
        KDModel(make_opt(tmp_path, terms=(), feature_opt=dict(FAKD, teacher_taps=['body.0', 'body.1'])))


# ----- FitNets' hints -------------------------------------------------------------------------------

def test_the_hint_regressor_maps_student_channels_to_teacher_channels_at_each_position(tmp_path):
    """Student EDSR has 8 channels, teacher 16: with the regressor copying channel j to j (bias 0),
    r(S) is S with 8 zero channels more. S = 1 and T = 2 everywhere: the squared errors are 1 on
    8 channels and 4 on the other 8, a mean of 2.5."""
    model = KDModel(make_opt(tmp_path, terms=(), hint_opt=dict(HINT)))
    term = model.term(FeatureHint)
    regressor = term.adapters()['hint_0']
    assert (regressor.in_features, regressor.out_features) == (8, 16)
    with torch.no_grad():
        regressor.weight.copy_(torch.eye(16, 8))
        regressor.bias.zero_()
    step = Step(lq=None, gt=None, teacher=True)
    step.features = {'student': {'body.0': torch.ones(2, 8, 3, 5)}, 'teacher': {'body.1': torch.full((2, 16, 3, 5), 2.)}}
    assert term.losses(step)['l_hint'].item() == pytest.approx(2.5)


def test_hints_need_taps_at_the_same_resolution(tmp_path):
    with pytest.raises(OptionError, match=r'train.hint_opt: student tap body.0 and teacher tap upsample give 256 and '
                                          r'1024 positions; pair modules that work at the same resolution'):
        KDModel(make_opt(tmp_path, terms=(), hint_opt=dict(HINT, teacher_taps=['upsample'])))


def test_adapters_train_with_the_student_and_follow_its_schedule(tmp_path):
    scheduler = {'type': 'MultiStepLR', 'milestones': [2], 'gamma': 0.5}
    model = KDModel(make_opt(tmp_path, terms=(), hint_opt=dict(HINT), scheduler=scheduler))
    adapters = snapshot(model.net_adapters)
    for current_iter in (1, 2, 3):
        model.update_learning_rate(current_iter)
        model.feed_data(batch(size=8))
        model.optimize_parameters(current_iter)
    assert not same(model.net_adapters, adapters)
    assert [group['lr'] for group in model.optimizer_g.param_groups] == [5e-4, 5e-4]


# ----- DUKD -----------------------------------------------------------------------------------------

def test_zoom_in_tiles_are_distinct_grid_tiles_of_each_ground_truth():
    gt = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)  # x2: four 4x4 tiles per image
    tiles = zoom_in_tiles(gt, (4, 4), 3, torch.Generator().manual_seed(0))
    assert tiles.shape == (6, 3, 4, 4)
    grid = {b: [gt[b, :, i:i + 4, j:j + 4] for i in (0, 4) for j in (0, 4)] for b in range(2)}
    for index, tile in enumerate(tiles):
        matches = [k for k, candidate in enumerate(grid[index // 3]) if torch.equal(tile, candidate)]
        assert len(matches) == 1  # a tile of its own image, on the grid
    for b in range(2):
        assert len({tiles[b * 3 + k].sum().item() for k in range(3)}) == 3  # distinct


def test_zoom_out_downscales_the_input_as_the_lr_data_is_made():
    lq = torch.rand(2, 3, 13, 12, generator=torch.Generator().manual_seed(0))
    target, smaller = zoom_out(lq, 2)
    assert torch.equal(target, lq[..., :12, :12])  # cropped to a multiple of the scale
    assert smaller.shape == (2, 3, 6, 6) and 0 <= smaller.min() and smaller.max() <= 1
    assert torch.allclose(smaller[1], imresize(lq[1, :, :12, :12], 0.5).clamp(0, 1), atol=1e-6)


def test_dukd_losses_are_the_inverted_student_on_each_tile_against_the_teacher(tmp_path):
    """Recomputed one tile at a time (no batching with the main input, transforms inverted one by
    one) from the draws the step made."""
    model = KDModel(make_opt(tmp_path, terms=(), upcycling_opt=dict(DUKD)))
    model.feed_data(batch(size=8))
    step = model.run_step()
    losses = model.compute_losses(step)
    assert set(losses) == {'l_pix', 'l_zoom_in', 'l_zoom_out_pix', 'l_zoom_out_kd'}

    tiles, chosen = step.inputs['teacher']['zoom_in'], step.drawn['zoom_in']
    assert tiles.shape == (2 * 2, 3, 8, 8)  # two LR-sized tiles per image
    expected = []
    with torch.no_grad():
        for k in range(len(tiles)):
            one = chosen[:, k:k + 1]
            restored = lcr.invert_transforms(model.net_g(lcr.apply_transforms(tiles[k:k + 1], one)), one)
            expected.append((restored - model.net_t(tiles[k:k + 1])).abs())
        assert losses['l_zoom_in'].item() == pytest.approx(torch.cat(expected).mean().item(), rel=1e-5)
        target, smaller = zoom_out(model.lq, SCALE)
        assert losses['l_zoom_out_pix'].item() == pytest.approx((model.net_g(smaller) - target).abs().mean().item(),
                                                                rel=1e-5)
        assert losses['l_zoom_out_kd'].item() == pytest.approx(
            (model.net_g(smaller) - model.net_t(smaller)).abs().mean().item(), rel=1e-5)


def test_the_teacher_labels_upcycled_inputs_in_eval_mode(tmp_path):
    swinir = dict(type='SwinIR', upscale=SCALE, in_chans=3, img_size=8, window_size=4, img_range=1., depths=[2],
                  embed_dim=12, num_heads=[2], mlp_ratio=2, upsampler='pixelshuffle', drop_path_rate=0.5)
    model = KDModel(make_opt(tmp_path, teacher=swinir, terms=(), upcycling_opt=dict(DUKD, zoom_out=False)))
    model.feed_data(batch(size=8))
    step = Step(model.lq, model.gt, teacher=True)
    for term in model.terms:
        term.add_inputs(step, model.rng)
    with torch.no_grad():
        first, _ = model.run_network(model.net_t, step.inputs['teacher'], None)
        second, _ = model.run_network(model.net_t, step.inputs['teacher'], None)
    assert torch.equal(first['zoom_in'], second['zoom_in'])  # stochastic depth off


def test_upcycling_needs_an_sr_scale(tmp_path):
    opt = make_opt(tmp_path, student=edsr(8, 1, 1), teacher=edsr(16, 2, 1), terms=(), upcycling_opt=dict(DUKD))
    opt['scale'] = 1
    with pytest.raises(OptionError, match=r'train.upcycling_opt \(DUKD\) needs scale > 1'):
        KDModel(opt)


# ----- every term: its gradient reaches the student only --------------------------------------------

TERMS = {'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
         'lcr_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
         'feature_opt': dict(FAKD), 'hint_opt': dict(HINT), 'upcycling_opt': dict(DUKD),
         'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
         'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001}}
FROZEN = ('net_t', 'net_vqgan', 'net_history')


def test_every_registered_term_is_covered_here():
    assert {option for cls in term_classes() for option in cls.options} == set(TERMS)


@pytest.mark.parametrize('option', TERMS)
def test_a_term_trains_the_student_and_changes_nothing_else(tmp_path, option):
    model = DCKDModel(make_opt(tmp_path, terms=(), pixel_opt={'type': 'L1Loss', 'loss_weight': 1e-12},
                               **{option: TERMS[option]}))
    frozen = {name: snapshot(getattr(model, name)) for name in FROZEN if hasattr(model, name)}
    student = snapshot(model.net_g)
    model.feed_data(batch(size=8))
    model.optimize_parameters(current_iter=1)
    for name, state in frozen.items():  # teacher, VQGAN and history model (which moves only on its schedule)
        assert same(getattr(model, name), state) and not getattr(model, name).training, name
    assert not same(model.net_g, student)
    # the term alone, recomputed: a loss cut from the graph (as released FAKD code does) fails here
    step = model.run_step()
    loss = sum(sum(term.losses(step).values()) for term in model.terms)
    gradients = torch.autograd.grad(loss, list(model.net_g.parameters()), allow_unused=True, retain_graph=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gradients)
    if model.net_adapters is not None:  # and every adapter learns from it
        adapter_gradients = torch.autograd.grad(loss, list(model.net_adapters.parameters()))
        assert all(g.abs().sum() > 0 for g in adapter_gradients)
    if option in ('feature_opt', 'hint_opt'):  # tapped at body.0: what comes after it gets nothing
        named = dict(zip([n for n, _ in model.net_g.named_parameters()], gradients))
        assert named['conv_first.weight'].abs().sum() > 0
        assert named['conv_last.weight'] is None
