"""Writes every options file (options/train/, options/test/, options/demo/) from options/table.py,
and the documentation's generated tables: the option reference (docs/options.md) from the schema
(dckd_models/options.py) and the known files (docs/teachers.md) from dckd_utils/known_files.py.

    python options/generate.py           # (re)write the files
    python options/generate.py --check   # exit 1, naming them, if any file differs

Edit the table, not the files: a test fails when a committed file differs from what the table
gives. Files go to options/train/<family>/<method>_<pair>[_x<scale>].yml and
options/test/<family>/test_<pair>[_x<scale>].yml.
"""
import argparse
import os
import sys
import textwrap

import yaml

OPTIONS_DIR = os.path.dirname(os.path.abspath(__file__))
WIDTH = 110  # the longest comment line


class C:
    """A value with a comment above it (`note`) and/or beside it (`inline`)."""

    def __init__(self, value, note=None, inline=None):
        self.value, self.note, self.inline = value, note, inline


def plain(value):
    """The value without its comments, as yaml.safe_load reads the written file back."""
    value = value.value if isinstance(value, C) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith('# ')}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flow(value):
    """One value in YAML flow style, floats written so that YAML 1.1 reads them as floats."""
    value = value.value if isinstance(value, C) else value
    if value is None:
        return '~'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and not 1e-3 <= abs(value) < 1e6:
            mantissa, exponent = f'{value:e}'.split('e')
            mantissa = mantissa.rstrip('0').rstrip('.')
            return f'{mantissa}{"" if "." in mantissa else ".0"}e{int(exponent):+d}'
        return repr(value)
    if isinstance(value, str):
        return yaml.safe_dump(value, default_style=None, width=10**6).splitlines()[0]
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(flow(v) for v in value) + ']'
    return '{' + ', '.join(f'{k}: {flow(v)}' for k, v in value.items()) + '}'


def comment_lines(text, indent):
    return [f'{indent}# {line}' for line in textwrap.wrap(text, WIDTH - len(indent) - 2)]


def block(mapping, depth=0, flow_values=False):
    """Lines of a block-style mapping; nested mappings stay block-style at depths 0 and 1 (the
    top-level sections, datasets' phases, metrics), except inside `train:` (one line per option)."""
    indent, lines = '  ' * depth, []
    for key, raw in mapping.items():
        value = raw.value if isinstance(raw, C) else raw
        note, inline = (raw.note, raw.inline) if isinstance(raw, C) else (None, None)
        if depth == 0 and lines and (isinstance(value, dict) or note):
            lines.append('')
        if note:
            lines += comment_lines(note, indent)
        beside = f'  # {inline}' if inline else ''
        if isinstance(value, dict) and depth < 2 and not flow_values and not key.startswith('# '):
            lines.append(f'{indent}{key}:{beside}')
            lines += block(value, depth + 1, flow_values=key == 'train')
        else:
            lines.append(f'{indent}{key}: {flow(value)}{beside}')
    return lines


def render(header, mapping):
    """The text of an options file: header comment, then the mapping with its comments."""
    lines = [f'# {line}' for part in header for line in textwrap.wrap(part, WIDTH - 2, break_on_hyphens=False)]
    return '\n'.join(lines + block(mapping)) + '\n'


# ----- composing files from the table -------------------------------------------------------------


def run_name(method, pair, scale):
    return f'{method}_{pair["name"]}' + (f'_x{scale}' if pair['scales'] != (1, ) else '')


def training_path(method, pair, scale):
    return os.path.join('train', pair['family'], run_name(method, pair, scale) + '.yml')


def test_path(pair, scale):
    return os.path.join('test', pair['family'], run_name('test', pair, scale) + '.yml')


def methods(table, pair):
    """The methods a pair is trained with: its row's, else the table's DEFAULT_METHODS."""
    return pair.get('methods', table.DEFAULT_METHODS)


def datasets(task, phase, count=None):
    sets = task['test_sets'][:count]
    return {f'{phase}_{i}': s for i, s in enumerate(sets, 1)}


