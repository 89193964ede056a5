"""Every option KDModel and DCKDModel read, declared once and parsed once (see dckd_utils/schema.py).

`parse_training_options(opt)` checks a whole training options file (a mapping as in the YAML,
or BasicSR's parsed opt) and returns typed options that the models use: `parsed.train.history
.attenuation`, `parsed.train.negatives.noise.sigma_range`, `parsed.network_t.arguments`...
Checks between options (a term that needs a teacher, scales, windows, the history schedule)
run here too, so every error names the key path and comes before any network is built.
"""
import importlib
import importlib.util
import os

import torch

from basicsr.archs import ARCH_REGISTRY
from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
from basicsr.data import DATASET_REGISTRY
from basicsr.losses import LOSS_REGISTRY
from basicsr.metrics import METRIC_REGISTRY
from basicsr.models import lr_scheduler
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_utils.known_files import known_at
from dckd_data.realworld_degradation import DATASETS as REALWORLD_DATASETS, DEFAULTS as REALWORLD_DEFAULTS, \
    PAIR_DEFAULTS
from dckd_arch.quantized import PER_CHANNEL_ONLY, QuantizationError, per_channel_only, require
from dckd_losses.contrastive_loss import PAPER_LEVEL_WEIGHTS
from dckd_utils.schema import (REQUIRED, Bool, Choice, Component, Float, Int, Kind, List, Option, OptionError, Optional,
                         Section, Text, closest)
from .schedules import CosineAnnealingRestartCyclicLR
from .terms import PairedTaps, enabled_terms, term_classes
from .terms.dynamic_contrastive import DynamicContrastiveKD

def _registered(registry):
    return lambda name: registry.get(name) if isinstance(name, str) and name in registry else None


def _registered_names(registry):
    return lambda: set(registry.keys())


def _optimizer(name):
    target = getattr(torch.optim, name, None) if isinstance(name, str) else None
    return target if isinstance(target, type) and issubclass(target, torch.optim.Optimizer) else None


def _optimizer_names():
    return {n for n in dir(torch.optim) if _optimizer(n)}


SCHEDULERS = {
    'MultiStepLR': lr_scheduler.MultiStepRestartLR,  # BasicSR's name for its MultiStepRestartLR
    'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
    'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR,
    'CosineAnnealingRestartCyclicLR': CosineAnnealingRestartCyclicLR,
}


def _same_lengths(name, other_name, extra=0):
    """A check: list `name` holds `extra` more values than list `other_name`."""

    def check(parsed, path):
        values, others = getattr(parsed, name), getattr(parsed, other_name)
        if len(values) != len(others) + extra:
            how = f'one more value in {name} than in' if extra else f'as many values in {name} as in'
            raise OptionError(f'{path} needs {how} {other_name}; got {name}={values}, {other_name}={others}')

    return check


def _increasing(name):
    def check(parsed, path):
        values = getattr(parsed, name)
        if values != sorted(set(values)):
            raise OptionError(f'{path}.{name} must be strictly increasing, got {values}')

    return check


def _all(*checks):
    def check(parsed, path):
        for one in checks:
            one(parsed, path)

    return check


IMPORT_HINT = (' A network of another project needs its module imported first: import_modules: [package.archs] '
               'in the options file, or dckd-train --import package.archs.')

# ----- the sections dckd owns --------------------------------------------------------------------

LOSS_WEIGHT = {'loss_weight': Option(Float(0), 1.0, 'weight of the term'),
               'reduction': Option(Choice('none', 'mean', 'sum'), 'mean', 'how the loss reduces its elements')}
LOSS = Component("loss in BasicSR's LOSS_REGISTRY", _registered(LOSS_REGISTRY), _registered_names(LOSS_REGISTRY),
                 common=LOSS_WEIGHT, typed={
                     'DynamicContrastiveLoss': Section({
                         'loss_weight': Option(Float(0), 0.1, 'λ_dcl'),
                         'level_weights': Option(List(Float(0), min_length=1), None, 'one weight per VQGAN level'),
                         'eps': Option(Float(0), 1e-7, 'added to the denominator'),
                     }),
                     'DistributionMappingLoss': Section({
                         'loss_weight': Option(Float(0), 0.001, 'λ_ce'),
                         'mode': Option(Choice('paper', 'released'), 'paper', 'cross-entropy of the paper or the '
                                        "released code's double softmax"),
                     }),
                 })
LCR_LOSS = Component(LOSS.what, LOSS.lookup, LOSS.known, common=LOSS_WEIGHT,
                     extras={'prob': Option(Float(0, 1), 0.5, 'probability of each transform of A')})

FEATURE_LOSS = Component(LOSS.what, LOSS.lookup, LOSS.known, common=LOSS_WEIGHT, extras={
    'student_taps': Option(List(Text(), min_length=1), REQUIRED, "student modules whose outputs are compared "
                           "(paths of named_modules(), e.g. RCAN's body.2, SwinIR's layers.1)"),
    'teacher_taps': Option(List(Text(), min_length=1), REQUIRED, 'teacher modules, one per student tap'),
})
UPCYCLING_LOSS = Component(LOSS.what, LOSS.lookup, LOSS.known, common=LOSS_WEIGHT, extras={
    'zoom_in': Option(Int(0), 1, 'zoom-in tiles per image: LR-sized tiles of the ground truth, labelled by the teacher'),
    'zoom_out': Option(Bool(), False, 'also the LR input downscaled by the scale, against the LR input and the teacher'),
    'prob': Option(Float(0, 1), 0.3, "probability of each of LCR's transforms on a zoom-in tile"),
})

HISTORY = Section({
    'source': Option(Choice('ema', 'student'), 'ema', 'what H moves towards: the EMA student (released code) or the '
                     "student (the paper's formula)"),
    'attenuation': Option(Float(0, 1), 0.1, 'α in θ_H ← α·θ_H + (1 − α)·θ_source'),
    'steps': Option(List(Int(1), min_length=1), [1000, 2000, 3000], 'iterations between updates of H, per stage'),
    'milestones': Option(List(Int(1)), [100000, 200000], 'iterations where the next stage begins'),
}, check=_all(_same_lengths('steps', 'milestones', extra=1), _increasing('milestones')))


def _odd_kernels(parsed, path):
    low, high = parsed.kernel_range
    if low % 2 == 0 or high % 2 == 0 or low > high:
        raise OptionError(f'{path}.kernel_range must hold two odd sizes, smallest first, got {[low, high]}')


def _ordered_pair(low=None, high=None):
    return List(Float(low, high), length=2)


