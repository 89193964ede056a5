"""Does distillation pay? Scratch, Logits KD, DCKD, DCKD with DCR only and DCKD with DMM only, the
same student, data and iterations, several seeds each, evaluated on held-out Set5 and Set14.

Every run goes through `dckd-train` (BasicSR's pipeline) with options made from the demo's
(options/table.py, DEMO_RUNS: networks, schedule and DCKD's terms), and every model is scored by
`dckd-evaluate` (Y channel, border = scale). Training data: sub-images of the scikit-image
photographs and of `--train-hr` (default ../shared/data/benchmarks/BSD68); the test images are
never trained on (Set5 is the validation set the curves are drawn from). No pretrained VQGAN can
be downloaded here: DCR and DMM work in the feature space of a randomly initialised encoder, and
the table says so; `--vqgan FILE` adds the three DCKD rows again in the feature space of a VQGAN
trained on the user's images (dckd-train-vqgan -opt options/vqgan/vqgan_demo.yml: the demo's
network_vqgan sizes), beside the random one.

    python benchmarks/distill_gain.py --out results/gain_cpu                 # CPU, the demo's scale
    python benchmarks/distill_gain.py --dry-run --out /tmp/gain              # tiny networks, a minute
    python benchmarks/distill_gain.py --teacher benchmarks/gain_cpu/teacher.pth \
        --vqgan experiments/vqgan_demo/models/vqgan_encoder.pth --out results/gain_vqgan   # + a trained VQGAN
    # a GPU machine sees only the checkout: copy the images in (ignored by git) and carry them
    cp -r ../shared/data/benchmarks .benchmark_images
    python benchmarks/distill_gain.py --preset gpu --teacher benchmarks/gain_cpu/teacher.pth --out $OUT/gain

Writes OUT/results.md (mean +- std per method, every seed, wall times), OUT/results.json,
OUT/curves.png (dckd-curves: validation PSNR of each method's first seed), OUT/evaluation.csv and
OUT/teacher.pth (to carry to a GPU run, where the teacher is not trained again). The work
(LMDBs, experiments) goes to --work, default OUT/work.
"""
import argparse
import csv
import importlib.util
import json
import os
import shutil
import statistics
import sys
import time

import forked  # benchmarks/ (this script's folder)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# where BSD68, Set5 and Set14 are looked for: ../shared beside the checkout, or a copy of it carried
# to a device machine (which sees only the checkout)
IMAGE_ROOTS = (os.path.join(os.path.dirname(PROJECT_ROOT), 'shared', 'data', 'benchmarks'),
               os.path.join(PROJECT_ROOT, '.benchmark_images'))
IMAGES = next((root for root in IMAGE_ROOTS if os.path.isdir(root)), IMAGE_ROOTS[0])
NEEDED_MODULES = ('basicsr', 'lmdb', 'addict', 'yapf', 'skimage', 'cv2')  # what the runs import
SCALE = 4
TEST_SETS = ('Set5', 'Set14')

# method -> (demo run it starts from, DCKD terms it drops)
METHODS = {
    'scratch': ('demo_scratch_x4', ()),
    'Logits KD': ('demo_logits_x4', ()),
    'DCKD': ('demo_dckd_x4', ()),
    'DCKD, DCR only': ('demo_dckd_x4', ('distribution_opt', )),
    'DCKD, DMM only': ('demo_dckd_x4', ('contrastive_opt', 'history', 'negatives')),
}
TRAINED = ' (trained VQGAN)'  # the DCKD rows again with --vqgan
VQGAN_METHODS = [method for method in METHODS if method.startswith('DCKD')]
TINY = {'student': {'num_feat': 8, 'num_block': 1}, 'teacher': {'num_feat': 8, 'num_block': 2}}  # EDSR overrides
PRESETS = {
    # the demo's networks and schedule; runs one after another
    'cpu': {'teacher_iter': None, 'student_iter': None, 'val_every': 100, 'jobs': 1, 'networks': None},
    # the same networks, five times the iterations, every student run at once (a 16-core GPU machine)
    'gpu': {'teacher_iter': None, 'student_iter': 4000, 'val_every': 500, 'jobs': 15, 'networks': None},
    # tiny networks and 4 iterations: the same steps in seconds (the test suite runs it); a teacher of 4
    # iterations is worse than bicubic, so its check before training is off
    'dry': {'teacher_iter': 4, 'student_iter': 4, 'val_every': 2, 'jobs': 2, 'networks': TINY, 'untrained': True},
}