def training_file(table, method_name, pair, scale):
    path, header, opt = training_options(table, method_name, pair, scale)
    return path, render(header, opt)


def training_options(table, method_name, pair, scale):
    """(path under options/, header lines, options) of one training run of the table."""
    method, task = table.METHODS[method_name], pair['task'](scale)
    name = run_name(method_name, pair, scale)
    what = task['what'] if scale == 1 or task.get('own_recipe') else f'{task["what"]}, paper settings (spec section 5)'
    if pair.get('paper') is False and scale != 1 and not task.get('own_recipe'):
        what = f'{task["what"]}, the paper\'s SR recipe'
    header = [method['title'],
              f'{pair["title"]} {what}' + (f'; teacher -> student: {pair["summary"]}' if 'summary' in pair else '.'),
              f'Check: dckd-train --check -opt options/{training_path(method_name, pair, scale)}',
              f'Train: dckd-train -opt options/{training_path(method_name, pair, scale)}',
              'Several GPUs: torchrun --nproc_per_node=N train.py -opt ... --launcher pytorch']
    train_set = dict(task['train_set'])
    if 'patch_note' in pair:
        train_set['gt_size'] = C(train_set['gt_size'], inline=pair['patch_note'])
    opt = {'name': name, 'model_type': task.get('model_type', 'DCKDModel'), 'scale': task['scale'], 'num_gpu': 'auto',
           'manual_seed': 0, **task.get('top', {})}
    opt['datasets'] = {'train': train_set, **datasets(task, 'val', task.get('val_sets'))}
    if pair.get('fused_attention') and method['vqgan']:
        opt['fused_attention'] = C(False, "SwinIR window attention through torch's fused kernel, same weights "
                                   '(docs/cost.md)')
    opt['network_g'] = C(pair['student'](scale), pair['student_note'])
    path = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}
    if 'pretrain_g' in task:  # a second stage starts from the first stage's EMA student
        path = {'pretrain_network_g': C(task['pretrain_g'].value(name), task['pretrain_g'].note),
                'param_key_g': 'params_ema', 'strict_load_g': True, 'resume_state': None}
    if method['teacher']:
        opt['network_t'] = C(pair['teacher'](scale), pair['teacher_note'])
        if pair['teacher_file']:  # else the teacher network reads its own file (PretrainedModel)
            path.update({'pretrain_network_t': C(pair['teacher_file'](scale), pair['teacher_file_note']),
                         'param_key_t': 'params', 'strict_load_t': True})
    if method['vqgan']:
        opt['network_vqgan'] = C(table.VQGAN, "Frozen feature space of DCR and DMM: the encoder of "
                                 "taming-transformers' ImageNet VQGAN (f16, 1024 codes), with the published "
                                 'architecture written out.')
        path['pretrain_network_vqgan'] = C(table.VQGAN_FILE, "taming-transformers' vqgan_imagenet_f16_1024 "
                                           'checkpoints/last.ckpt, renamed; an encoder-only .pth written by '
                                           'dckd-convert-vqgan loads as well')
    if 'network_d' in task:
        opt['network_d'] = task['network_d']
    opt['path'] = path
    history_note = ' (and, in DCKD, the history model\'s source)' if method['vqgan'] else ''
    opt['train'] = {
        'ema_decay': C(0.999, inline=f'the EMA student is the one evaluated{history_note}'),
        **pair.get('recipe', task.get('recipe', {})),
        'warmup_iter': C(-1, inline='no warm-up'),
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        **task.get('losses', {}),
        **(method['terms'](pair) if callable(method['terms']) else method['terms']),
        **task.get('method_terms', {}).get(method_name, {}),
    }
    opt['val'] = {'val_freq': 5000, 'save_img': False, 'metrics': task['metrics']}
    opt['logger'] = {'print_freq': 100, 'save_checkpoint_freq': 5000, 'use_tb_logger': True}
    opt['dist_params'] = {'backend': 'nccl', 'port': 29500}
    return training_path(method_name, pair, scale), header, opt