NEGATIVES = Section({
    'num': Option(Int(1), 5, 'N: H(x) plus N − 1 outputs H(D_j(x))'),
    'pipeline': Option(Choice('dckd', 'realworld'), 'dckd', "D_j: 'dckd', the degradations below; 'realworld' "
                       "(RealWorldKDModel), the second degradation of Real-ESRGAN's pipeline at the LQ size (blur by "
                       'the batch\'s kernel2, noise, JPEG) with the top-level options'),
    'probs': Option(Section({
        'noise': Option(Float(0, 1), 1.0, 'Gaussian noise'),
        'blur': Option(Float(0, 1), 0.0, 'Gaussian blur'),
        'resize': Option(Float(0, 1), 0.0, 'random resize and back'),
    }), {}, 'probability of each degradation, drawn per negative and sample'),
    'noise': Option(Section({
        'sigma_range': Option(_ordered_pair(0, 255), [1, 30], 'σ × 255, uniform'),
        'gray_prob': Option(Float(0, 1), 0.5, 'same noise on every channel'),
    }), {}, 'Gaussian noise'),
    'blur': Option(Section({
        'kernel_range': Option(List(Int(1), length=2), [3, 11], 'odd kernel sizes per axis'),
        'sigma_range': Option(_ordered_pair(0), [0.1, 2.0], 'σ per axis, uniform'),
    }, check=_odd_kernels), {}, 'Gaussian blur'),
    'resize': Option(Section({
        'up_prob': Option(Float(0, 1), 0.25, 'enlarge (else shrink)'),
        'up_range': Option(_ordered_pair(1), [1.0, 1.5], 'enlargement factors'),
        'down_range': Option(_ordered_pair(0, 1), [0.5, 1.0], 'shrinking factors'),
        'modes': Option(List(Choice('area', 'bilinear', 'bicubic'), min_length=1), ['area', 'bilinear', 'bicubic'],
                        'interpolations drawn from'),
    }), {}, 'random resize, then back to the original size'),
})

QUANTIZATION = Section({
    'backend': Option(Choice('x86', 'xnnpack'), 'x86', "the deployment target whose quantizer places the fake "
                      'quantization (as dckd-quantize --backend): x86 (torchao) or xnnpack (executorch)'),
    'start_iter': Option(Int(0), 0, 'the student trains as its fake-quantized twin from this iteration on (0: '
                         'from the first)'),
    'freeze_iter': Option(Optional(Int(0)), None, 'from this iteration the ranges stay as they are, fake '
                          'quantization goes on (~: never)'),
    'per_channel': Option(Bool(), True, 'weights quantized per output channel (x86 supports only this)'),
    'history': Option(Choice('quantized', 'float'), 'quantized', "DCKD's history model: fake-quantized as the student "
                      'is (its own ranges, learned on the negatives it makes), or float'),
})

PROGRESSIVE = Section({
    'milestones': Option(List(Int(1)), REQUIRED, 'iterations where the next stage begins'),
    'gt_sizes': Option(List(Int(1)), REQUIRED, 'GT patch size per stage'),
    'batch_sizes': Option(List(Int(1)), REQUIRED, 'batch size per stage'),
}, check=_all(_same_lengths('gt_sizes', 'milestones', extra=1), _same_lengths('gt_sizes', 'batch_sizes'),
              _increasing('milestones')))

SCHEDULER = Component('scheduler (known: ' + ', '.join(SCHEDULERS) + ')', SCHEDULERS.get, lambda: set(SCHEDULERS), skip=1,
                      common={'milestones': Option(List(Int(1)), None, 'iterations where the lr drops'),
                              'gamma': Option(Float(0), None, 'lr factor at each milestone'),
                              'periods': Option(List(Int(1), min_length=1), None, 'iterations per cycle'),
                              'restart_weights': Option(List(Float(0)), None, 'lr factor at each restart'),
                              'eta_min': Option(Float(0), None, 'lowest lr')}, typed={
    'CosineAnnealingRestartCyclicLR': Section({
        'periods': Option(List(Int(1), min_length=1), REQUIRED, 'iterations per cosine cycle'),
        'restart_weights': Option(List(Float(0)), [1], 'lr factor at the start of each cycle'),
        'eta_mins': Option(List(Float(0)), [0], 'lr at the end of each cycle'),
    }, check=_all(_same_lengths('periods', 'restart_weights'), _same_lengths('periods', 'eta_mins'))),
})

OPTIMIZER_ARGUMENTS = {
    'lr': Option(Float(0), None, 'learning rate'),
    'weight_decay': Option(Float(0), None, 'weight decay'),
    'betas': Option(List(Float(0, 1), length=2), None, "Adam's betas"),
    'eps': Option(Float(0), None, 'added to the denominator'),
    'momentum': Option(Float(0, 1), None, 'momentum'),
}

# BasicSR 1.4.2 reads these train: keys in models dckd does not use (GAN, video, StyleGAN...)
BASICSR_TRAIN_KEYS = ('dcn_lr_mul', 'feature_matching_opt', 'fix_flow', 'flow_lr_mul', 'ldl_opt', 'lr_flow',
                      'mixing_prob', 'net_d_reg_every', 'net_g_reg_every', 'path_batch_shrink', 'path_reg_weight',
                      'r1_reg_weight', 'tsa_iter')
OPTIMIZER = Component('torch.optim optimizer', _optimizer, _optimizer_names, skip=1, common=OPTIMIZER_ARGUMENTS)