def slug(method):
    return method.replace(TRAINED, '_trained_vqgan').lower().replace(', ', '_').replace(' ', '_')


def methods(vqgan):
    """The methods of the study: METHODS, and with a `vqgan` file the DCKD ones again in its space."""
    return list(METHODS) + ([method + TRAINED for method in VQGAN_METHODS] if vqgan else [])


def load_table():
    sys.path.insert(0, os.path.join(PROJECT_ROOT, 'options'))
    import generate
    return generate, generate.load_table()


# ----- data ----------------------------------------------------------------------------------------------

def prepare_data(work, train_folders, test_folders):
    """Training LMDBs (96x96 GT sub-images, step 48) of the scikit-image photographs and of every
    image in `train_folders`; each test set as GTmod12 / LRbicx4 folders. Reused when present."""
    from dckd.demo.data import HELD_OUT_IMAGES, TRAIN_IMAGES, skimage_photo_bgr
    from dckd.lmdb_writer import write_image_lmdb
    from dckd.paired_data import paired_subimages
    from dckd_data.image_files import list_images, read_bgr, stem
    from dckd.prepare.sr import prepare_benchmark

    data = os.path.join(work, 'data')
    gt_path, lq_path = os.path.join(data, 'train_gt.lmdb'), os.path.join(data, f'train_lq_x{SCALE}.lmdb')
    if not (os.path.isdir(gt_path) and os.path.isdir(lq_path)):
        images = [(name, lambda name=name: skimage_photo_bgr(name)) for name in TRAIN_IMAGES + HELD_OUT_IMAGES]
        images += [(stem(path), lambda path=path: read_bgr(path)) for folder in train_folders
                   for path in list_images(folder)]
        pairs = [pair for name, read in images for pair in paired_subimages(name, read(), SCALE, 96, 48)]
        write_image_lmdb(gt_path, [(key, gt) for key, gt, _ in pairs])
        write_image_lmdb(lq_path, [(key, lq) for key, _, lq in pairs])
        print(f'training data: {len(pairs)} pairs from {len(images)} images', flush=True)
    for name, folder in test_folders.items():
        if not os.path.isdir(os.path.join(data, name, f'LRbicx{SCALE}')):
            prepare_benchmark(folder, data, name, scales=(SCALE, ))
    return data


# ----- options --------------------------------------------------------------------------------------------

def run_options(generate, table, method, seed, preset, data, teacher, vqgan=None):
    """The options of one run, as dckd-train reads them: the demo run's, with this study's data,
    seed, iterations and validation (`method` None: the teacher; a method ending in TRAINED: DCR
    and DMM in the space of the `vqgan` file)."""
    base_name, dropped = METHODS[method.removesuffix(TRAINED)] if method else ('demo_teacher_x4', ())
    run = dict(next(r for r in table.DEMO_RUNS if r['name'] == base_name))
    run['terms'] = {k: v for k, v in run['terms'].items() if k not in dropped}
    iterations = preset['teacher_iter' if method is None else 'student_iter'] or run['iterations']
    every = min(preset['val_every'], iterations) if method else iterations
    run.update(iterations=iterations, milestone=iterations * 3 // 4, every=every, val_every=every)
    _, text = generate.demo_file(table, run)
    opt = generate.yaml.safe_load(text)
    opt['name'] = f'gain_{slug(method)}_s{seed}' if method else 'gain_teacher'
    opt['manual_seed'] = seed
    if method and method.endswith(TRAINED):
        opt['path']['pretrain_network_vqgan'] = vqgan
    return for_study(opt, preset, data, teacher, 'student' if method else 'teacher')


def network(options, overrides):
    """`overrides` of a preset's network: a whole network where it names its type, else sizes."""
    return dict(overrides) if 'type' in overrides else dict(options, **overrides)


def for_study(opt, preset, data, teacher, role):
    """A demo run's options `opt` made a run of a study: the preset's networks (network_g: the
    `role`'s, 'student' or 'teacher'), training on the study's data, validation on its Set5, the
    `teacher` checkpoint."""
    networks = preset['networks']
    if networks:
        opt['network_g'] = network(opt['network_g'], networks[role])
    opt['datasets']['train'].update(name='photographs', dataroot_gt=os.path.join(data, 'train_gt.lmdb'),
                                    dataroot_lq=os.path.join(data, f'train_lq_x{SCALE}.lmdb'))
    opt['datasets']['val'] = {'name': 'Set5', 'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'},
                              'dataroot_gt': os.path.join(data, 'Set5', 'GTmod12'),
                              'dataroot_lq': os.path.join(data, 'Set5', f'LRbicx{SCALE}')}
    if 'network_t' in opt:
        opt['path']['pretrain_network_t'] = teacher
        if networks:
            opt['network_t'] = network(opt['network_t'], networks['teacher'])
        if preset.get('untrained'):
            opt['train']['teacher_check'] = False
    opt['logger']['print_freq'] = min(opt['logger']['print_freq'], opt['val']['val_freq'])
    return opt


