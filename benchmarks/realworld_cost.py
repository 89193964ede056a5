"""What real-world distillation costs, all in one run: the networks and one GAN-stage iteration per method.

Networks (Real-ESRGAN's published sizes, random weights): the student (SRVGGNetCompact, 64 ch,
16 convs), the teacher (RealESRGAN_x4plus's RRDBNet, 64 ch, 23 blocks), the discriminator
(UNetDiscriminatorSN, 64 ch): parameters, and the milliseconds of what each does in an iteration
(the student's forward and backward on the LQ batch, the teacher's forward without gradients, the
discriminator's forward and backward on the GT batch, the VGG19 of the perceptual loss). Then
RealWorldKDModel's whole iteration (the second-order degradation, the pool, the student's and the
discriminator's steps) for scratch, Logits KD and DCKD, as options/train/realworld/*_realesrgan_x4.yml
trains them, ratios to scratch; and the degradation alone. The batches are scikit-image's
photographs with the kernels BasicSR's RealESRGANDataset draws for them. Times are medians.

Presets: `spec` is Real-ESRGAN's (batch 12, GT 256, the published VQGAN size; for a GPU); `cpu`
keeps the three networks at their published sizes and shrinks the batch, the patch and the VQGAN
(the demo's), to finish in minutes on a laptop CPU.

    python benchmarks/realworld_cost.py --preset cpu --out benchmarks/realworld_cpu.md
    python benchmarks/realworld_cost.py --preset spec --device cuda --out benchmarks/realworld_gpu.md
"""
import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_ROOT)
sys.path.insert(0, os.path.join(PROJECT_ROOT, 'options'))
import dckd_models  # noqa: E402,F401  (registers dckd's archs, losses and models in BasicSR's registries)
from basicsr.archs import build_network  # noqa: E402
from basicsr.models import build_model  # noqa: E402
from generate import load_table, plain  # noqa: E402

TEACHER = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 23, 'num_grow_ch': 32,
           'scale': 4}  # RealESRGAN_x4plus.pth's network
PRESETS = {
    'spec': {'batch': 12, 'gt_size': 256, 'vqgan': None},
    'cpu': {'batch': 2, 'gt_size': 128, 'vqgan': {'type': 'VQGANEncoder', 'ch': 32, 'ch_mult': [1, 1, 2, 2, 4],
                                                  'num_res_blocks': 1, 'z_channels': 64, 'embed_dim': 64,
                                                  'n_embed': 256}},
}
METHODS = ('scratch', 'logits', 'dckd')
TITLES = {'scratch': 'scratch', 'logits': 'Logits KD', 'dckd': 'DCKD'}
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def median_ms(function, device, iterations, warmup):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(iterations):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def photographs(folder):
    """Batches of RealESRGANDataset: GT crops of 400x400 and their kernels, as training draws them."""
    import cv2
    import numpy as np
    from skimage import data
    from basicsr.data.realesrgan_dataset import RealESRGANDataset
    os.makedirs(os.path.join(folder, 'gt'))
    for name in PHOTOS:
        cv2.imwrite(os.path.join(folder, 'gt', f'{name}.png'), getattr(data, name)()[..., ::-1])
    with open(os.path.join(folder, 'meta_info.txt'), 'w') as f:
        f.write(''.join(f'{name}.png\n' for name in PHOTOS))
    options = load_options('scratch')['datasets']['train']
    dataset = RealESRGANDataset(dict(options, dataroot_gt=os.path.join(folder, 'gt'),
                                     meta_info=os.path.join(folder, 'meta_info.txt')))
    np.random.seed(0)
    return dataset


def load_options(method):
    """The GAN stage's training options of `method`, as options/generate.py writes them."""
    import yaml
    import generate
    table = load_table()
    pair = next(p for p in table.PAIRS if p['name'] == 'realesrgan')
    return yaml.safe_load(generate.training_file(table, method, pair, 4)[1])


def model_options(method, preset, device, folder):
    opt = load_options(method)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=int(device == 'cuda'), gt_size=preset['gt_size'],
               queue_size=preset['batch'] * 2)
    opt['datasets']['train']['batch_size_per_gpu'] = preset['batch']
    opt['path'] = {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                   'models': os.path.join(folder, 'models'), 'training_states': os.path.join(folder, 'states')}
    if 'network_t' in opt:
        teacher = os.path.join(folder, 'RealESRGAN_x4plus.pth')
        if not os.path.isfile(teacher):
            torch.save({'params_ema': build_network(dict(TEACHER)).state_dict()}, teacher)
        opt['network_t']['path'] = teacher
    if 'network_vqgan' in opt:
        opt['path']['pretrain_network_vqgan'] = None  # random weights: cost only
        if preset['vqgan']:
            opt['network_vqgan'] = dict(preset['vqgan'])
    return opt