TRAIN = Section({
    # BasicSR's, read by the student's training
    'ema_decay': Option(Float(0, 1), 0, 'EMA of the student (0: none); the EMA student is the one saved as params_ema'),
    'optim_g': Option(OPTIMIZER, REQUIRED, "the student's optimizer, any torch.optim class"),
    'scheduler': Option(SCHEDULER, REQUIRED, 'lr schedule'),
    'total_iter': Option(Int(1), REQUIRED, 'training iterations'),
    'warmup_iter': Option(Int(), -1, 'linear lr warm-up iterations (-1: none)'),
    'pixel_opt': Option(Optional(LOSS), None, 'loss to the ground truth → l_pix'),
    'perceptual_opt': Option(Optional(LOSS), None, 'perceptual loss to the ground truth → l_percep, l_style'),
    # BasicSR's GAN training (RealWorldKDModel, with network_d)
    'gan_opt': Option(Optional(LOSS), None, "GANLoss of the student's output under network_d → l_g_gan; the "
                      'discriminator learns from l_d_real, l_d_fake'),
    'optim_d': Option(Optional(OPTIMIZER), None, "the discriminator's optimizer (the scheduler drives it too)"),
    'net_d_iters': Option(Int(1), 1, 'the student steps every this many iterations (the discriminator every one)'),
    'net_d_init_iters': Option(Int(0), 0, 'the first iterations train the discriminator alone'),
    # VQGANModel's
    'codebook_weight': Option(Float(0), 1.0, 'VQGANModel: weight of the codebook + commitment loss → l_codebook'),
    'disc_start': Option(Int(0), 0, "VQGANModel: the discriminator and the network's GAN term start at this "
                         "iteration (taming: 250001 for ImageNet)"),
    # dckd's terms
    'kd_opt': Option(Optional(LOSS), None, 'Logits KD: loss between S(x) and T(x) → l_kd'),
    'lcr_opt': Option(Optional(LCR_LOSS), None, 'label consistency: loss between S(x) and A⁻¹(T(A(x))) → l_lcr'),
    'feature_opt': Option(Optional(FEATURE_LOSS), None, 'FAKD: loss between spatial affinities of tapped student '
                          'and teacher features → l_fakd'),
    'hint_opt': Option(Optional(FEATURE_LOSS), None, "FitNets: loss between tapped student features mapped by "
                       "learned 1x1 regressors and the teacher's → l_hint"),
    'upcycling_opt': Option(Optional(UPCYCLING_LOSS), None, 'DUKD: zoom-in tiles of the ground truth (and zoom-out '
                            'inputs) labelled by the teacher → l_zoom_in, l_zoom_out_pix, l_zoom_out_kd'),
    'contrastive_opt': Option(Optional(LOSS), None, 'DCR: DynamicContrastiveLoss → l_dcl'),
    'distribution_opt': Option(Optional(LOSS), None, 'DMM: DistributionMappingLoss → l_ce'),
    'history': Option(HISTORY, {}, 'history model H of the dynamic negatives (with contrastive_opt)'),
    'negatives': Option(NEGATIVES, {}, 'negatives H(x), H(D_j(x)) (with contrastive_opt)'),
    'progressive': Option(Optional(PROGRESSIVE), None, "Restormer's progressive patches"),
    'quantization': Option(Optional(QUANTIZATION), None, 'quantization-aware training: the student trains as its '
                           'fake-quantized twin, validation scores it, and the run ends with its INT8 artifact '
                           '(models/net_g_int8.pth)'),
    'teacher_check': Option(Bool(), True, 'before training, the teacher on the first validation set against bicubic '
                            '(or the input at scale 1); more than 0.5 dB worse stops the run (not in RealWorldKDModel)'),
    # cost
    'precision': Option(Choice('float32', 'bfloat16'), 'float32', 'forward passes under bfloat16 autocast (weights, '
                        'gradients and losses stay float32)'),
    'frozen_chunk': Option(Optional(Int(1)), None, 'images per no-grad pass over the negatives (~: the batch size)'),
    'vqgan_recompute': Option(Bool(), True, "recompute the anchor's VQGAN activations in backward"),
    'compile_frozen': Option(Bool(), False, 'torch.compile teacher, history model and VQGAN'),
}, passthrough=BASICSR_TRAIN_KEYS)

PATH = Section({
    'pretrain_network_g': Option(Optional(Text()), None, 'student initialisation'),
    'param_key_g': Option(Text(), 'params', 'key of its weights'),
    'strict_load_g': Option(Bool(), True, 'load it strictly'),
    'resume_state': Option(Optional(Text()), None, 'training state to resume from'),
    'ignore_resume_networks': Option(Optional(List(Text())), None, 'networks not reloaded on resume'),
    'pretrain_network_t': Option(Optional(Text()), None, 'teacher checkpoint (required with a teacher term)'),
    'param_key_t': Option(Optional(Text()), 'params', 'key of its weights (~: the checkpoint is the state dict)'),
    'strict_load_t': Option(Bool(), True, 'load it strictly'),
    'pretrain_network_vqgan': Option(Optional(Text()), None, "taming's VQGAN .ckpt or dckd-convert-vqgan's .pth "
                                     '(~: random encoder)'),
    'pretrain_network_d': Option(Optional(Text()), None, 'discriminator initialisation (~: random)'),
    'param_key_d': Option(Text(), 'params', 'key of its weights'),
    'strict_load_d': Option(Bool(), True, 'load it strictly'),
}, passthrough=('experiments_root', 'models', 'training_states', 'log', 'visualization', 'results_root'))


class Mapping(Kind):
    """Free names (datasets' phases, metrics' names), each parsed by `item`."""

    def __init__(self, item, names_start=()):
        self.item, self.names_start = item, names_start

    def parse(self, value, path):
        if not isinstance(value, dict):
            raise OptionError(f'{path} must be a mapping, got {value!r}')
        for name in value:
            if self.names_start and not str(name).startswith(self.names_start):
                raise OptionError(f'{path}.{name}: unknown phase; names start with {" or ".join(self.names_start)}')
        return {name: self.item.parse(item, f'{path}.{name}') for name, item in value.items()}

    def describe(self):
        return 'mapping'


IO_BACKEND = Section({
    'type': Option(Choice('disk', 'lmdb', 'memcached'), REQUIRED, "BasicSR's file backend"),
}, passthrough=('db_paths', 'client_keys', 'server_list_cfg', 'client_cfg', 'sys_path'))

# what BasicSR's data loaders and datasets read of a dataset's options, by where it applies
LOADER = {  # a training set's loader (basicsr/data/__init__.py, basicsr/train.py)
    'batch_size_per_gpu': Option(Int(1), REQUIRED, 'images per process and iteration'),
    'num_worker_per_gpu': Option(Int(0), REQUIRED, 'data loader workers per process'),
    'dataset_enlarge_ratio': Option(Int(1), 1, 'the data set repeated this many times an epoch'),
    'use_shuffle': Option(Bool(), True, 'shuffle every epoch'),
    'prefetch_mode': Option(Optional(Choice('cpu', 'cuda')), None, 'prefetch batches'),
    'num_prefetch_queue': Option(Int(1), 1, 'batches prefetched'),
    'pin_memory': Option(Bool(), False, 'pinned host memory'),
    'persistent_workers': Option(Bool(), False, 'keep the workers between epochs'),
}
IMAGES = {  # every image dataset
    'name': Option(Text(), REQUIRED, 'name in the log'),
    'type': Option(Text(), REQUIRED, 'the dataset class'),
    'io_backend': Option(IO_BACKEND, REQUIRED, 'where the images are read from'),
    'meta_info_file': Option(Optional(Text()), None, 'the image list (default: every file)'),
    'mean': Option(Optional(List(Float())), None, 'normalisation mean'),
    'std': Option(Optional(List(Float())), None, 'normalisation std'),
    'color': Option(Optional(Choice('y')), None, "'y': the Y channel only"),
}
PAIRS = {
    'dataroot_gt': Option(Text(), REQUIRED, 'ground-truth images (folder or LMDB)'),
    'dataroot_lq': Option(Text(), REQUIRED, 'degraded images (folder or LMDB)'),
    'filename_tmpl': Option(Text(), '{}', 'LQ file name from the GT one'),
}
CROPS = {  # a paired training set: random crops, flips and rotations
    'gt_size': Option(Int(1), REQUIRED, 'GT patch size (the LQ patch is gt_size / scale)'),
    'use_hflip': Option(Bool(), REQUIRED, 'random horizontal flips (and vertical with use_rot)'),
    'use_rot': Option(Bool(), REQUIRED, 'random vertical flips and transposes'),
}
KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso')


