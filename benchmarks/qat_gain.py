"""Does distillation during quantization-aware training pay for a 64-channel student? An EDSR of 64
channels and 8 blocks (x4) distilled in FP32 by DCKD from an EDSR-baseline teacher (64 channels, 16
blocks), then made 8-bit (x86: torchao's PT2E, X86InductorQuantizer) two ways: post-training
quantization (`dckd-quantize`) and the quantization-aware fine-tunes of options/quantized/ (L1
only, Logits KD, DCKD: a quarter of the FP32 schedule at a tenth of its learning rate), several
seeds each. Every fine-tune runs a second time in float, its FP32 twin, so that what the fine-tune
itself moves is not counted as what the 8 bits cost or QAT wins back.

The runs are the demo's (options/table.py: DEMO_RUNS and the demo row of QUANTIZED, written by
options/generate.py) with this study's networks, on the data of benchmarks/distill_gain.py (the
scikit-image photographs and BSD68; Set5 and Set14 held out); each goes through `dckd-train`, the
PTQ through `dckd-quantize` (32 calibration patches, its latency table kept in OUT/ptq.md), and
every model and INT8 artifact is scored by `dckd-evaluate` (Y channel, border = scale).

    python benchmarks/qat_gain.py --out results/qat64                        # CPU, about an hour
    python benchmarks/qat_gain.py --teacher results/qat64/teacher.pth --out results/qat64_again
    python benchmarks/qat_gain.py --dry-run --out /tmp/qat                   # tiny networks, a minute

Writes OUT/results.md (mean +- std per model, what PTQ loses and what each fine-tune wins back,
every seed), OUT/results.json, OUT/evaluation.csv, OUT/ptq.md and OUT/teacher.pth.
"""
import argparse
import json
import os
import shutil
import statistics
import time
import types

import distill_gain as gain  # benchmarks/ (this script's folder): data, demo runs' options, runs
import forked

PRESETS = ('cpu', 'dry')
FP32 = 'fp32_dckd'  # the FP32 student every fine-tune starts from (the demo's DCKD run)
PTQ = 'ptq_x86'
FLOAT = '_float'  # suffix of a fine-tune's FP32 twin


# ----- options --------------------------------------------------------------------------------------------

def preset_of(table, name):
    """The study's networks and schedules, as benchmarks/distill_gain.py's presets hold them: an
    EDSR-baseline teacher (64 channels, 16 blocks, 1.52M) and an EDSR student of 64 channels and 8
    blocks (0.93M). BasicSR's SRVGGNetCompact 64/16 (table.SRVGG_STUDENT) cannot be this student:
    with PyTorch's default initialisation its first layers' gradients are ~1e-10, under Adam's eps,
    and at this scale it stays at the nearest-neighbour upsampling it adds its output to."""
    teacher, student = table.edsr(gain.SCALE, 64, 16, 1), table.edsr(gain.SCALE, 64, 8, 1)
    if name == 'cpu':  # the demo's schedules: teacher 2000 iterations, FP32 student 800, fine-tunes 200
        return {'teacher_iter': None, 'student_iter': None, 'val_every': 100, 'jobs': 1,
                'networks': {'teacher': teacher, 'student': student}}
    # 8-channel networks, 8 iterations (fine-tunes 2): the same steps in a minute (the test suite runs it)
    return {'teacher_iter': 8, 'student_iter': 8, 'val_every': 4, 'jobs': 2, 'untrained': True,
            'networks': {'teacher': dict(teacher, num_feat=8, num_block=2), 'student': dict(student, num_feat=8, num_block=1)}}