def test_file(table, pair, scale):
    task = pair['task'](scale)
    runs = [run_name(m, pair, scale) for m in methods(table, pair)]
    header = [f'Evaluates a trained {pair["title"]} student {task["what"]} (its EMA weights) on '
              f'{", ".join(s["name"] for s in task["test_sets"])}.',
              f'Test: dckd-test -opt options/{test_path(pair, scale)}   (results under results/<name>)',
              f'Points at the {runs[0]} run; for the others ({", ".join(runs[1:])}) change name and '
              'pretrain_network_g: the runs share this student.']
    opt = {'name': f'test_{runs[0]}',
           'model_type': C('KDModel', inline="SRModel's test, plus padding to whole windows for SwinIR inputs"),
           'scale': task['scale'], 'num_gpu': 'auto', 'manual_seed': 0,
           'datasets': datasets(task, 'test'),
           'network_g': C(pair['student'](scale), f'the student of options/{training_path("dckd", pair, scale)}, key '
                          'for key (a checkpoint loads strictly only into it)'),
           'path': {'pretrain_network_g': f'experiments/{runs[0]}/models/net_g_latest.pth',
                    'param_key_g': C('params_ema', inline='the EMA student, which the paper evaluates'),
                    'strict_load_g': True},
           'val': {'save_img': True, 'suffix': None, 'metrics': task['metrics']}}
    return test_path(pair, scale), render(header, opt)


def demo_file(table, run):
    path, header, opt = demo_options(table, run)
    return path, render(header, opt)


def demo_options(table, run):
    """(path, header, options) of one step of dckd-demo: options/demo/<name>.yml."""
    opt = {'name': run['name'], 'model_type': run['model_type'], 'scale': 4, 'num_gpu': 'auto', 'manual_seed': 0,
           'datasets': {'train': dict(table.DEMO_DATA['train'], gt_size=run['gt_size']), 'val': table.DEMO_DATA['val']},
           'network_g': run['network_g']}
    path = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}
    if run['teacher']:
        opt['network_t'] = table.DEMO_TEACHER
        path.update(pretrain_network_t='experiments/demo_teacher_x4/models/net_g_latest.pth', param_key_t='params_ema',
                    strict_load_t=True)
    if 'vqgan' in run:
        opt['network_vqgan'] = run['vqgan']
        path['pretrain_network_vqgan'] = None
    opt['path'] = path
    opt['train'] = {
        'ema_decay': C(0.99, inline='short runs: a 0.999 average would still be mostly the initial weights'),
        'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [run['milestone']], 'gamma': 0.5},
        'total_iter': run['iterations'], 'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        **run['terms'],
    }
    opt['val'] = {'val_freq': run.get('val_every', run['every']), 'save_img': False, 'metrics': table.metrics(4, True, None).value}
    opt['logger'] = {'print_freq': 100, 'save_checkpoint_freq': run['every'], 'use_tb_logger': False}
    return os.path.join('demo', f'{run["name"]}.yml'), [run['title']], opt


def scaled(iterations, fraction):
    return max(1, round(iterations * fraction))