def _kernels(stage, sigma):
    """The blur kernel options of one degradation of RealESRGANDataset ('' or '2'), with Real-ESRGAN's values."""
    return {
        f'blur_kernel_size{stage}': Option(Int(1), REQUIRED, 'largest kernel (Real-ESRGAN: 21)'),
        f'kernel_list{stage}': Option(List(Choice(*KERNEL_TYPES), min_length=1), REQUIRED,
                                      'kernel types drawn from (Real-ESRGAN: all six)'),
        f'kernel_prob{stage}': Option(List(Float(0, 1), min_length=1), REQUIRED, 'probability of each kernel type '
                                      '(Real-ESRGAN: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])'),
        f'sinc_prob{stage}': Option(Float(0, 1), REQUIRED, 'probability of a sinc (ringing) kernel instead '
                                    '(Real-ESRGAN: 0.1)'),
        f'blur_sigma{stage}': Option(_ordered_pair(0), REQUIRED, f'kernel sigma range (Real-ESRGAN: {sigma})'),
        f'betag_range{stage}': Option(_ordered_pair(0), REQUIRED, 'shape of generalized Gaussian kernels '
                                      '(Real-ESRGAN: [0.5, 4])'),
        f'betap_range{stage}': Option(_ordered_pair(0), REQUIRED, 'shape of plateau kernels (Real-ESRGAN: [1, 2])'),
    }


def _kernel_lists(parsed, path):
    for stage in ('', '2'):
        kinds, probs = getattr(parsed, f'kernel_list{stage}'), getattr(parsed, f'kernel_prob{stage}')
        if len(kinds) != len(probs):
            raise OptionError(f'{path} needs one kernel_prob{stage} per kernel_list{stage} entry; got {len(probs)} '
                              f'probabilities for {len(kinds)} kernel types')
    if parsed.io_backend.type == 'disk' and parsed.meta_info is None:
        raise OptionError(f"{path}.meta_info is not set: RealESRGANDataset reads its image list from it (one path "
                          "per line, relative to dataroot_gt; e.g. 'cd DATAROOT_GT && ls > meta_info.txt').")


REALWORLD_DATASET = {
    'dataroot_gt': Option(Text(), REQUIRED, 'ground-truth images (folder or LMDB)'),
    'meta_info': Option(Optional(Text()), None, 'the image list, one path per line (required from a folder)'),
    'use_hflip': Option(Bool(), REQUIRED, 'random horizontal flips'),
    'use_rot': Option(Bool(), REQUIRED, 'random vertical flips and transposes'),
    'gt_size': Option(Int(1), None, 'unused by the dataset (the crop size is the top-level gt_size)'),
    **_kernels('', [0.2, 3]), **_kernels('2', [0.2, 1.5]),
    'final_sinc_prob': Option(Float(0, 1), REQUIRED, 'probability of the final sinc filter (Real-ESRGAN: 0.8)'),
}
HR_CROPS = {k: CROPS[k] for k in ('gt_size', 'use_hflip', 'use_rot')}
SET_BY_BASICSR = ('phase', 'scale')
KNOWN_DATASETS = {  # name: (options of every phase, more options of the training phase[, check])
    'HRImageDataset': ({**{k: IMAGES[k] for k in ('name', 'type', 'io_backend', 'meta_info_file')},
                        'dataroot_gt': Option(Text(), REQUIRED, 'HR images (folder or LMDB)')}, HR_CROPS),
    'PairedImageDataset': ({**IMAGES, **PAIRS}, CROPS),
    'PaddedPairedImageDataset': ({**IMAGES, **PAIRS}, CROPS),
    'SingleImageDataset': ({**IMAGES, 'dataroot_lq': Option(Text(), REQUIRED, 'images to restore')}, {}),
    # BasicSR 1.4.2's name for Real-ESRGAN's dataset: HR images and the blur kernels of each sample
    'RealESRGANDataset_basicsr': ({k: IMAGES[k] for k in ('name', 'type', 'io_backend')}, REALWORLD_DATASET,
                                  _kernel_lists),
}


class Dataset(Kind):
    """A dataset: a registered `type`; for the datasets of KNOWN_DATASETS its options typed as
    BasicSR reads them (the training phase's loader and crops too); another project's dataset is
    left to itself (`dckd-train --check` says so)."""

    def parse(self, value, path):
        if not isinstance(value, dict) or value.get('type') not in DATASET_REGISTRY:
            name = value.get('type') if isinstance(value, dict) else value
            hint = (' (BasicSR registers it from version 1.4.2)' if str(name).endswith('_basicsr') else '')
            raise OptionError(f'{path}.type: no dataset named {name!r}'
                              f'{closest(name, DATASET_REGISTRY.keys())}{hint}')
        if value['type'] in KNOWN_DATASETS:
            options, training, *check = KNOWN_DATASETS[value['type']]
            train = path.rsplit('.', 1)[-1].startswith('train')
            loader = LOADER if train else {}  # validation loaders take none of these; accepted, unused
            Section({**options, **(training if train else {}), **loader},
                    passthrough=SET_BY_BASICSR + ((() if train else tuple(LOADER) + tuple(CROPS))),
                    check=check[0] if check and train else None).parse(value, path)
        return value

    def describe(self):
        return 'mapping'


VAL = Section({
    'val_freq': Option(Float(1), REQUIRED, 'validate every this many iterations'),
    'save_img': Option(Bool(), False, 'save the validation images'),
    'metrics': Option(Mapping(Component("metric in BasicSR's METRIC_REGISTRY", _registered(METRIC_REGISTRY),
                                        _registered_names(METRIC_REGISTRY), skip=('img', 'img2'))), {},
                      'metrics by name'),
    'pbar': Option(Bool(), False, 'progress bar'),
    'suffix': Option(Optional(Text()), None, 'suffix of saved images'),
}, passthrough=('center_frame_only', 'flip_seq', 'num_val_samples'))

