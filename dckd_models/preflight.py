"""Everything a KDModel/DCKDModel run needs, checked in seconds before BasicSR starts.

`preflight(opt, launcher)` parses the options (dckd_models/options.py), then checks what the
schema cannot see: every data root and whether its GT and LQ images pair, the training patch
against the smallest image, every network built from its options and every checkpoint loaded
into it (key layout, param_key, NaN), and the seed under several processes. It returns the
summary `dckd-train --check` prints; any problem is an OptionError naming the option or file.
"""
import os

import torch
import yaml

from basicsr.data import build_dataset
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from dckd_data.image_files import check_pairs, folder_shapes, lmdb_shapes
from dckd_arch.quantized import QuantizationError, fake_quantizers, prepare, recipe
from dckd_utils.schema import OptionError, closest, config
from .frozen import build, check_detected, checkpoint_source, load_into
from .kd_model import KDModel
from .negatives import undegraded_warning
from .options import (KNOWN_DATASETS, REALWORLD_DATASETS, TEACHER_CHECK_SKIPPED, is_rewritten_by_resume, needs_teacher,
                      needs_vqgan, parse_training_options, synthesizes_pairs, trains_vqgan, vgg19_places,
                      vgg19_weights, vqgan_downsampling)
from .taps import check_module_names
from .teacher_check import check_teacher
from .terms import tapped_modules

LOG_NAMES = {'pixel_opt': 'l_pix', 'perceptual_opt': 'l_percep', 'kd_opt': 'l_kd', 'lcr_opt': 'l_lcr',
             'feature_opt': 'l_fakd', 'hint_opt': 'l_hint', 'upcycling_opt': 'l_zoom_*',
             'contrastive_opt': 'l_dcl', 'distribution_opt': 'l_ce'}
PADDING_DATASETS = ('PaddedPairedImageDataset', ) + REALWORLD_DATASETS  # pad images smaller than the patch


def read_options_file(path):
    """The mapping in a YAML options file, or OptionError naming the file (and a moved file's new place)."""
    if not os.path.isfile(path):
        moved = moved_options_file(path)
        hint = f'; the options files moved: use {moved}' if moved else ''
        raise OptionError(f'options file not found: {path}{hint}')
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise OptionError(f'{path} is not valid YAML: {error}') from error
    if not isinstance(opt, dict):
        raise OptionError(f'{path} must hold a mapping of options, got {type(opt).__name__}')
    return opt


def moved_options_file(path):
    """Where an options file of the flat layout of dckd 0.1 (options/dckd_swinir_x4.yml,
    options/test/test_swinir_x4.yml) lives now (options/{train,test}/<family>/...), or None."""
    folder, name = os.path.split(os.path.normpath(path))
    root = os.path.dirname(folder) if os.path.basename(folder) == 'test' else folder
    for phase in ('train', 'test'):
        phase_dir = os.path.join(root, phase)
        if os.path.isdir(phase_dir):
            for family in sorted(os.listdir(phase_dir)):
                candidate = os.path.join(phase_dir, family, name)
                if os.path.isfile(candidate):
                    return candidate
    return None


def is_checked_model(opt):
    """Whether dckd checks the run before training: KDModel/DCKDModel (or a subclass), and BasicSR's
    own SRModel and its subclasses, which share datasets, networks, losses, optimizer, scheduler,
    path, val and logger with them. Another project's model is left to that project. An unknown
    `model_type` is an error."""
    name = opt.get('model_type')
    if name is None:
        raise OptionError('model_type is missing: DCKDModel (it runs every term its options switch on)')
    if name not in MODEL_REGISTRY:
        raise OptionError(f'model_type: no model named {name!r}{closest(name, MODEL_REGISTRY.keys())}')
    model = MODEL_REGISTRY.get(name)
    return (issubclass(model, KDModel) or trains_vqgan(name)
            or (issubclass(model, SRModel) and model.__module__.startswith('basicsr.')))