def write_options(work, opt):
    path = os.path.join(work, 'options', f'{opt["name"]}.yml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(json.dumps(opt, indent=1))  # JSON is YAML
    return path


# ----- runs -----------------------------------------------------------------------------------------------

def log_file(work, name):
    return os.path.join(work, 'logs', f'{name}.log')


def train_all(work, option_files, jobs):
    """Train every options file through dckd-train, each in a fresh process (benchmarks/forked.py),
    `jobs` at a time; {file: seconds}. A failed run stops the study, naming its log."""
    os.makedirs(os.path.join(work, 'logs'), exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, seconds = list(option_files), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            option_file = pending.pop(0)
            log = log_file(work, os.path.basename(option_file)[:-4])
            running[option_file] = (forked.start(forked.command, 'dckd.train', ['-opt', option_file], work, log,
                                                 threads), log, time.time())
        time.sleep(0.2)
        for option_file, (child, log, start) in list(running.items()):
            if child.exitcode is None:
                continue
            del running[option_file]
            if child.exitcode:
                for other, *_ in running.values():
                    other.kill()
                raise SystemExit(f'training with {option_file} failed; see {log}')
            seconds[option_file] = time.time() - start
            print(f'trained {os.path.basename(option_file)[:-4]} in {seconds[option_file]:.0f} s', flush=True)
    return seconds


def evaluate(work, models, data, out):
    """dckd-evaluate over `models` ({name: (options file, checkpoint) or artifact}) and bicubic on the test sets;
    {name: {set: (psnr, ssim)}}."""
    argv = ['--scale', str(SCALE), '--out', os.path.join(out, 'evaluation'), '--model', 'bicubic']
    for name, model in models.items():  # (options file, checkpoint), or an INT8 artifact
        argv += ['--model', f'{name}={model if isinstance(model, str) else ":".join(model)}']
    for name in TEST_SETS:
        argv += ['--benchmark', f'{name}={os.path.join(data, name, "GTmod12")},{os.path.join(data, name, f"LRbicx{SCALE}")}']
    forked.call(forked.command, 'dckd.evaluate.cli', argv, work, log_file(work, 'evaluate'))
    with open(os.path.join(out, 'evaluation.csv')) as f:
        rows = list(csv.DictReader(f))
    return {row['model']: {s: (float(row[f'{s}_psnr']), float(row[f'{s}_ssim'])) for s in TEST_SETS} for row in rows}


def draw_curves(work, names, out):
    experiments = [os.path.join(work, 'experiments', name) for name in names]
    forked.call(forked.command, 'dckd.figures.curves', [*experiments, '--dataset', 'Set5', '--out',
                                                       os.path.join(out, 'curves.png')], work, log_file(work, 'curves'))


# ----- the table ------------------------------------------------------------------------------------------

def mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def results_markdown(scores, seeds, seconds, setting, studied=tuple(METHODS)):
    """Mean +- std (sample standard deviation over the seeds) per method, then every seed."""
    lines = [f'| method | {" | ".join(f"{s} PSNR (dB)" for s in TEST_SETS)} | training time per run |',
             '|---|' + '---|' * (len(TEST_SETS) + 1)]
    for label, name in (('bicubic', 'bicubic'), ('teacher', 'gain_teacher')):
        cells = [f'{scores[name][s][0]:.2f}' for s in TEST_SETS]
        time_cell = f'{seconds[name]:.0f} s' if name in seconds else '-'
        lines.append(f'| {label} | {" | ".join(cells)} | {time_cell} |')
    for method in studied:
        names = [f'gain_{slug(method)}_s{seed}' for seed in seeds]
        cells = ['{:.2f} ± {:.2f}'.format(*mean_std([scores[n][s][0] for n in names])) for s in TEST_SETS]
        lines.append(f'| {method} | {" | ".join(cells)} | {statistics.mean(seconds[n] for n in names):.0f} s |')
    sets = ' / '.join(TEST_SETS)
    per_seed = ['| method | ' + ' | '.join(f'seed {seed}: {sets}' for seed in seeds) + ' |',
                '|---|' + '---|' * len(seeds)]
    for method in studied:
        cells = [' / '.join(f'{scores[f"gain_{slug(method)}_s{seed}"][s][0]:.2f}' for s in TEST_SETS) for seed in seeds]
        per_seed.append(f'| {method} | {" | ".join(cells)} |')
    return f'{setting}\n\n' + '\n'.join(lines) + '\n\nPSNR (dB) per seed:\n\n' + '\n'.join(per_seed) + '\n'


# ----- the command ----------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='folder for the results (must not exist)')
    parser.add_argument('--work', help='LMDBs, options and experiments (default OUT/work; reused when present)')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--dry-run', action='store_true', help='the dry preset: tiny networks, 4 iterations')
    parser.add_argument('--seeds', type=int, nargs='+', help='default 0 1 2 (dry run: 0 1)')
    parser.add_argument('--jobs', type=int, help="runs at a time (default: the preset's)")
    parser.add_argument('--teacher', help='a teacher checkpoint from an earlier run (OUT/teacher.pth) instead of '
                                          'training one; the gpu preset needs it')
    parser.add_argument('--vqgan', help="a VQGAN encoder file of the demo's network_vqgan sizes (dckd-train-vqgan -opt "
                                        'options/vqgan/vqgan_demo.yml): the DCKD rows again in its feature space')
    add_image_arguments(parser)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.preset = 'dry'
    args.seeds = args.seeds or ([0, 1] if args.preset == 'dry' else [0, 1, 2])
    args.jobs = args.jobs or PRESETS[args.preset]['jobs']
    problems = output_and_image_problems(args)
    if args.vqgan and not os.path.isfile(args.vqgan):
        problems.append(f'--vqgan {args.vqgan}: no such file; train one with dckd-train-vqgan -opt '
                        'options/vqgan/vqgan_demo.yml (models/vqgan_encoder.pth)')
    if args.teacher and not os.path.isfile(args.teacher):
        problems.append(f'--teacher {args.teacher}: no such file; carry OUT/teacher.pth of a CPU run')
    missing = [name for name in NEEDED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        problems.append(f'not importable here: {", ".join(missing)}; on a GPU machine install the carried wheels '
                        '(bash ../shared/device/fetch-wheels.sh here, then the pip line of benchmarks/gpu_check.sh '
                        'there)')
    if args.preset == 'gpu':
        import torch
        if not torch.cuda.is_available():
            problems.append('--preset gpu needs CUDA, and torch sees no GPU here; use --preset cpu')
        if not args.teacher:
            problems.append('--preset gpu needs --teacher, trained beforehand on the CPU and carried: '
                            'benchmarks/gain_cpu/teacher.pth (the teacher of the README table) or the '
                            'OUT/teacher.pth of a --preset cpu run')
    if problems:
        parser.error('\n  '.join(problems))
    return args


def add_image_arguments(parser):
    parser.add_argument('--train-hr', action='append', help=f'HR training images besides the scikit-image '
                                                            f'photographs (default {IMAGES}/BSD68)')
    parser.add_argument('--test-hr', action='append', metavar='NAME=FOLDER',
                        help=f'test sets, Set5 first (default {IMAGES}/Set5 and Set14)')


def output_and_image_problems(args):
    """The defaults of --train-hr and --test-hr filled in; what is wrong with them and --out."""
    args.train_hr = args.train_hr or [os.path.join(IMAGES, 'BSD68')]
    args.test_hr = dict(spec.split('=', 1) for spec in args.test_hr) if args.test_hr else {
        name: os.path.join(IMAGES, name) for name in TEST_SETS}
    problems = []
    if os.path.exists(args.out):
        problems.append(f'--out {args.out} exists; choose another folder (results are never replaced)')
    if sorted(args.test_hr) != sorted(TEST_SETS):
        problems.append(f'--test-hr: give {" and ".join(TEST_SETS)} (NAME=FOLDER)')
    for folder in args.train_hr + list(args.test_hr.values()):
        if not os.path.isdir(folder):
            problems.append(f'image folder {folder} not found (--train-hr / --test-hr)')
    return problems


def check_vqgan(table, vqgan):
    """The --vqgan file loads into the demo's network_vqgan (before any work)."""
    from dckd_arch.vqgan_arch import VQGANEncoder, load_vqgan_encoder

    sizes = {k: v for k, v in table.DEMO_VQGAN.value.items() if k != 'type'}
    try:
        load_vqgan_encoder(VQGANEncoder(**sizes), vqgan)
    except (KeyError, ValueError, RuntimeError) as error:
        raise SystemExit(f'--vqgan: {error.args[0] if isinstance(error, KeyError) else error}') from error


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    preset = PRESETS[args.preset]
    out = os.path.abspath(args.out)
    work = os.path.abspath(args.work or os.path.join(out, 'work'))
    generate, table = load_table()
    vqgan = os.path.abspath(args.vqgan) if args.vqgan else None
    if vqgan:
        check_vqgan(table, vqgan)
    studied = methods(vqgan)
    os.makedirs(out)
    os.makedirs(work, exist_ok=True)
    data = prepare_data(work, args.train_hr, args.test_hr)
    seconds = {}
    teacher = os.path.abspath(args.teacher) if args.teacher else os.path.join(out, 'teacher.pth')
    teacher_options = write_options(work, run_options(generate, table, None, 0, preset, data, None))
    if not args.teacher:
        seconds['gain_teacher'] = train_all(work, [teacher_options], 1)[teacher_options]
        shutil.copy(os.path.join(work, 'experiments', 'gain_teacher', 'models', 'net_g_latest.pth'), teacher)
    option_files = {}
    for seed in args.seeds:
        for method in studied:
            opt = run_options(generate, table, method, seed, preset, data, teacher, vqgan)
            option_files[opt['name']] = write_options(work, opt)
    trained = train_all(work, list(option_files.values()), args.jobs)
    seconds.update({name: trained[path] for name, path in option_files.items()})
    models = {name: (path, os.path.join(work, 'experiments', name, 'models', 'net_g_latest.pth'))
              for name, path in option_files.items()}
    scores = evaluate(work, {'gain_teacher': (teacher_options, teacher), **models}, data, out)
    draw_curves(work, [f'gain_{slug(m)}_s{args.seeds[0]}' for m in studied], out)
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f'CPU ({os.cpu_count()} cores)'
    wall = time.time() - started
    setting = (f'preset {args.preset}, seeds {", ".join(map(str, args.seeds))}, {args.jobs} run(s) at a time, {device}, '
               f'torch {torch.__version__}, {time.strftime("%Y-%m-%d")}; wall time {wall / 60:.1f} min in all. '
               f'x{SCALE}, Y channel, border {SCALE}. DCR and DMM in the feature space of a randomly initialised '
               'VQGAN encoder (no pretrained VQGAN is available offline)'
               + (f'; rows marked{TRAINED}: in that of {vqgan}.' if vqgan else '.'))
    text = results_markdown(scores, args.seeds, seconds, setting, studied)
    with open(os.path.join(out, 'results.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump({'setting': setting, 'seeds': args.seeds, 'scores': scores, 'seconds': seconds,
                   'wall_seconds': wall}, f, indent=1)
    print('\n' + text)


if __name__ == '__main__':
    main()