LOGGER = Section({
    'print_freq': Option(Float(1), 100, 'log every this many iterations'),
    'save_checkpoint_freq': Option(Float(1), REQUIRED, 'checkpoint every this many iterations'),
    'use_tb_logger': Option(Bool(), False, 'TensorBoard'),
    'keep_checkpoints': Option(Optional(Int(1)), None, 'keep the newest K complete checkpoints, deleting older ones '
                               'once a newer one is complete (~: keep all)'),
}, passthrough=('wandb', ))

VQGAN_ARGUMENTS = {
    'ch': Option(Int(1), 128, 'channels of the first level'),
    'ch_mult': Option(List(Int(1), min_length=1), [1, 1, 2, 2, 4], 'channel multiplier per level (one DCR feature '
                      'level each; 2^(levels - 1) is the downsampling factor)'),
    'num_res_blocks': Option(Int(1), 2, 'residual blocks per level'),
    'attn_resolutions': Option(List(Int(1)), [16], 'resolutions with self-attention'),
    'resolution': Option(Int(1), 256, 'the training resolution those refer to'),
    'z_channels': Option(Int(1), 256, 'latent channels'),
    'embed_dim': Option(Int(1), 256, 'codebook vector size'),
    'n_embed': Option(Int(1), 1024, 'codebook size'),
    'input_range': Option(Choice([-1, 1], [0, 1]), [-1, 1], "taming's range, or the released code's [0, 1]"),
}

ARCH = Component("network in BasicSR's ARCH_REGISTRY", _registered(ARCH_REGISTRY), _registered_names(ARCH_REGISTRY),
                 hint=IMPORT_HINT,
                 typed={
                     'PretrainedModel': Section({
                         'path': Option(Text(), REQUIRED, 'type PretrainedModel: the model file (.pth, .pt, .ckpt, '
                                        '.safetensors); spandrel detects its architecture'),
                         'param_key': Option(Optional(Text()), None, 'key of its weights (~: found by spandrel, '
                                             'params_ema before params)'),
                     }),
                     'VQGANEncoder': Section({
                         **VQGAN_ARGUMENTS,
                         'dropout': Option(Float(0, 1), 0.0, 'dropout (inactive: the encoder is frozen)'),
                     }),
                     'VQGAN': Section({  # VQGANModel's network_g
                         **VQGAN_ARGUMENTS,
                         'dropout': Option(Float(0, 1), 0.0, 'dropout in the residual blocks'),
                         'beta': Option(Float(0), 0.25, 'weight of the commitment term (VQ-VAE, taming: 0.25)'),
                         'quantizer': Option(Choice('taming', 'ema'), 'taming', "taming's (nearest code, codebook "
                                             "and commitment losses), or 'ema': vector-quantize-pytorch's EMA code "
                                             'updates, k-means start and dead-code restarts (docs/vqgan.md)'),
                     }),
                     'PatchDiscriminator': Section({
                         'num_in_ch': Option(Int(1), 3, 'image channels'),
                         'num_feat': Option(Int(1), 64, 'channels of the first convolution'),
                         'num_layers': Option(Int(1), 3, 'stride-2 convolutions (taming: 3)'),
                     }),
                 })

# top-level keys BasicSR 1.4.2 sets itself or reads in models dckd does not use
BASICSR_TOP_KEYS = ('is_train', 'dist', 'rank', 'world_size', 'root_path', 'auto_resume', 'num_gpu', 'dist_params',
                    'find_unused_parameters', 'high_order_degradation')


def _degradation(stage):
    """The top-level options of one degradation of Real-ESRGAN's pipeline ('' or '2')."""
    kinds = {
        'resize_prob': (List(Float(0, 1), length=3), 'probabilities of resizing up, down, or keeping the size'),
        'resize_range': (_ordered_pair(0), 'smallest and largest resize factor'),
        'gaussian_noise_prob': (Float(0, 1), 'Gaussian noise (else Poisson noise)'),
        'noise_range': (_ordered_pair(0, 255), 'Gaussian sigma x 255, uniform'),
        'poisson_scale_range': (_ordered_pair(0), 'Poisson noise scale, uniform'),
        'gray_noise_prob': (Float(0, 1), 'the same noise on every channel'),
        'jpeg_range': (_ordered_pair(1, 100), 'JPEG quality, uniform'),
    }
    return {f'{name}{stage}': Option(kind, REALWORLD_DEFAULTS[f'{name}{stage}'], doc)
            for name, (kind, doc) in kinds.items()}


# the two degradations of Real-ESRGAN's pipeline: top-level keys of its options files (defaults: RealESRGAN_x4plus's)
DEGRADATION = {
    **_degradation(''),
    'second_blur_prob': Option(Float(0, 1), REALWORLD_DEFAULTS['second_blur_prob'],
                               'the second degradation blurs (by kernel2)'),
    **_degradation('2'),
}
# the top-level options of Real-ESRGAN's options files, read by RealWorldKDModel
REALWORLD = {
    'gt_size': Option(Optional(Int(1)), None, 'RealWorldKDModel: GT patch cut from each degraded pair (Real-ESRGAN: '
                      '256)'),
    'queue_size': Option(Int(0), PAIR_DEFAULTS['queue_size'], 'pairs in the training pair pool (0: none); a multiple '
                         'of the batch size'),
    'l1_gt_usm': Option(Bool(), True, 'the pixel loss against the sharpened GT'),
    'percep_gt_usm': Option(Bool(), True, 'the perceptual loss against the sharpened GT'),
    'gan_gt_usm': Option(Bool(), False, 'the discriminator sees the sharpened GT as real'),
    **DEGRADATION,
}

# the options that switch distillation terms on (every term needs the teacher), in the order the terms run
TEACHER_TERMS = tuple(option for term in term_classes() for option in term.options)
VQGAN_TERMS = DynamicContrastiveKD.options


def needs_teacher(train):
    return any(getattr(train, term) for term in TEACHER_TERMS)


def needs_vqgan(train):
    return any(getattr(train, term) for term in VQGAN_TERMS)


def is_rewritten_by_resume(path, network_key):
    """BasicSR's `check_resume` points every `pretrain_network_*` at `net_<label>_<iter>.pth` unless
    the network is listed in `ignore_resume_networks`; frozen networks are never saved there, so
    KDModel.resume_training restores them from the training state instead."""
    return bool(path.resume_state) and network_key not in (path.ignore_resume_networks or [])


def _check_checkpoint(parsed, network_key, what, required):
    path_key = f'pretrain_{network_key}'
    if is_rewritten_by_resume(parsed.path, network_key):
        return
    file = getattr(parsed.path, path_key)
    if file is None:
        if required:
            raise OptionError(f'path.{path_key} is not set: {what} needs a pretrained checkpoint.')
    elif not os.path.isfile(file):
        raise OptionError(f'path.{path_key}: {what} checkpoint not found: {file}. {_how_to_get(file)}')