def preflight(opt, launcher='none', teacher_check=False):
    """Check a training run of KDModel/DCKDModel (see module doc); returns the summary lines. With
    `teacher_check` (dckd-train --check), the teacher is also evaluated against bicubic on the first
    validation set, as training does before its first iteration."""
    parsed = parse_training_options(opt)
    if launcher != 'none' and trains_vqgan(parsed.model_type):
        raise OptionError(f'--launcher {launcher}: {parsed.model_type} trains in one process for now; under several '
                          "its replicas drift apart (the discriminator's batch norm statistics and the EMA quantizer's "
                          'codes are not kept in step across ranks). Run it without --launcher.')
    if launcher != 'none' and parsed.manual_seed is None:
        raise OptionError(f'manual_seed is not set: with several processes (--launcher {launcher}) every rank must '
                          'start from the same seed, or the ranks draw different student initialisations and data. '
                          'Add manual_seed: 0 (any integer).')
    summary = [f'model     {parsed.model_type}, {parsed.train.total_iter} iterations, scale {parsed.scale}',
               'terms     ' + '; '.join(_terms(parsed))]
    undegraded = undegraded_warning(parsed.train.negatives) if parsed.train.contrastive_opt else None
    if undegraded:
        summary[-1] += f'\n          WARNING: {undegraded}'
    lines, networks = _networks(parsed)
    for role, network_key in (('student', 'network_g'), ('teacher', 'network_t')):
        for where, names in tapped_modules(parsed.train, role):
            check_module_names(networks[network_key], names, where)
    if parsed.train.quantization:
        lines.append(_quantization(parsed, networks['network_g']))
    summary += lines + _perceptual_weights(parsed) + _data(parsed) + [_checkpoint_disk(parsed, networks)]
    if teacher_check and 'network_t' in networks and parsed.train.teacher_check:
        summary.append(f'teacher   {TEACHER_CHECK_SKIPPED}' if synthesizes_pairs(parsed.model_type)
                       else _check_teacher(opt, parsed, networks['network_t']))
    return summary


def _quantization(parsed, student):
    """The student's fake-quantized twin made as training will make it: an operation the quantizer
    or the exporter cannot handle is named here, not at start_iter."""
    quantization = parsed.train.quantization
    made = recipe(config(parsed.network_g), parsed.scale, quantization.backend, quantization.per_channel, training=True)
    try:
        graph = prepare(student, made)
    except QuantizationError as error:
        raise OptionError(f'train.quantization: network_g ({parsed.network_g.type}) cannot be fake-quantized: '
                          f'{error}') from error
    frozen = f', ranges frozen from iteration {quantization.freeze_iter}' if quantization.freeze_iter is not None else ''
    line = (f'quantize  from iteration {quantization.start_iter}, backend {quantization.backend}: '
            f'{len(fake_quantizers(graph))} fake quantizers in the student{frozen}; INT8 artifact models/net_g_int8.pth')
    if quantization.start_iter > parsed.train.total_iter:  # legal (a first part of a longer run), rarely meant
        line += (f'\n          WARNING: train.quantization.start_iter ({quantization.start_iter}) is after '
                 f'train.total_iter ({parsed.train.total_iter}): this run ends before the student trains quantized')
    return line


def _perceptual_weights(parsed):
    """BasicSR's PerceptualLoss reads VGG19's ImageNet weights from VGG_PRETRAIN_PATH, else has
    torchvision download them while the model is built, which a node without internet cannot do: one
    of the two copies must be here before the run starts (VQGANModel trains without the term)."""
    loss = parsed.train.perceptual_opt
    if not loss or loss.type != 'PerceptualLoss' or loss.arguments.get('vgg_type', 'vgg19') != 'vgg19':
        return []
    present, places = vgg19_weights(), vgg19_places()
    if present is None and trains_vqgan(parsed.model_type):
        return [f"vgg       VGG19's ImageNet weights are not here ({places[0]}): l_percep skipped (dckd-fetch vgg19 "
                'gets them)']
    if present is None:
        raise OptionError(f"train.perceptual_opt: PerceptualLoss needs VGG19's ImageNet weights, read from {places[0]} "
                          f"or from torch's download cache ({places[1]}); neither is here, and a machine without "
                          'internet cannot download them when the model is built. Get them with: dckd-fetch vgg19')
    return [f'vgg       PerceptualLoss weights: {present}']