def quantized_file(table, method_name, row):
    """options/quantized/<method>_<run>.yml: the quantization-aware fine-tune (`train.quantization`)
    of the FP32 DCKD student of `row`'s run, with the terms of the FP32 run of `method_name`'s kind
    (table.QAT_METHODS), `row['fraction']` of its schedule at a tenth of its learning rate."""
    base_method, title = table.QAT_METHODS[method_name]
    if 'demo' in row:
        runs = {run['name']: run for run in table.DEMO_RUNS}
        (source, header, base), (_, _, terms) = (demo_options(table, runs[name]) for name in (row['demo'], row[base_method]))
    else:
        pair = next(p for p in table.PAIRS if p['name'] == row['pair'])
        (source, header, base), (_, _, terms) = (training_options(table, m, pair, row['scale']) for m in ('dckd', base_method))
    name = f'{method_name}_{row["name"]}'
    path = os.path.join('quantized', f'{name}.yml')
    fp32 = plain(base['train'])
    total = scaled(fp32['total_iter'], row['fraction'])
    opt = {key: value for key, value in base.items() if key not in ('network_t', 'network_vqgan') or key in terms}
    opt.update(name=name, path={'pretrain_network_g': C(f'experiments/{plain(base["name"])}/models/net_g_latest.pth',
                                                       inline=f'the FP32 student of options/{source}'),
                                'param_key_g': 'params_ema', 'strict_load_g': True, 'resume_state': None})
    for network_key, suffixes in (('network_t', ('network_t', 'key_t', 'load_t')), ('network_vqgan', ('vqgan', ))):
        if network_key in terms:
            opt['path'].update({k: v for k, v in base['path'].items() if k.endswith(suffixes)})
    train = {k: v for k, v in terms['train'].items() if k not in ('total_iter', 'scheduler', 'optim_g', 'history')}
    optim = dict(plain(base['train']['optim_g']))
    optim['lr'] = optim['lr'] / 10
    train.update(optim_g=C(optim, inline="a tenth of the FP32 run's"),
                 scheduler={'type': 'MultiStepLR', 'milestones': [scaled(total, 0.5)], 'gamma': 0.5},
                 total_iter=C(total, inline=f"{row['fraction']:g} of the FP32 run's {fp32['total_iter']}"),
                 quantization=C({'backend': 'x86', 'start_iter': 0, 'freeze_iter': scaled(total, 0.8),
                                 'per_channel': True, 'history': 'quantized'},
                                'Quantization-aware from the first iteration; the ranges freeze for the last fifth '
                                '(docs/quantization.md).'))
    if 'history' in terms['train']:
        history = plain(terms['train']['history'])
        train['history'] = dict(history, steps=[scaled(s, row['fraction']) for s in history['steps']],
                                milestones=[m for m in (scaled(m, row['fraction']) for m in history['milestones'])
                                            if m < total])
        train['history']['steps'] = train['history']['steps'][:len(train['history']['milestones']) + 1]
    opt['train'] = train
    opt['val'] = dict(base['val'], val_freq=scaled(total, 0.25))
    opt['logger'] = dict(base['logger'], save_checkpoint_freq=scaled(total, 0.25))
    header = [f'{title}: a quantization-aware fine-tune of the FP32 student of options/{source} (train it first), '
              'as its fake-quantized twin; the run ends with the INT8 artifact models/net_g_int8.pth.',
              *header[1:2], f'Check: dckd-train --check -opt options/{path}', f'Train: dckd-train -opt options/{path}']
    return path, render(header, opt)