def _how_to_get(file):
    """The one dckd-fetch command that puts `file` in place, where it is a known file."""
    entry = known_at(file)
    if entry is None:
        return 'Put the file there or correct the path (docs/teachers.md).'
    return f'Get it with: dckd-fetch {entry.name}'


def _networks(parsed):
    return {key: getattr(parsed, key) for key in ('network_g', 'network_t') if getattr(parsed, key)}


def _check_scales(parsed):
    for network_key, network in _networks(parsed).items():
        for key in ('upscale', 'scale'):
            value = network.arguments.get(key)
            if value is not None and value != parsed.scale:
                raise OptionError(f'{network_key}.{key} = {value} does not match scale = {parsed.scale}: teacher, '
                                  'student and data must use the same scale.')


def _check_windows(parsed):
    train_set = (parsed.datasets or {}).get('train', {})
    if 'gt_size' not in train_set:
        return
    lq_size = train_set['gt_size'] // parsed.scale
    for network_key, network in _networks(parsed).items():
        window = network.arguments.get('window_size')
        if window and lq_size % window:
            raise OptionError(f'datasets.train.gt_size / scale = {train_set["gt_size"]} / {parsed.scale} = {lq_size} '
                              f'is not a multiple of {network_key}.window_size = {window}; choose gt_size = '
                              f'{parsed.scale} * a multiple of {window}.')


def _check_progressive(parsed):
    """The loader must deliver the largest stage; the progressive schedule only shrinks it."""
    train_set = (parsed.datasets or {}).get('train', {})
    stages = parsed.train.progressive
    for key, values in (('gt_size', stages.gt_sizes), ('batch_size_per_gpu', stages.batch_sizes)):
        if key in train_set and max(values) > train_set[key]:
            raise OptionError(f'train.progressive asks for {key} {max(values)} but datasets.train.{key} is '
                              f'{train_set[key]}: set datasets.train.{key} to the largest stage, {max(values)}.')


TEACHER_CHECK_SKIPPED = ('check skipped: a real-world teacher (RealWorldKDModel) is not judged by PSNR against '
                         'bicubic on paired images')


def synthesizes_pairs(model_type):
    """Whether the model makes its LQ inputs from HR images (RealWorldKDModel)."""
    model = MODEL_REGISTRY.get(model_type) if model_type in MODEL_REGISTRY else None
    return bool(getattr(model, 'synthesizes_pairs', False))


def _check_realworld(parsed, synthesizes):
    """RealESRGANDataset, the degradation and the GAN belong together, in RealWorldKDModel."""
    train_set, train = (parsed.datasets or {}).get('train', {}), parsed.train
    realworld_set = train_set.get('type') in REALWORLD_DATASETS
    if not synthesizes:
        for used, what in ((realworld_set, f'datasets.train.type {train_set.get("type")} gives HR images and blur '
                                           'kernels; the LQ images'),
                           (parsed.network_d, 'network_d: the GAN'),
                           (train.gan_opt, 'train.gan_opt: the GAN'),
                           (train.negatives.pipeline == 'realworld', 'train.negatives.pipeline = realworld: that '
                                                                     'pipeline')):
            if used:
                raise OptionError(f'{what} are made by model_type RealWorldKDModel, not {parsed.model_type}: set '
                                  'model_type: RealWorldKDModel.')
        return
    if train_set and not realworld_set:
        raise OptionError(f'datasets.train.type is {train_set.get("type")}: {parsed.model_type} degrades HR images '
                          'with the blur kernels RealESRGANDataset draws; use type: RealESRGANDataset_basicsr.')
    if parsed.gt_size is None:
        raise OptionError(f'gt_size is not set: {parsed.model_type} cuts GT patches of gt_size (top level, as in '
                          "Real-ESRGAN's options; e.g. gt_size: 256) from each degraded pair.")
    if parsed.gt_size % parsed.scale or parsed.gt_size > 400:
        raise OptionError(f'gt_size = {parsed.gt_size} must be a multiple of scale = {parsed.scale} and at most 400 '
                          '(RealESRGANDataset crops or pads every image to 400x400).')
    if train.contrastive_opt and train.negatives.pipeline == 'realworld' and parsed.gt_size // parsed.scale <= 10:
        raise OptionError(f'train.negatives.pipeline = realworld blurs LQ patches with 21x21 kernels: the LQ patch '
                          f'gt_size / scale = {parsed.gt_size // parsed.scale} must be at least 11 pixels; raise '
                          f'gt_size to {11 * parsed.scale} or more.')
    batch = train_set.get('batch_size_per_gpu')
    if parsed.queue_size and isinstance(batch, int) and parsed.queue_size % batch:
        raise OptionError(f'queue_size = {parsed.queue_size} must be a multiple of datasets.train.batch_size_per_gpu '
                          f'= {batch} (or 0: no training pair pool).')
    for stage in ('', '2'):
        probs = getattr(parsed, f'resize_prob{stage}')
        if abs(sum(probs) - 1) > 1e-6:
            raise OptionError(f'resize_prob{stage} holds the probabilities of resizing up, down and keeping the size: '
                              f'they must add up to 1, got {probs}.')
    _check_gan(parsed)


def _check_quantization(parsed):
    train, quantization = parsed.train, parsed.train.quantization
    if quantization.freeze_iter is not None and quantization.freeze_iter < quantization.start_iter:
        raise OptionError(f'train.quantization.freeze_iter ({quantization.freeze_iter}) comes before start_iter '
                          f'({quantization.start_iter}): the ranges freeze after they start.')
    if not quantization.per_channel and quantization.backend in PER_CHANNEL_ONLY:
        raise OptionError(f'train.quantization.per_channel: false, but {per_channel_only(quantization.backend)}; use '
                          f'per_channel: true, or backend: xnnpack.')
    try:
        require(quantization.backend)
    except QuantizationError as error:
        raise OptionError(f'train.quantization.backend: {error}') from error
    if train.precision != 'float32':
        raise OptionError(f'train.quantization with train.precision {train.precision}: fake quantization runs in '
                          'float32; set precision: float32.')
    for option in ('feature_opt', 'hint_opt'):
        if getattr(train, option):
            raise OptionError(f"train.{option} taps modules of the student, which its fake-quantized twin under "
                              'train.quantization does not have (torch.export makes one graph of them): remove '
                              f'train.{option} or train.quantization.')


def vgg19_weights():
    """Where VGG19's ImageNet weights are, or None: BasicSR's PerceptualLoss reads VGG_PRETRAIN_PATH,
    else has torchvision download them (into torch's cache) while the model is built."""
    places = vgg19_places()
    return next((place for place in places if os.path.isfile(place)), None)


