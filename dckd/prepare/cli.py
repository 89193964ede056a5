"""`dckd-prepare`: one subcommand per data set family. Every subcommand is idempotent (existing
outputs are checked, not rebuilt, unless --overwrite), shows progress, and checks its result:
image counts, sizes and GT/LQ pairing."""
import argparse
import os

from . import pairs, sr


def _scales(text):
    return [int(s) for s in text.split(',')]


def build_parser():
    parser = argparse.ArgumentParser(prog='dckd-prepare', description=__doc__.split('\n')[0][len('`dckd-prepare`: '):])
    families = parser.add_subparsers(dest='family', required=True)

    div2k = families.add_parser('div2k', help='DIV2K HR folder -> sub-image LMDBs (GT and bicubic LR per scale)')
    div2k.add_argument('hr_folder', help='DIV2K_train_HR (0001.png ... 0800.png)')
    div2k.add_argument('--out', default='datasets/DIV2K')
    div2k.add_argument('--scales', type=_scales, default=[2, 3, 4], help='comma-separated, default 2,3,4')
    div2k.add_argument('--patch', type=int, default=480)
    div2k.add_argument('--step', type=int, default=240)
    div2k.add_argument('--workers', type=int, default=os.cpu_count())

    bench = families.add_parser('benchmark', help='SR benchmark HR images -> GTmod12 + LRbicx<s>')
    bench.add_argument('hr_folder', help='HR images of Set5, Set14, BSD100, Urban100, Manga109 or any folder')
    bench.add_argument('--name', help='data set name (default: the folder name)')
    bench.add_argument('--out', default='datasets')
    bench.add_argument('--scales', type=_scales, default=[2, 3, 4])
    bench.add_argument('--mod', type=int, default=12, help='mod-crop of the GT, a multiple of every scale')
    bench.add_argument('--format', choices=['folder', 'lmdb'], default='folder')

    folder = families.add_parser('folder', help='your own HR images -> paired gt.lmdb + lq_x<s>.lmdb')
    folder.add_argument('hr_folder')
    folder.add_argument('out')
    folder.add_argument('--scale', type=int, required=True)
    folder.add_argument('--patch', type=int, help='cut sub-images of this size (with --step)')
    folder.add_argument('--step', type=int)
    folder.add_argument('--workers', type=int, default=os.cpu_count())

    gopro = families.add_parser('gopro', help='GOPRO_Large -> train crops and test LMDBs (deblurring)')
    gopro.add_argument('root', help='GOPRO_Large, holding train/ and test/')
    gopro.add_argument('--out', default='datasets/GoPro')
    gopro.add_argument('--patch', type=int, default=512)
    gopro.add_argument('--step', type=int, default=256)

    rain = families.add_parser('rain13k', help='Rain13K + Test100/Rain100H/Rain100L/Test2800/Test1200 -> LMDBs')
    rain.add_argument('root', help="Restormer's Datasets folder, holding train/Rain13K and test/<set>")
    rain.add_argument('--out', default='datasets/Rain13K')

    for sub in (div2k, bench, folder, gopro, rain):
        sub.add_argument('--overwrite', action='store_true', help='rebuild outputs that exist')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.family == 'div2k':
        count = sr.prepare_div2k(args.hr_folder, args.out, args.scales, args.patch, args.step, args.overwrite,
                                 args.workers)
    elif args.family == 'benchmark':
        name = args.name or os.path.basename(os.path.normpath(args.hr_folder))
        count = sr.prepare_benchmark(args.hr_folder, args.out, name, args.scales, args.mod, args.format,
                                     args.overwrite)
    elif args.family == 'folder':
        count = sr.prepare_folder(args.hr_folder, args.out, args.scale, args.patch, args.step, args.overwrite,
                                  args.workers)
    elif args.family == 'gopro':
        count = pairs.prepare_gopro(args.root, args.out, args.patch, args.step, args.overwrite)
    else:
        count = pairs.prepare_rain13k(args.root, args.out, args.overwrite)
    print(f'{args.family}: checked {count} pair(s)')


if __name__ == '__main__':
    main()