def _check_teacher(opt, parsed, teacher):
    phases = [phase for phase in parsed.datasets if phase.startswith('val')]
    if not phases:
        return 'teacher   check skipped: no validation set (training checks it on a few training pairs)'
    dataset = build_dataset({**opt['datasets'][phases[0]], 'phase': 'val', 'scale': parsed.scale})
    items = (dataset[i] for i in range(len(dataset)))
    return 'teacher   ' + check_teacher(teacher, ((item['lq'], item['gt']) for item in items), parsed.scale,
                                        torch.device('cpu'), dataset.opt['name'],
                                        window=parsed.network_t.arguments.get('window_size'))


def _terms(parsed):
    train, terms = parsed.train, []
    for key, log_name in LOG_NAMES.items():
        loss = getattr(train, key)
        if loss:
            weight = loss.arguments.get('loss_weight', 1.0)
            terms.append(f'{log_name} = {weight} x {loss.type}')
    if trains_vqgan(parsed.model_type):
        beta = parsed.network_g.arguments.get('beta', 0.25)
        terms.append(f'l_codebook = {train.codebook_weight} x (codebook + {beta} x commitment)')
        if train.gan_opt:
            terms.append(f'l_g_gan = {train.gan_opt.arguments.get("loss_weight", 1.0)} x {train.gan_opt.type} from '
                         f'iteration {train.disc_start}')
    return terms


def _trained_role(parsed):
    """What network_g is in the summary: the student, or the VQGAN a VQGANModel trains."""
    return 'VQGAN' if trains_vqgan(parsed.model_type) else 'student'


def _networks(parsed):
    """Build each network the run uses and load its checkpoint: layout and values checked."""
    used = ['network_g']
    if needs_teacher(parsed.train):
        used.append('network_t')
    if needs_vqgan(parsed.train):
        used.append('network_vqgan')
    if parsed.network_d:
        used.append('network_d')
    lines, networks = [], {}
    for network_key in used:
        component = getattr(parsed, network_key)
        net = build(component, network_key)
        detected = check_detected(net, parsed, network_key)
        source = checkpoint_source(parsed.path, network_key)
        if detected:
            origin = detected
        elif network_key != 'network_g' and is_rewritten_by_resume(parsed.path, network_key):
            origin = 'the checkpoint recorded in path.resume_state'
        elif source['path'] is None:
            origin = 'random initialisation' + (' (DCR and DMM in a random feature space)'
                                                if network_key == 'network_vqgan' else '')
        else:
            load_into(net, source, network_key)
            origin = source['path'] if network_key == 'network_vqgan' else f'{source["path"]} [{source["param_key"]}]'
        count = sum(p.numel() for p in net.parameters())
        role = {'network_g': _trained_role(parsed), 'network_t': 'teacher', 'network_vqgan': 'VQGAN',
                'network_d': 'GAN'}[network_key]
        lines.append(f'{role:<9} {network_key}: {component.type}, {count / 1e6:.2f}M parameters, from {origin}')
        networks[network_key] = net.eval()
    return lines, networks


def _shapes(phase, key, root, backend):
    where = f'datasets.{phase}.{key}'
    if backend == 'lmdb':
        if not os.path.isfile(os.path.join(root, 'data.mdb')) or not os.path.isfile(os.path.join(root, 'meta_info.txt')):
            raise OptionError(f'{where}: no LMDB at {root} (data.mdb and meta_info.txt expected). Prepare it with '
                              'dckd-prepare (datasets/README.md) or correct the path.')
        try:
            return lmdb_shapes(root)
        except ValueError as error:
            raise OptionError(f'{where}: {error}. The LMDB is incomplete: prepare it again.') from error
    if not os.path.isdir(root):
        raise OptionError(f'{where}: folder not found: {root}. Prepare it with dckd-prepare (datasets/README.md) or '
                          'correct the path.')
    try:
        return folder_shapes(root)
    except (FileNotFoundError, OSError) as error:
        raise OptionError(f'{where}: {error}') from error