def vgg19_places():
    return [VGG_PRETRAIN_PATH, os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(VGG_PRETRAIN_PATH))]


def trains_vqgan(model_type):
    """Whether the model trains a VQGAN (VQGANModel) rather than a restoration network."""
    model = MODEL_REGISTRY.get(model_type) if model_type in MODEL_REGISTRY else None
    return bool(getattr(model, 'trains_vqgan', False))


def _check_gan(parsed):
    gan = {'network_d': parsed.network_d, 'train.gan_opt': parsed.train.gan_opt, 'train.optim_d': parsed.train.optim_d}
    if any(gan.values()) and not all(gan.values()):
        missing = ', '.join(key for key, value in gan.items() if not value)
        given = ', '.join(key for key, value in gan.items() if value)
        raise OptionError(f'{missing} missing: the GAN stage needs network_d, train.gan_opt and train.optim_d '
                          f'together (given: {given}).')


def vqgan_downsampling(network):
    """The downsampling factor of a VQGAN or VQGANEncoder network's options: 2^(levels - 1)."""
    return 2**(len(network.arguments.get('ch_mult', [1, 1, 2, 2, 4])) - 1)


def _check_vqgan(parsed):
    """VQGANModel trains network_g, a VQGAN, on HR images: no teacher, no distillation term."""
    if parsed.network_g.type != 'VQGAN':
        raise OptionError(f'network_g.type is {parsed.network_g.type}: {parsed.model_type} trains a VQGAN (type: '
                          'VQGAN, with the arguments of the VQGANEncoder it will serve).')
    train = parsed.train
    if not train.pixel_opt:
        raise OptionError('train.pixel_opt is missing: the VQGAN needs a loss to the image it reconstructs (taming: '
                          'pixel_opt: {type: L1Loss, loss_weight: 1.0}).')
    unused = [f'train.{term}' for term in TEACHER_TERMS + VQGAN_TERMS if getattr(train, term)]
    unused += [key for key, used in (('network_t', parsed.network_t), ('network_vqgan', parsed.network_vqgan),
                                     ('train.ema_decay', train.ema_decay), ('train.quantization', train.quantization),
                                     ('train.progressive', train.progressive)) if used]
    if unused:
        raise OptionError(f'{", ".join(unused)}: {parsed.model_type} trains a VQGAN and distils nothing; remove '
                          f'{"it" if len(unused) == 1 else "them"}.')
    for phase, dataset in (parsed.datasets or {}).items():
        if dataset.get('type') != 'HRImageDataset':
            raise OptionError(f'datasets.{phase}.type is {dataset.get("type")}: {parsed.model_type} reconstructs HR '
                              'images; use type: HRImageDataset (dataroot_gt: the images).')
    factor, train_set = vqgan_downsampling(parsed.network_g), (parsed.datasets or {}).get('train', {})
    if train_set.get('gt_size', factor) % factor:
        raise OptionError(f'datasets.train.gt_size = {train_set["gt_size"]} is not a multiple of the VQGAN\'s '
                          f'downsampling factor {factor} (2^(len(network_g.ch_mult) - 1)); choose a multiple of '
                          f'{factor}.')
    if (parsed.network_g.arguments.get('quantizer') == 'ema'
            and importlib.util.find_spec('vector_quantize_pytorch') is None):
        raise OptionError("network_g.quantizer: ema needs vector-quantize-pytorch, not installed here: pip install "
                          "'dckd[vqgan]' (or vector-quantize-pytorch==1.32.0), or use quantizer: taming.")
    if train.disc_start and not parsed.network_d:
        raise OptionError(f'train.disc_start = {train.disc_start} needs a discriminator: add network_d (type: '
                          'PatchDiscriminator), train.gan_opt and train.optim_d, or remove disc_start.')
    _check_gan(parsed)


def _check_run(parsed, path):
    """Rules between sections: what each enabled term needs, and what must agree."""
    model = MODEL_REGISTRY.get(parsed.model_type) if parsed.model_type in MODEL_REGISTRY else None
    if model is None:
        raise OptionError(f"model_type: no model named {parsed.model_type!r}{closest(parsed.model_type, ['KDModel', 'DCKDModel'])}")
    if trains_vqgan(parsed.model_type):
        return _check_vqgan(parsed)
    train = parsed.train
    if not (train.pixel_opt or train.perceptual_opt):
        raise OptionError('train.pixel_opt is missing: the student needs a loss to the ground truth '
                          '(e.g. pixel_opt: {type: L1Loss, loss_weight: 1.0}).')
    vqgan_terms = [term for term in VQGAN_TERMS if getattr(train, term)]
    if needs_teacher(train):
        if parsed.network_t is None:
            terms = ', '.join(t for t in TEACHER_TERMS if getattr(train, t))
            raise OptionError(f'network_t is missing: {terms} need a teacher.')
    if vqgan_terms:
        if parsed.network_vqgan is None:
            raise OptionError(f'network_vqgan is missing: {", ".join(vqgan_terms)} need the VQGAN encoder '
                              '(type: VQGANEncoder).')
    if train.contrastive_opt:
        if train.history.source == 'ema' and not train.ema_decay > 0:
            raise OptionError("train.history.source = ema needs train.ema_decay > 0 (or use source: student).")
        levels = len(parsed.network_vqgan.arguments.get('ch_mult', [1, 1, 2, 2, 4]))
        weights = train.contrastive_opt.arguments.get('level_weights')
        given = f'has {len(weights)} weights' if weights is not None else (
            f"is not set, so the paper's {len(PAPER_LEVEL_WEIGHTS)} weights apply")
        if len(weights if weights is not None else PAPER_LEVEL_WEIGHTS) != levels:
            raise OptionError(f'train.contrastive_opt.level_weights {given}, but network_vqgan gives {levels} feature '
                              f'levels (one per ch_mult entry): give {levels} weights.')
    for cls, components in enabled_terms(train):
        if issubclass(cls, PairedTaps):
            option = components[cls.options[0]]
            if len(option.student_taps) != len(option.teacher_taps):
                raise OptionError(f'train.{cls.options[0]} pairs student_taps with teacher_taps: give as many of each, '
                                  f'got {option.student_taps} and {option.teacher_taps}')
    if train.upcycling_opt and parsed.scale == 1:
        raise OptionError('train.upcycling_opt (DUKD) needs scale > 1: its zoom-in tiles are LR-sized tiles of the '
                          'ground truth.')
    if train.progressive:
        _check_progressive(parsed)
    if train.quantization:
        _check_quantization(parsed)
    _check_realworld(parsed, synthesizes_pairs(parsed.model_type))
    _check_scales(parsed)
    _check_windows(parsed)