def fine_tune_options(generate, table, method, seed, preset, data, teacher, student, quantized):
    """The options of one fine-tune of options/quantized/ (`method` of table.QAT_METHODS) from the
    `student` checkpoint, with this study's networks, data and seed; `quantized` False: its FP32
    twin (the same run without train.quantization)."""
    row = next(r for r in table.QUANTIZED if 'demo' in r)
    iterations = preset['student_iter']
    if iterations:  # the FP32 runs' schedule shortened: the fine-tune keeps its fraction of it
        runs = [dict(run, iterations=iterations, milestone=iterations * 3 // 4) for run in table.DEMO_RUNS]
        table = types.SimpleNamespace(**dict(vars(table), DEMO_RUNS=runs))
    _, text = generate.quantized_file(table, method, row)
    opt = generate.yaml.safe_load(text)
    opt['name'] = f'{method}_s{seed}' + ('' if quantized else FLOAT)
    opt['manual_seed'] = seed
    opt['path']['pretrain_network_g'] = student
    if not quantized:
        del opt['train']['quantization']
    return gain.for_study(opt, preset, data, teacher, 'student')


def fine_tunes(table, seeds):
    """(run name, method, seed, quantized) of every fine-tune, INT8 and FP32 twin."""
    return [(f'{method}_s{seed}{"" if quantized else FLOAT}', method, seed, quantized)
            for seed in seeds for method in table.QAT_METHODS for quantized in (True, False)]


# ----- runs -----------------------------------------------------------------------------------------------

def post_training(work, options_file, checkpoint, out, repeats):
    """dckd-quantize (x86, 32 calibration patches of the run's training data) of the FP32 student,
    its printed latency table kept as OUT/ptq.md (its PSNR is dckd-evaluate's, as every model's);
    the artifact's path."""
    artifact = os.path.join(work, f'{PTQ}.pth')
    argv = ['--model', f'{options_file}:{checkpoint}', '--calib', '32', '--repeats', str(repeats),
            '--out', artifact, '--force']
    log = gain.log_file(work, PTQ)
    forked.call(forked.command, 'dckd.quantize', argv, work, log)
    with open(log) as f:
        text = f.read()
    with open(os.path.join(out, 'ptq.md'), 'w') as f:
        f.write(text[text.index('| model'):])
    return artifact


# ----- the table ------------------------------------------------------------------------------------------

def results_markdown(scores, seeds, setting):
    """Mean +- std over the seeds of every fine-tune (INT8 and its FP32 twin) beside the FP32 student
    and its PTQ; then, per test set, what PTQ loses and what share of it each fine-tune wins back
    (INT8 fine-tune - PTQ) / (FP32 - PTQ), and what its 8 bits still cost against its own twin."""
    table = gain.load_table()[1]
    sets = gain.TEST_SETS

    def psnr(name, test_set):
        return scores[name][test_set][0]

    def mean(names, test_set):
        return statistics.mean(psnr(n, test_set) for n in names)

    lines = ['| model | ' + ' | '.join(f'{s} PSNR (dB)' for s in sets) + ' | runs |', '|---|' + '---|' * (len(sets) + 1)]
    for label, name in (('bicubic', 'bicubic'), ('teacher (EDSR-baseline, FP32)', 'teacher'),
                        ('student, FP32 (DCKD)', FP32), ('student, PTQ (x86)', PTQ)):
        lines.append(f'| {label} | ' + ' | '.join(f'{psnr(name, s):.3f}' for s in sets) + ' | 1 |')
    recovery = ['| fine-tune | ' + ' | '.join(f'{s}: won back of PTQ\'s loss | {s}: 8-bit cost vs twin' for s in sets)
                + ' |', '|---|' + '---|' * 2 * len(sets)]
    for method, (_, title) in table.QAT_METHODS.items():
        for suffix, label in (('', f'{title}, INT8'), (FLOAT, f'{title}, its FP32 twin')):
            names = [f'{method}_s{seed}{suffix}' for seed in seeds]
            cells = ['{:.3f} ± {:.3f}'.format(*gain.mean_std([psnr(n, s) for n in names])) for s in sets]
            lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {len(seeds)} |')
        int8, twins = ([f'{method}_s{seed}{suffix}' for seed in seeds] for suffix in ('', FLOAT))
        cells = []
        for s in sets:
            lost = psnr(FP32, s) - psnr(PTQ, s)
            won = mean(int8, s) - psnr(PTQ, s)
            cells += [f'{won:+.3f} dB ({won / lost:.0%})' if lost > 0 else f'{won:+.3f} dB (PTQ lost nothing)',
                      f'{mean(twins, s) - mean(int8, s):.3f} dB']
        recovery.append(f'| {title} | ' + ' | '.join(cells) + ' |')
    losses = ', '.join(f'{s} {psnr(FP32, s) - psnr(PTQ, s):.3f} dB' for s in sets)
    per_seed = ['| run | ' + ' | '.join(f'seed {seed}: {" / ".join(sets)}' for seed in seeds) + ' |',
                '|---|' + '---|' * len(seeds)]
    for method in table.QAT_METHODS:
        for suffix in ('', FLOAT):
            cells = [' / '.join(f'{psnr(f"{method}_s{seed}{suffix}", s):.3f}' for s in sets) for seed in seeds]
            per_seed.append(f'| {method}{suffix} | ' + ' | '.join(cells) + ' |')
    return (f'{setting}\n\n' + '\n'.join(lines) + f'\n\nPTQ loses {losses} against the FP32 student. Won back: the '
            'INT8 fine-tune\'s mean minus PTQ, and its share of what PTQ loses; 8-bit cost: the FP32 twin\'s mean minus '
            'the INT8 fine-tune\'s.\n\n' + '\n'.join(recovery) + '\n\nPSNR (dB) per seed:\n\n' + '\n'.join(per_seed)
            + '\n')


# ----- the command ----------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='folder for the results (must not exist)')
    parser.add_argument('--work', help='LMDBs, options and experiments (default OUT/work; reused when present)')
    parser.add_argument('--preset', choices=PRESETS, default='cpu')
    parser.add_argument('--dry-run', action='store_true', help='the dry preset: tiny networks, 8 iterations')
    parser.add_argument('--seeds', type=int, nargs='+', help='seeds of the fine-tunes (default 0 1 2; dry run: 0)')
    parser.add_argument('--jobs', type=int, help="runs at a time (default: the preset's)")
    parser.add_argument('--teacher', help='an EDSR-baseline teacher checkpoint of an earlier run (OUT/teacher.pth) '
                                          'instead of training one')
    parser.add_argument('--repeats', type=int, default=20, help='timed runs of dckd-quantize (default 20)')
    gain.add_image_arguments(parser)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.preset = 'dry'
    args.seeds = args.seeds or ([0] if args.preset == 'dry' else [0, 1, 2])
    problems = gain.output_and_image_problems(args)
    if args.teacher and not os.path.isfile(args.teacher):
        problems.append(f'--teacher {args.teacher}: no such file; give the OUT/teacher.pth of an earlier run')
    from dckd_arch import quantized
    try:
        quantized.require('x86')
    except quantized.QuantizationError as error:
        problems.append(str(error))
    if problems:
        parser.error('\n  '.join(problems))
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    out = os.path.abspath(args.out)
    work = os.path.abspath(args.work or os.path.join(out, 'work'))
    generate, table = gain.load_table()
    preset = preset_of(table, args.preset)
    os.makedirs(out)
    os.makedirs(work, exist_ok=True)
    data = gain.prepare_data(work, args.train_hr, args.test_hr)
    experiments = os.path.join(work, 'experiments')

    def latest(name):
        return os.path.join(experiments, name, 'models', 'net_g_latest.pth')

    teacher = os.path.abspath(args.teacher) if args.teacher else os.path.join(out, 'teacher.pth')
    opt = gain.run_options(generate, table, None, 0, preset, data, None)
    teacher_options = gain.write_options(work, dict(opt, name='teacher'))
    if not args.teacher:
        gain.train_all(work, [teacher_options], 1)
        shutil.copy(latest('teacher'), teacher)
    opt = gain.run_options(generate, table, 'DCKD', 0, preset, data, teacher)
    student_options = gain.write_options(work, dict(opt, name=FP32))
    gain.train_all(work, [student_options], 1)
    student = latest(FP32)
    ptq = post_training(work, student_options, student, out, args.repeats)

    runs = {name: gain.write_options(work, fine_tune_options(generate, table, method, seed, preset, data, teacher,
                                                             student, quantized))
            for name, method, seed, quantized in fine_tunes(table, args.seeds)}
    gain.train_all(work, list(runs.values()), args.jobs or preset['jobs'])
    models = {'teacher': (teacher_options, teacher), FP32: (student_options, student), PTQ: ptq}
    for name, _, _, quantized in fine_tunes(table, args.seeds):
        models[name] = (os.path.join(experiments, name, 'models', 'net_g_int8.pth') if quantized
                        else (runs[name], latest(name)))
    scores = gain.evaluate(work, models, data, out)

    import torch
    wall = time.time() - started
    setting = (f'preset {args.preset}, seeds {", ".join(map(str, args.seeds))}, CPU ({os.cpu_count()} cores), torch '
               f'{torch.__version__}, {time.strftime("%Y-%m-%d")}; wall time {wall / 60:.1f} min in all. x{gain.SCALE}, '
               f'Y channel, border {gain.SCALE}. DCR and DMM in the feature space of a randomly initialised VQGAN '
               'encoder (no pretrained VQGAN is available offline).')
    text = results_markdown(scores, args.seeds, setting)
    with open(os.path.join(out, 'results.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump({'setting': setting, 'seeds': args.seeds, 'scores': scores, 'wall_seconds': wall}, f, indent=1)
    print('\n' + text)


if __name__ == '__main__':
    main()