def vqgan_file(table, run):
    """options/vqgan/<name>.yml: a VQGAN of one's own images (VQGANModel, dckd-train-vqgan)."""
    def hr(data, train):
        backend = data.get('backend', 'lmdb')
        options = {'name': data['name'], 'type': 'HRImageDataset', 'dataroot_gt': data['dataroot_gt'],
                   'io_backend': {'type': backend}}
        if train:
            options.update(gt_size=data['gt_size'], use_hflip=True, use_rot=True,
                           num_worker_per_gpu=data['num_worker_per_gpu'], batch_size_per_gpu=data['batch_size_per_gpu'],
                           dataset_enlarge_ratio=1, prefetch_mode=None)
        return options

    optimizer = {'type': 'Adam', 'lr': run['lr'].value, 'betas': [0.5, 0.9]}
    gan = run['disc_start'] is not None
    train = {'optim_g': C(optimizer, inline=run['lr'].inline), **({'optim_d': optimizer} if gan else {}),
             'scheduler': {'type': 'MultiStepLR', 'milestones': [run['iterations'] * 4 // 5], 'gamma': 0.5},
             'total_iter': run['iterations'], 'warmup_iter': -1,
             'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
             'codebook_weight': C(1.0, inline='codebook + beta x commitment (network_g.beta)')}
    if run['perceptual']:
        train['perceptual_opt'] = run['perceptual']
    if gan:
        train.update(gan_opt=C({'type': 'GANLoss', 'gan_type': 'hinge', 'loss_weight': 0.8},
                               "taming's disc_weight 0.8, times taming's ratio of gradient norms at the decoder's last "
                               'layer (logged as gan_weight)'),
                     disc_start=C(run['disc_start'], inline='the discriminator and its term start here'))
    opt = {'name': run['name'], 'model_type': 'VQGANModel', 'scale': 1, 'num_gpu': 'auto', 'manual_seed': 0,
           'datasets': {'train': hr(run['data']['train'], True), 'val': hr(run['data']['val'], False)},
           'network_g': run['network_g'],
           **({'network_d': C({'type': 'PatchDiscriminator', 'num_in_ch': 3, 'num_feat': 64, 'num_layers': 3},
                              "taming's NLayerDiscriminator")} if gan else {}),
           'path': {'pretrain_network_g': None, 'strict_load_g': True,
                    **({'pretrain_network_d': None} if gan else {}), 'resume_state': None},
           'train': train,
           'val': {'val_freq': run['every'], 'save_img': False,
                   'metrics': C({'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}},
                                'the reconstruction, RGB; every validation also reports the codebook usage')},
           'logger': {'print_freq': 100, 'save_checkpoint_freq': run['every'], 'use_tb_logger': True}}
    path = os.path.join('vqgan', f'{run["name"]}.yml')
    header = [run['title'], f'Check: dckd-train-vqgan --check -opt options/{path}',
              f'Train: dckd-train-vqgan -opt options/{path}']
    return path, render(header, opt)


def all_files(table):
    """{path under options/: text} for every pair, scale and method of the table, the demo, the
    quantized family and the VQGANs."""
    files = dict(demo_file(table, run) for run in table.DEMO_RUNS)
    files.update(vqgan_file(table, run) for run in table.VQGAN_RUNS)
    files.update(quantized_file(table, method, row) for row in table.QUANTIZED for method in table.QAT_METHODS)
    for pair in table.PAIRS:
        for scale in pair['scales']:
            for method in methods(table, pair):
                path, text = training_file(table, method, pair, scale)
                files[path] = text
            path, text = test_file(table, pair, scale)
            files[path] = text
    return files


DOCS = os.path.join(os.path.dirname(OPTIONS_DIR), 'docs')
TABLE_END = '<!-- end of {} -->'


def _between_markers(text, what, source, table):
    start_marker = f'<!-- {what}: written by python options/generate.py from {source} -->'
    start, end = text.index(start_marker) + len(start_marker), text.index(TABLE_END.format(what))
    return f'{text[:start]}\n{table}\n{text[end:]}'


def generated_pages():
    """{page under docs/: its text with the generated table between its markers}."""
    import dckd_models  # noqa: F401  (registers dckd's parts: the schema lists what is registered)
    from dckd_utils.known_files import known_files_table
    from dckd_models.options import options_table

    tables = {'options.md': ('option table', 'dckd_models/options.py', options_table()),
              'teachers.md': ('known files', 'dckd_utils/known_files.py', known_files_table())}
    pages = {}
    for page, (what, source, table) in tables.items():
        with open(os.path.join(DOCS, page)) as f:
            pages[page] = _between_markers(f.read(), what, source, table)
    return pages


def load_table():
    sys.modules.setdefault('generate', sys.modules[__name__])  # the table's C is this module's C
    sys.path.insert(0, OPTIONS_DIR)
    import table
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='only compare the files with the table')
    args = parser.parse_args(argv)
    files = {os.path.join(OPTIONS_DIR, path): text for path, text in all_files(load_table()).items()}
    files.update({os.path.join(DOCS, page): text for page, text in generated_pages().items()})
    stale = []
    for path, text in files.items():
        current = open(path).read() if os.path.isfile(path) else None
        if current != text:
            stale.append(os.path.relpath(path, os.path.dirname(OPTIONS_DIR)))
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, 'w') as f:
                    f.write(text)
    if args.check and stale:
        sys.exit(f'{len(stale)} file(s) differ from what options/generate.py writes: {", ".join(stale)}; '
                 'run python options/generate.py')
    print(f'{len(files)} files (options and documentation pages), {len(stale)} {"differ" if args.check else "written"}')


if __name__ == '__main__':
    main()