TRAINING = Section({
    'name': Option(Text(), REQUIRED, 'the experiment: experiments/<name>/'),
    'model_type': Option(Text(), REQUIRED, 'DCKDModel (or KDModel, the same model): every term its options switch on'),
    'scale': Option(Int(1), 1, 'upscaling factor (1 for deblurring and deraining)'),
    'manual_seed': Option(Optional(Int()), None, 'random seed (required with several processes)'),
    'import_modules': Option(List(Text()), [], "modules imported first, e.g. another project's archs"),
    'fused_attention': Option(Bool(), False, 'SwinIR window attention through the fused kernel (same weights)'),
    'datasets': Option(Mapping(Dataset(), names_start=('train', 'val', 'test')), REQUIRED, 'train and val sets'),
    'network_g': Option(ARCH, REQUIRED, 'the student'),
    'network_t': Option(Optional(ARCH), None, 'the frozen teacher (eval mode, no gradients, never saved)'),
    'network_vqgan': Option(Optional(ARCH), None, 'VQGANEncoder: the frozen feature space of DCR and DMM'),
    'network_d': Option(Optional(ARCH), None, 'RealWorldKDModel: the discriminator of the GAN stage (e.g. '
                        'UNetDiscriminatorSN_basicsr); VQGANModel: PatchDiscriminator'),
    **REALWORLD,
    'path': Option(PATH, {}, 'checkpoints'),
    'train': Option(TRAIN, REQUIRED, 'training'),
    'val': Option(Optional(VAL), None, 'validation'),
    'logger': Option(LOGGER, REQUIRED, 'logging and checkpoints'),
}, passthrough=BASICSR_TOP_KEYS, check=_check_run)


def _check_model_file(parsed, network_key):
    """A PretrainedModel reads its own file: it must exist, and no checkpoint is loaded into it."""
    if is_rewritten_by_resume(parsed.path, network_key):
        return  # BasicSR's resume points pretrain_<network_key> at a file it never writes; nothing is loaded from it
    if getattr(parsed.path, f'pretrain_{network_key}') is not None:
        raise OptionError(f'path.pretrain_{network_key}: {network_key} is a PretrainedModel, which reads its weights '
                          f'from {network_key}.path; remove path.pretrain_{network_key}.')
    file = getattr(parsed, network_key).arguments['path']
    if not os.path.isfile(file):
        raise OptionError(f'{network_key}.path: model file not found: {file}. {_how_to_get(file)}')


def check_checkpoint_files(parsed):
    """The checkpoints the run needs exist (their contents are checked when they are loaded)."""
    if parsed.network_t is not None and needs_teacher(parsed.train):
        if parsed.network_t.type == 'PretrainedModel':
            _check_model_file(parsed, 'network_t')
        else:
            _check_checkpoint(parsed, 'network_t', 'the teacher', required=True)
    if parsed.network_vqgan is not None and needs_vqgan(parsed.train):
        _check_checkpoint(parsed, 'network_vqgan', 'the VQGAN encoder', required=False)
    if parsed.network_d is not None:
        _check_checkpoint(parsed, 'network_d', 'the discriminator', required=False)


def import_modules(names, where):
    """Import the modules that register another project's archs, losses or datasets."""
    names = [] if names is None else names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OptionError(f'{where} must be a list of module names, e.g. [hat.archs], got {names!r}')
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise OptionError(f'{where}: cannot import {name!r} ({error}). Install the package that provides it '
                              'into this environment (pip install ...) or correct the module name.') from error


def parse_training_options(opt, check_files=True):
    """The typed training options of a KDModel/DCKDModel run, or OptionError; with `check_files`,
    the checkpoints they name must exist."""
    parsed = TRAINING.parse(opt, '')
    if check_files:
        check_checkpoint_files(parsed)
    return parsed


# ----- the option table of docs/options.md -----------------------------------------------------------------

# what dckd adds to a BasicSR options file (the rest of TRAINING is BasicSR's own keys, typed)
DCKD_KEYS = ('import_modules', 'fused_attention', 'network_t', 'network_vqgan', 'path.pretrain_network_t',
             'path.param_key_t', 'path.strict_load_t', 'path.pretrain_network_vqgan', 'train.kd_opt', 'train.lcr_opt',
             'train.feature_opt', 'train.hint_opt', 'train.upcycling_opt', 'train.contrastive_opt',
             'train.distribution_opt', 'train.history', 'train.negatives', 'train.progressive', 'train.teacher_check',
             'network_d', 'train.gan_opt', 'train.optim_d', 'train.net_d_iters', 'train.net_d_init_iters',
             'gt_size', 'queue_size', 'l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm', 'resize_', 'gaussian_noise_prob',
             'noise_range', 'poisson_scale_range', 'gray_noise_prob', 'jpeg_range', 'second_blur_prob',
             'train.precision', 'train.frozen_chunk', 'train.vqgan_recompute', 'train.compile_frozen', 'train.quantization',
             'logger.keep_checkpoints', 'train.codebook_weight', 'train.disc_start')
TYPED_ARGUMENTS = {'train.contrastive_opt': (LOSS, 'DynamicContrastiveLoss'),
                   'train.distribution_opt': (LOSS, 'DistributionMappingLoss'),
                   'network_t': (ARCH, 'PretrainedModel'), 'network_vqgan': (ARCH, 'VQGANEncoder'),
                   'train.lcr_opt': (LCR_LOSS, None), 'train.feature_opt': (FEATURE_LOSS, None),
                   'train.hint_opt': (FEATURE_LOSS, None),
                   'train.upcycling_opt': (UPCYCLING_LOSS, None)}


def _shown_default(value):
    """A default as it is written in YAML."""
    if value is REQUIRED:
        return 'required'
    if value is None:
        return '~'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return ''
    if isinstance(value, float):
        return f'{value:g}'
    return str(value).replace("'", '')


def options_table():
    """Markdown rows of every option dckd adds, with kind, default and meaning, from the schema."""
    lines = ['| option | kind | default | meaning |', '|---|---|---|---|']
    for path, kind, default, doc in TRAINING.rows():
        if not path.startswith(DCKD_KEYS):
            continue
        lines.append(f'| `{path}` | {kind} | {_shown_default(default)} | {doc} |')
        component, typed_name = TYPED_ARGUMENTS.get(path, (None, None))
        if component is not None:
            section = component.typed[typed_name] if typed_name else Section(component.extras)
            for sub_path, sub_kind, sub_default, sub_doc in section.rows(path):
                lines.append(f'| `{sub_path}` | {sub_kind} | {_shown_default(sub_default)} | {sub_doc} |')
    return '\n'.join(lines)