def network_rows(preset, device, iterations, warmup):
    """(name, parameters, what is timed, ms) per network."""
    from torchvision.models import vgg19
    b, gt = preset['batch'], preset['gt_size']
    lq = torch.rand(b, 3, gt // 4, gt // 4, device=device)
    high = torch.rand(b, 3, gt, gt, device=device)
    student = build_network(plain(load_table().SRVGG_STUDENT)).to(device)
    teacher = build_network(dict(TEACHER)).to(device).eval()
    discriminator = build_network({'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 64,
                                   'skip_connection': True}).to(device)
    vgg = vgg19().features[:36].to(device).eval().requires_grad_(False)  # to conv5_4, frozen: the perceptual loss's

    def train(net, images):
        def step():
            net.zero_grad(set_to_none=True)
            net(images).mean().backward()
        return step

    def through(net, images):  # a frozen network the loss backpropagates through, to its input
        images = images.clone().requires_grad_()

        def step():
            images.grad = None
            net(images).mean().backward()
        return step

    def infer(net, images):
        def step():
            with torch.no_grad():
                net(images)
        return step

    rows = [('student (SRVGGNetCompact 64/16)', student, 'forward + backward, LQ', train(student, lq)),
            ('teacher (RRDBNet 64/23, RealESRGAN_x4plus)', teacher, 'forward, no gradients, LQ', infer(teacher, lq)),
            ('discriminator (UNetDiscriminatorSN 64)', discriminator, 'forward + backward, GT (its step does two)',
             train(discriminator, high)),
            ('VGG19 of the perceptual loss (to conv5_4)', vgg, 'frozen, forward + backward to the input, GT',
             through(vgg, high))]
    return [(name, sum(p.numel() for p in net.parameters()), what, median_ms(step, device, iterations, warmup))
            for name, net, what, step in rows]


def iteration_rows(preset, device, dataset, folder, iterations, warmup):
    """(method, ms per iteration, ms of feed_data: degradation, crop and pool) per method."""
    import numpy as np
    from torch.utils.data import default_collate
    rows = []
    for method in METHODS:
        model = build_model(model_options(method, preset, device, folder))
        np.random.seed(0)
        batches = [default_collate([dataset[(i * preset['batch'] + j) % len(dataset)] for j in range(preset['batch'])])
                   for i in range(4)]
        state = {'iter': 0}

        def step():
            state['iter'] += 1
            model.feed_data(batches[state['iter'] % len(batches)])
            model.optimize_parameters(state['iter'])

        def feed():
            model.feed_data(batches[0])

        rows.append((method, median_ms(step, device, iterations, warmup), median_ms(feed, device, iterations, 1)))
    return rows


def markdown(preset_name, preset, device, networks, iterations, args):
    name = torch.cuda.get_device_name() if device == 'cuda' else 'CPU'
    lines = [f'preset {preset_name} (batch {preset["batch"]}, GT {preset["gt_size"]}, LQ {preset["gt_size"] // 4}), '
             f'{name}, torch {torch.__version__}, median of {args.iterations} after {args.warmup} warm-up, '
             f'{time.strftime("%Y-%m-%d")}', '', '| network | parameters | timed | ms |', '|---|---|---|---|']
    lines += [f'| {n} | {count / 1e6:.2f}M | {what} | {ms:.1f} |' for n, count, what, ms in networks]
    scratch = iterations[0][1]
    lines += ['', '| GAN stage, RealWorldKDModel | ms / iteration | x scratch | of which degradation, crop, pool |',
              '|---|---|---|---|']
    lines += [f'| {TITLES[method]} | {ms:.1f} | {ms / scratch:.2f} | {feed:.1f} |' for method, ms, feed in iterations]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch', type=int, help='override the preset batch')
    parser.add_argument('--iterations', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--out', help='also write the tables to this markdown file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('realworld_cost.py: --device cuda, but torch sees no CUDA device')
    preset = copy.deepcopy(PRESETS[args.preset])
    if args.batch:
        preset['batch'] = args.batch
    out = os.path.abspath(args.out) if args.out else None
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        vgg_dir = os.path.join(folder, 'experiments', 'pretrained_models')  # where BasicSR reads VGG19's weights
        os.makedirs(vgg_dir)
        from torchvision.models import vgg19
        torch.save(vgg19().state_dict(), os.path.join(vgg_dir, 'vgg19-dcbb9e9d.pth'))  # random: cost only
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            dataset = photographs(os.path.join(folder, 'photos'))
            networks = network_rows(preset, args.device, args.iterations, args.warmup)
            iterations = iteration_rows(preset, args.device, dataset, folder, args.iterations, args.warmup)
        finally:
            os.chdir(cwd)
    text = markdown(args.preset, preset, args.device, networks, iterations, args)
    print(text)
    if out:
        with open(out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