def _moments(optimizer):
    """Tensors an optimizer keeps per parameter (Adam's two moments, SGD's momentum)."""
    return 2 if 'Adam' in optimizer.type else int(bool(optimizer.arguments.get('momentum')))


def _checkpoint_disk(parsed, networks):
    """The disk one checkpoint takes (float32 weights: the student, its EMA and the history model,
    the optimizer's moments; the discriminator with its optimizer's and the training pair pool in a
    GAN run), and all the run keeps."""
    train, logger = parsed.train, parsed.logger

    def size(network_key):
        return 4 * sum(p.numel() for p in networks[network_key].parameters())

    copies = {_trained_role(parsed): 1, 'EMA': int(train.ema_decay > 0), 'history model': int(bool(train.contrastive_opt)),
              f'{train.optim_g.type} state': _moments(train.optim_g)}
    total = size('network_g') * sum(copies.values())
    parts = [name for name, count in copies.items() if count]
    if 'network_d' in networks:
        total += size('network_d') * (1 + _moments(train.optim_d))
        parts.append(f'discriminator and its {train.optim_d.type} state')
    if synthesizes_pairs(parsed.model_type) and parsed.queue_size:  # float32 GT and LQ patches
        total += 4 * parsed.queue_size * 3 * (parsed.gt_size ** 2 + (parsed.gt_size // parsed.scale) ** 2)
        parts.append('training pair pool')
    parts = ', '.join(parts) + (' (adapters not counted)' if train.hint_opt else '')
    count = int(train.total_iter // logger.save_checkpoint_freq)
    kept = min(count, logger.keep_checkpoints or count)
    keep = (f'keep_checkpoints {logger.keep_checkpoints}' if logger.keep_checkpoints else 'all kept')
    return (f'disk      one checkpoint {total / 2**20:.1f} MiB ({parts}); {keep}: {kept} of {count} checkpoints, '
            f'{kept * total / 2**30:.2f} GiB')


def _data(parsed):
    """Every dataset's roots exist and pair; the training patch fits the smallest image."""
    lines = []
    for phase, dataset in parsed.datasets.items():
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        roots = {key: dataset[key] for key in ('dataroot_gt', 'dataroot_lq') if dataset.get(key)}
        if dataset['type'] in REALWORLD_DATASETS and backend == 'disk':  # the images its list names
            lines.append(f'data      {phase} {dataset.get("name", "")}: {_check_image_list(phase, dataset)} images '
                         '(disk, meta_info)')
            continue
        shapes = {key: _shapes(phase, key, root, backend) for key, root in roots.items()}
        if len(shapes) == 2:
            gt, lq = shapes['dataroot_gt'], shapes['dataroot_lq']
            template = dataset.get('filename_tmpl', '{}')
            lq = {key: lq[template.format(key)] for key in gt if template.format(key) in lq}
            lq.update({f'(LQ only) {k}': v for k, v in shapes['dataroot_lq'].items()
                       if k not in {template.format(g) for g in gt}})
            try:
                check_pairs(gt, lq, parsed.scale, f'datasets.{phase}')
            except ValueError as error:
                raise OptionError(f'{error}. GT ({roots["dataroot_gt"]}) and LQ ({roots["dataroot_lq"]}) do not '
                                  'pair: they must hold the same images, GT = scale x LQ; prepare them together.') from error
        if phase.startswith('val') and 'dataroot_lq' in shapes:
            _check_niqe(parsed, phase, shapes['dataroot_lq'])
        if phase == 'train' and 'gt_size' in dataset and dataset['type'] not in PADDING_DATASETS:
            _check_patch(dataset, shapes.get('dataroot_gt', {}), parsed.scale)
        if trains_vqgan(parsed.model_type):
            _check_vqgan_images(phase, shapes.get('dataroot_gt', {}), vqgan_downsampling(parsed.network_g))
        count = len(next(iter(shapes.values()))) if shapes else 0
        lines.append(f'data      {phase} {dataset.get("name", "")}: {count} images ({backend})')
        if dataset['type'] not in KNOWN_DATASETS:
            lines.append(f'data      {phase}: {dataset["type"]} is not a dataset dckd knows: its own options are not '
                         'checked (its project checks them when it loads)')
    return lines


NIQE_BLOCK = 96  # BasicSR's NIQE fits its statistics over the 96x96 blocks of an image


def _check_niqe(parsed, phase, lq_shapes):
    """NIQE fails (an SVD that does not converge, mid-training) on an image of fewer than two of its blocks."""
    metrics = parsed.val.metrics if parsed.val else {}
    for name, metric in metrics.items():
        if metric.type != 'calculate_niqe' or not lq_shapes:
            continue
        crop = 2 * metric.arguments.get('crop_border', 0)
        key, (height, width, _) = min(lq_shapes.items(), key=lambda item: item[1][0] * item[1][1])
        restored = (height * parsed.scale - crop, width * parsed.scale - crop)
        blocks = (restored[0] // NIQE_BLOCK) * (restored[1] // NIQE_BLOCK)
        if blocks < 2:
            raise OptionError(f'val.metrics.{name}: NIQE needs at least two {NIQE_BLOCK}x{NIQE_BLOCK} blocks of a '
                              f'restored image; the smallest image of datasets.{phase} ({key}: {height}x{width}, '
                              f'restored and cropped {restored[0]}x{restored[1]}) has {blocks}. Validate on larger '
                              'images or with another metric.')


def _check_image_list(phase, dataset):
    """RealESRGANDataset reads the images its meta_info lists (paths relative to dataroot_gt): the
    list exists and every image it names is there. Returns their number."""
    where, path, root = f'datasets.{phase}.meta_info', dataset['meta_info'], dataset['dataroot_gt']
    if not os.path.isfile(path):
        raise OptionError(f'{where}: image list not found: {path}. Write one path per line, relative to dataroot_gt '
                          "(e.g. 'cd DATAROOT_GT && ls > meta_info.txt'), or correct the path.")
    with open(path) as f:
        listed = [line.strip().split(' ')[0] for line in f if line.strip()]
    missing = [name for name in listed if not os.path.isfile(os.path.join(root, name))]
    if not listed or missing:
        what = f'{len(missing)} of its {len(listed)} images are not' if listed else 'it lists no image'
        raise OptionError(f'{where}: {path}: {what} in dataroot_gt ({root})'
                          f'{": " + ", ".join(missing[:3]) if missing else ""}. List the images of that folder.')
    return len(listed)


def _check_vqgan_images(phase, shapes, factor):
    """Every image is at least one VQGAN token (`factor` pixels) on each side."""
    small = sorted(key for key, (height, width, _) in shapes.items() if min(height, width) < factor)
    if small:
        height, width, _ = shapes[small[0]]
        raise OptionError(f'datasets.{phase}: {len(small)} image(s) smaller than the VQGAN\'s downsampling factor '
                          f'{factor} (one token), e.g. {small[0]} ({width}x{height}): leave them out.')


def _check_patch(dataset, gt_shapes, scale):
    if not gt_shapes:
        return
    key, (height, width, _) = min(gt_shapes.items(), key=lambda item: min(item[1][:2]))
    gt_size = dataset['gt_size']
    if gt_size > min(height, width):
        raise OptionError(f'datasets.train.gt_size = {gt_size}: the LQ patch ({gt_size // scale}px) is larger than '
                          f'the smallest LQ image ({key}: {height // scale}x{width // scale}, GT {height}x{width}). '
                          f'Choose gt_size <= {min(height, width) // scale * scale}, leave out the small images, or '
                          'use type: PaddedPairedImageDataset, which pads them.')
