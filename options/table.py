"""The table every training and test options file is written from (python options/generate.py).

A row of PAIRS is one teacher -> student pair on one task, at one or more scales; every row gets
one training file per method of METHODS and one test file per scale. Adding a pair is one row.
DEMO_RUNS are the four steps of dckd-demo (options/demo/).
Values wrapped in C(...) carry the comment written above them (`note`) or beside them (`inline`);
a key starting with '# ' is written commented out.
"""
from generate import C

VQGAN_FILE = 'experiments/pretrained_models/VQGAN/vqgan_imagenet_f16_1024.ckpt'
SR_BENCHMARKS = ('Set5', 'Set14', 'BSD100', 'Urban100')


# ----- networks --------------------------------------------------------------------------------

def swinir(scale, embed_dim, blocks, img_size=48, upsampler='pixelshuffle'):
    return {'type': 'SwinIR', 'upscale': scale, 'in_chans': 3, 'img_size': img_size, 'window_size': 8,
            'img_range': 1., 'depths': [6] * blocks, 'embed_dim': embed_dim, 'num_heads': [6] * blocks,
            'mlp_ratio': 2, 'upsampler': upsampler, 'resi_connection': '1conv'}


def rcan(scale, num_block):
    return {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_group': 10, 'num_block': num_block,
            'squeeze_factor': 16, 'upscale': scale, 'res_scale': 1, 'img_range': 255.,
            'rgb_mean': [0.4488, 0.4371, 0.4040]}


def edsr(scale, num_feat, num_block, res_scale):
    return {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': num_feat, 'num_block': num_block,
            'upscale': scale, 'res_scale': res_scale, 'img_range': 255., 'rgb_mean': [0.4488, 0.4371, 0.4040]}


def nafnet(width, encoder):
    return {'type': 'NAFNet', 'img_channel': 3, 'width': width, 'middle_blk_num': 1, 'enc_blk_nums': encoder,
            'dec_blk_nums': [1, 1, 1, 1]}


def restormer(dim, blocks, refinement):
    return {'type': 'Restormer', 'inp_channels': 3, 'out_channels': 3, 'dim': dim, 'num_blocks': blocks,
            'num_refinement_blocks': refinement, 'heads': [1, 2, 4, 8], 'ffn_expansion_factor': 2.66,
            'bias': False, 'LayerNorm_type': 'WithBias', 'dual_pixel_task': False}


VQGAN = {'type': 'VQGANEncoder', 'ch': 128, 'ch_mult': [1, 1, 2, 2, 4], 'num_res_blocks': 2, 'attn_resolutions': [16],
         'resolution': 256, 'z_channels': 256, 'embed_dim': 256, 'n_embed': 1024,
         'input_range': C([-1, 1], inline="the range taming trained on; [0, 1] reproduces the authors' released code")}

# ----- tasks: data, recipe, evaluation -----------------------------------------------------------


def paired(name, gt, lq, backend='lmdb', kind='PairedImageDataset'):
    return {'name': name, 'type': kind, 'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': backend}}


def metrics(border, y_channel, note):
    return C({'psnr': {'type': 'calculate_psnr', 'crop_border': border, 'test_y_channel': y_channel},
              'ssim': {'type': 'calculate_ssim', 'crop_border': border, 'test_y_channel': y_channel}}, note)


def sr_task(scale):
    """DIV2K sub-images, LR patch 48, batch 16, Adam, lr 1e-4 / 10 every 100k, 250k iterations."""
    train = {**paired('DIV2K', 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb',
                      f'datasets/DIV2K/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'),
             'gt_size': 48 * scale, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 6,
             'batch_size_per_gpu': C(16, inline="the paper's batch; the released run used 16 on each of 4 GPUs"),
             'dataset_enlarge_ratio': 1, 'prefetch_mode': None}
    train['dataroot_gt'] = C(train['dataroot_gt'], "DIV2K's 800 training images as 480x480 sub-images (step 240) "
                             'and their bicubic LR, in LMDB')
    return {
        'scale': scale,
        'train_set': train,
        'test_sets': [paired(b, f'datasets/{b}/GTmod12', f'datasets/{b}/LRbicx{scale}', 'disk') for b in SR_BENCHMARKS],
        'recipe': {
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': C({'type': 'MultiStepLR', 'milestones': [100000, 200000], 'gamma': 0.1},
                           'the paper divides the lr by 10 every 100k iterations; the released config keeps it '
                           'constant'),
            'total_iter': 250000,
        },
        'metrics': metrics(scale, True, 'Y channel, `scale` border pixels cropped: the SR convention the paper '
                           'reports'),
        'what': f'x{scale}',
    }


def gopro_task(gt_size, batch, batch_note):
    return {
        'scale': 1,
        'train_set': {**paired('GoPro_train', 'datasets/GoPro/train/sharp_crops.lmdb',
                               'datasets/GoPro/train/blur_crops.lmdb'),
                      'gt_size': gt_size, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 8,
                      'batch_size_per_gpu': C(batch, inline=batch_note), 'dataset_enlarge_ratio': 1,
                      'prefetch_mode': None},
        'test_sets': [paired('GoPro', 'datasets/GoPro/test/target.lmdb', 'datasets/GoPro/test/input.lmdb')],
        'metrics': metrics(0, False, 'RGB (the paper reports GoPro on RGB), no border'),
        'what': 'on GoPro (motion deblurring), scale 1: teacher and student restore the same-size image',
    }


def rain13k_task():
    tests = ('Rain100L', 'Test100', 'Rain100H', 'Test2800', 'Test1200')
    return {
        'scale': 1,
        'train_set': {**paired('Rain13K_train', 'datasets/Rain13K/train/target.lmdb',
                               'datasets/Rain13K/train/input.lmdb', kind='PaddedPairedImageDataset'),
                      'gt_size': 384, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 8,
                      'batch_size_per_gpu': C(8, inline='the largest stage of the progressive schedule below; images '
                                              'smaller than the patch are reflect-padded'),
                      'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
        'val_sets': 1,  # training validates on Rain100L only; the test file evaluates all five
        'test_sets': [paired(t, f'datasets/Rain13K/test/{t}/target.lmdb', f'datasets/Rain13K/test/{t}/input.lmdb')
                      for t in tests],
        'metrics': metrics(0, True, 'Y channel (the paper reports deraining on Y), no border'),
        'what': 'on Rain13K (deraining), scale 1: teacher and student restore the same-size image',
    }


# ----- real-world SR: Real-ESRGAN's data, degradation and two stages ------------------------------

KERNEL_TYPES = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
KERNEL_PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
REALWORLD_TOP = {  # Real-ESRGAN's train_realesrgan_x4plus.yml, top level
    'gt_size': C(256, 'the GT patch cut from each degraded pair (LQ 64)'),
    'queue_size': C(180, inline='the training pair pool: a multiple of the batch size'),
    'l1_gt_usm': C(True, 'targets sharpened by unsharp masking, as Real-ESRGAN trains: the pixel and perceptual '
                   'losses against the sharpened GT, the discriminator against the plain GT'),
    'percep_gt_usm': True, 'gan_gt_usm': False,
    'resize_prob': C([0.2, 0.7, 0.1], 'the first degradation: blur (kernel1), resize (up, down, keep), Gaussian or '
                     'Poisson noise, JPEG'),
    'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5, 'noise_range': [1, 30], 'poisson_scale_range': [0.05, 3],
    'gray_noise_prob': 0.4, 'jpeg_range': [30, 95],
    'second_blur_prob': C(0.8, 'the second degradation: blur (kernel2) with probability 0.8, resize, noise, then JPEG '
                          'and the final sinc filter in a random order'),
    'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2], 'gaussian_noise_prob2': 0.5, 'noise_range2': [1, 25],
    'poisson_scale_range2': [0.05, 2.5], 'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95],
}
REALWORLD_DATA = {
    'name': 'DF2K+OST', 'type': 'RealESRGANDataset_basicsr', 'dataroot_gt': 'datasets/DF2K',
    'meta_info': C('datasets/DF2K/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt',
                   "Real-ESRGAN's training images: DF2K at several scales and OST, as sub-images, listed one per line "
                   'relative to dataroot_gt (Real-ESRGAN docs/Training.md prepares them)'),
    'io_backend': {'type': 'disk'},
    'blur_kernel_size': C(21, 'the kernels of both degradations, drawn per image in the data workers'),
    'kernel_list': KERNEL_TYPES, 'kernel_prob': KERNEL_PROBS, 'sinc_prob': 0.1, 'blur_sigma': [0.2, 3],
    'betag_range': [0.5, 4], 'betap_range': [1, 2],
    'blur_kernel_size2': 21, 'kernel_list2': KERNEL_TYPES, 'kernel_prob2': KERNEL_PROBS, 'sinc_prob2': 0.1,
    'blur_sigma2': [0.2, 1.5], 'betag_range2': [0.5, 4], 'betap_range2': [1, 2], 'final_sinc_prob': 0.8,
    'use_hflip': True, 'use_rot': False, 'num_worker_per_gpu': 5,
    'batch_size_per_gpu': C(12, inline="Real-ESRGAN's batch on each of 4 GPUs"), 'dataset_enlarge_ratio': 1,
    'prefetch_mode': None,
}
NIQE = C({'niqe': {'type': 'calculate_niqe', 'crop_border': 4}},
         'NIQE, no reference (lower is better): real photographs have no ground truth')
REAL_DCR_NEGATIVES = C({'num': 5, 'pipeline': 'realworld'},
                       "N = 5 negatives: H(x) and 4 x H(D_j(x)), D_j the second degradation of the same pipeline "
                       "at the LQ size (blur by the image's kernel2, noise, JPEG)")


def realworld_task(stage):
    """Real-ESRGAN's two stages: 'net' (PSNR-oriented: L1 only, 1M iterations) and 'gan' (from the
    first stage's EMA student: L1 + perceptual + GAN with UNetDiscriminatorSN, 400k iterations)."""
    task = {
        'scale': 4, 'model_type': 'RealWorldKDModel', 'top': REALWORLD_TOP, 'train_set': REALWORLD_DATA,
        'test_sets': [{'name': 'RealSRSet', 'type': 'SingleImageDataset', 'dataroot_lq': 'datasets/RealSRSet',
                       'io_backend': {'type': 'disk'}}],
        'metrics': NIQE, 'what': 'x4 real-world SR, Real-ESRGAN\'s recipe', 'own_recipe': True,
        'method_terms': {'dckd': {'negatives': REAL_DCR_NEGATIVES}},
    }
    if stage == 'net':
        task['recipe'] = {
            'optim_g': C({'type': 'Adam', 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                         "RealESRNet's recipe: Adam lr 2e-4, halved after 1M iterations"),
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000000], 'gamma': 0.5}, 'total_iter': 1000000,
        }
        return task
    task['recipe'] = {
        'optim_g': C({'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
                     "Real-ESRGAN's recipe: Adam lr 1e-4 for the student and the discriminator, 400k iterations"),
        'optim_d': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [400000], 'gamma': 0.5}, 'total_iter': 400000,
    }
    task['losses'] = {
        'perceptual_opt': C({'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1,
                                                                         'conv4_4': 1, 'conv5_4': 1},
                             'vgg_type': 'vgg19', 'use_input_norm': True, 'perceptual_weight': 1.0,
                             'style_weight': 0, 'range_norm': False, 'criterion': 'l1'},
                            "VGG19's ImageNet weights, read from experiments/pretrained_models/vgg19-dcbb9e9d.pth "
                            '(dckd-fetch vgg19)'),
        'gan_opt': {'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                    'loss_weight': 0.1},
        'net_d_iters': 1, 'net_d_init_iters': 0,
    }
    task['network_d'] = C({'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 64,
                           'skip_connection': True}, "Real-ESRGAN's U-Net discriminator with spectral norm, from "
                          'random weights')
    task['pretrain_g'] = C(lambda run: f'experiments/{run.replace("realesrgan", "realesrnet")}/models/net_g_latest.pth',
                           "the first stage's student of the same method (its EMA weights)")
    return task


NAFNET_RECIPE = {
    'optim_g': C({'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]},
                 "NAFNet's recipe: AdamW (0.9, 0.9), weight decay 1e-3, lr 1e-3 cosine to 1e-7 over 200k iterations"),
    'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [200000], 'restart_weights': [1], 'eta_min': 1e-7},
    'total_iter': 200000,
}
RESTORMER_RECIPE = {
    'optim_g': C({'type': 'AdamW', 'lr': 3e-4, 'weight_decay': 1e-4, 'betas': [0.9, 0.999]},
                 "Restormer's recipe: AdamW (0.9, 0.999), weight decay 1e-4, lr 3e-4 for 92k iterations then cosine "
                 'to 1e-6 over 208k (300k in all), with progressive patches 128 -> 384 and batches 8 -> 1. Restormer '
                 'also clips gradients (use_grad_clip); dckd does not.'),
    'scheduler': {'type': 'CosineAnnealingRestartCyclicLR', 'periods': [92000, 208000], 'restart_weights': [1, 1],
                  'eta_mins': [3e-4, 1e-6]},
    'total_iter': 300000,
    'progressive': {'milestones': [92000, 156000, 204000, 240000, 276000], 'gt_sizes': [128, 160, 192, 256, 320, 384],
                    'batch_sizes': [8, 5, 4, 2, 1, 1]},
}
RESTORMER_STUDENT_NOTE = ('Student: dim 24, 22 blocks. The paper publishes only its size (3.8M); blocks [2, 3, 3, 4] '
                          'with 2 refinement blocks give 3.81M parameters.')

SRVGG_STUDENT = {'type': 'SRVGGNetCompact_basicsr', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_conv': 16,
                 'upscale': 4, 'act_type': 'prelu'}
SRVGG_NOTE = ("Student: BasicSR's SRVGGNetCompact (Real-ESRGAN's compact network) with 16 convolutions, the layout of "
              'realesr-animevideov3; realesr-general-x4v3 has 32.')
REALESRGAN_TEACHER = {'type': 'PretrainedModel', 'path': 'experiments/pretrained_models/RealESRGAN_x4plus.pth'}
REALESRGAN_NOTE = ("Teacher: Real-ESRGAN's RealESRGAN_x4plus.pth (xinntao/Real-ESRGAN releases, v0.1.0), read by "
                   'spandrel (RRDBNet under params_ema); any Real-ESRGAN-family file works the same way.')

def realworld_pair(name, stage, title, what):
    """One stage of RealESRGAN_x4plus -> SRVGGNetCompact (64 ch, 16 convs)."""
    return {'name': name, 'family': 'realworld', 'title': title, 'task': lambda s: realworld_task(stage),
            'scales': (4, ), 'paper': False, 'methods': RESTORATION_METHODS,
            'summary': 'RealESRGAN_x4plus (RRDBNet, 23 blocks) -> SRVGGNetCompact (64 ch, 16 convs); 16.7M -> 0.6M. '
                       f'Not in the paper: real-world SR, {what}.',
            'student': lambda s: SRVGG_STUDENT, 'student_note': SRVGG_NOTE,
            'teacher': lambda s: REALESRGAN_TEACHER, 'teacher_note': REALESRGAN_NOTE, 'teacher_file': None}


# ----- the pairs: one row each --------------------------------------------------------------------

# which METHODS a pair is trained with (its 'methods'; DEFAULT_METHODS when it names none)
DEFAULT_METHODS = SR_METHODS = ('dckd', 'logits', 'scratch', 'fakd', 'fitnet', 'dukd')
RESTORATION_METHODS = ('dckd', 'logits', 'scratch')

SWINIR_M = {
    'teacher': lambda s: swinir(s, 180, 6),
    'teacher_note': 'Teacher: SwinIR-M, the official classical-SR model trained on DIV2K with 48x48 LR patches '
                    '(s48w8): img_size must be 48, or its attn_mask buffers do not load strictly.',
    'teacher_file': lambda s: f'experiments/pretrained_models/SwinIR/001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth',
    'teacher_file_note': 'official SwinIR release (JingyunLiang/SwinIR), weights under "params"',
    'fused_attention': True,
    'patch_note': 'LR patch 48 = 6 windows of 8',
    # FAKD: the first conv, two RSTBs at matching depth, the conv after the body
    'taps': (['conv_first', 'layers.1', 'layers.3', 'conv_after_body'],
             ['conv_first', 'layers.2', 'layers.5', 'conv_after_body']),
}
EDSR_L = {
    'teacher': lambda s: edsr(s, 256, 32, 0.1),
    'teacher_note': 'Teacher: EDSR-L as released by BasicSR (ported from the official EDSR); 256 channels need the '
                    'residual scaling 0.1 it was trained with.',
    'teacher_file': lambda s: 'experiments/pretrained_models/EDSR/' + {
        2: 'EDSR_Lx2_f256b32_DIV2K_official-be38e77d.pth', 3: 'EDSR_Lx3_f256b32_DIV2K_official-3660f70d.pth',
        4: 'EDSR_Lx4_f256b32_DIV2K_official-76ee1c8f.pth'}[s],
    'teacher_file_note': 'BasicSR\'s released EDSR-L (XPixelGroup/BasicSR model zoo), weights under "params"',
    # FAKD: the positions of the DUKD authors' EDSR configs (conv_first, blocks 10 and 21, conv_after_body)
    'taps': (['conv_first', 'body.10', 'body.21', 'conv_after_body'],
             ['conv_first', 'body.10', 'body.21', 'conv_after_body']),
}

PAIRS = [
    {**SWINIR_M, 'name': 'swinir', 'family': 'swinir', 'title': 'SwinIR', 'task': sr_task, 'scales': (2, 3, 4),
     'summary': 'SwinIR-M (embed 180, 6 RSTB x depth 6) -> SwinIR (embed 60, 4 RSTB x depth 6); 11.9M -> 1.2M at x4.',
     'student': lambda s: swinir(s, 60, 4),
     'student_note': "Student: the compact SwinIR of the paper's Table 1 (window 8 and img_size 48 as the teacher).",
     'methods': SR_METHODS + ('dckdstar', )},
    {**SWINIR_M, 'name': 'swinir_light', 'family': 'swinir', 'title': 'SwinIR-light', 'task': sr_task,
     'scales': (2, 3, 4), 'paper': False,
     'summary': 'SwinIR-M (embed 180, 6 RSTB) -> SwinIR-light (embed 60, 4 RSTB, pixelshuffledirect); 11.9M -> 0.9M '
                'at x4. Not in the paper: the published lightweight SwinIR as the student.',
     'student': lambda s: swinir(s, 60, 4, img_size=64, upsampler='pixelshuffledirect'),
     'student_note': "Student: SwinIR-light, the published lightweight model's layout (002_lightweightSR_DIV2K_s64w8_"
                     'SwinIR-S_x*.pth, img_size 64), trained here from scratch on LR patches of 48.'},
    {'name': 'pretrained_swinir', 'family': 'pretrained', 'title': 'SwinIR', 'task': sr_task, 'scales': (2, 3, 4),
     'paper': False, 'methods': ('dckd', 'logits'),
     'summary': 'any model file as the teacher (here HAT) -> the SwinIR student of the paper (embed 60, 4 RSTB). Not '
                'in the paper: a teacher of another project, with no architecture options to write.',
     'student': lambda s: swinir(s, 60, 4),
     'student_note': "Student: the compact SwinIR of the paper's Table 1 (scratch: options/train/swinir/).",
     'teacher': lambda s: {'type': 'PretrainedModel', 'path': f'experiments/pretrained_models/HAT/HAT_SRx{s}.pth'},
     'teacher_note': 'Teacher: any model file spandrel recognises (.pth, .pt, .ckpt, .safetensors; SwinIR, HAT, DAT, '
                     'NAFNet, official RCAN, ESRGAN, ... docs/teachers.md): it detects the architecture and its '
                     "options from the weights. Here HAT's HAT_SRx*.pth (XPixelGroup/HAT); replace the path with "
                     'your file. Its scale and channels are checked against this run before training starts.',
     'teacher_file': None, 'fused_attention': True, 'patch_note': 'LR patch 48 = 6 windows of 8 (the student\'s)'},
    {'name': 'rcan', 'family': 'rcan', 'title': 'RCAN', 'task': sr_task, 'scales': (2, 3, 4),
     'summary': 'RCAN (64 ch, 10 groups x 20 blocks) -> RCAN (64 ch, 10 groups x 6 blocks); 15.6M -> 5.2M at x4.',
     'student': lambda s: rcan(s, 6), 'student_note': "Student: RCAN with 6 blocks per group instead of 20 (paper's "
                                                      'Table 1).',
     'teacher': lambda s: rcan(s, 20), 'teacher_note': 'Teacher: the official RCAN (Zhang et al., ECCV 2018), BI '
                                                       'degradation.',
     'teacher_file': lambda s: f'experiments/pretrained_models/RCAN/RCAN_BIX{s}_basicsr.pth',
     'teacher_file_note': 'the official RCAN_BIX*.pt converted to BasicSR\'s RCAN layout (keys renamed, the '
                          'mean-shift layers dropped: img_range/rgb_mean do their work) and saved under "params"',
     'patch_note': 'LR patch 48, as for SwinIR', 'methods': SR_METHODS + ('dckdstar', ),
     # FAKD: the positions of the DUKD authors' RCAN configs (conv_first, groups 2 and 6, conv_after_body)
     'taps': (['conv_first', 'body.2', 'body.6', 'conv_after_body'],
              ['conv_first', 'body.2', 'body.6', 'conv_after_body'])},
    {**EDSR_L, 'name': 'edsr', 'family': 'edsr', 'title': 'EDSR', 'task': sr_task, 'scales': (2, 3, 4),
     'summary': 'EDSR-L (256 ch, 32 blocks) -> EDSR (64 ch, 32 blocks); 43.1M -> 2.7M at x4.',
     'student': lambda s: edsr(s, 64, 32, 1),
     'student_note': 'Student: EDSR at a quarter of the width, same depth (64 ch, 32 blocks): the EDSR teacher/student '
                     'pair that SR KD papers use. At 64 channels EDSR trains without residual scaling.'},
    {**EDSR_L, 'name': 'edsr_baseline', 'family': 'edsr', 'title': 'EDSR-baseline', 'task': sr_task,
     'scales': (2, 3, 4), 'paper': False,
     'summary': 'EDSR-L (256 ch, 32 blocks) -> EDSR-baseline (64 ch, 16 blocks); 43.1M -> 1.5M at x4. Not in the '
                'paper: the baseline EDSR as the student.',
     'student': lambda s: edsr(s, 64, 16, 1),
     'student_note': "Student: EDSR-baseline, the layout of BasicSR's EDSR_Mx*_f64b16_DIV2K_official zoo files (64 ch, "
                     '16 blocks, no residual scaling), trained here from scratch.',
     'taps': (['conv_first', 'body.5', 'body.10', 'conv_after_body'],
              ['conv_first', 'body.10', 'body.21', 'conv_after_body'])},
    {'name': 'nafnet_gopro', 'family': 'nafnet', 'title': 'NAFNet', 'task': lambda s: gopro_task(
        256, 32, 'NAFNet: 4 per GPU on 8 GPUs'), 'scales': (1, ), 'recipe': NAFNET_RECIPE,
     'student': lambda s: nafnet(16, [1, 1, 1, 14]),
     'student_note': "Student: width 16, 22 blocks. The paper publishes only its size (2.7M); this layout (half the "
                     "encoder's deepest stage of the teacher, width halved) gives 2.68M parameters.",
     'teacher': lambda s: nafnet(32, [1, 1, 1, 28]), 'teacher_note': 'Teacher: NAFNet-GoPro-width32.',
     'teacher_file': lambda s: 'experiments/pretrained_models/NAFNet/NAFNet-GoPro-width32.pth',
     'teacher_file_note': 'NAFNet-GoPro-width32.pth (megvii-research/NAFNet), weights under "params"',
     'methods': RESTORATION_METHODS},
    {'name': 'restormer_gopro', 'family': 'restormer', 'title': 'Restormer', 'task': lambda s: gopro_task(
        384, 8, 'the largest stage of the progressive schedule below'), 'scales': (1, ), 'recipe': RESTORMER_RECIPE,
     'student': lambda s: restormer(24, [2, 3, 3, 4], 2), 'student_note': RESTORMER_STUDENT_NOTE,
     'teacher': lambda s: restormer(48, [4, 6, 6, 8], 4), 'teacher_note': 'Teacher: Restormer (motion deblurring).',
     'teacher_file': lambda s: 'experiments/pretrained_models/Restormer/motion_deblurring.pth',
     'teacher_file_note': 'motion_deblurring.pth (swz30/Restormer), weights under "params"',
     'methods': RESTORATION_METHODS},
    {'name': 'restormer_rain13k', 'family': 'restormer', 'title': 'Restormer', 'task': lambda s: rain13k_task(),
     'scales': (1, ), 'recipe': RESTORMER_RECIPE,
     'student': lambda s: restormer(24, [2, 3, 3, 4], 2), 'student_note': RESTORMER_STUDENT_NOTE,
     'teacher': lambda s: restormer(48, [4, 6, 6, 8], 4), 'teacher_note': 'Teacher: Restormer (deraining).',
     'teacher_file': lambda s: 'experiments/pretrained_models/Restormer/deraining.pth',
     'teacher_file_note': 'deraining.pth (swz30/Restormer), weights under "params"',
     'methods': RESTORATION_METHODS},
    realworld_pair('realesrnet', 'net', 'Real-ESRGAN stage 1 (PSNR-oriented)',
                   'stage 1 of 2 (L1 and the distillation terms, no GAN)'),
    realworld_pair('realesrgan', 'gan', 'Real-ESRGAN stage 2 (GAN)',
                   'stage 2 of 2 (from stage 1: perceptual and GAN losses with the distillation terms)'),
]

# ----- the methods: which terms each training file switches on -----------------------------------

PAPER_TERMS = {
    'kd_opt': C({'type': 'L1Loss', 'loss_weight': 1.0}, inline='Logits KD: |S(x) - T(x)|_1'),
    'contrastive_opt': C({'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1,
                          'level_weights': [0.03125, 0.0625, 0.125, 0.25, 1.0], 'eps': 1e-7},
                         'DCR, lambda_dcl 0.1; level weights 1/32 .. 1 over the five VQGAN levels (coarsest weighs '
                         'most)'),
    'distribution_opt': C({'type': 'DistributionMappingLoss', 'loss_weight': 0.001, 'mode': 'paper'},
                          "DMM, lambda_ce 0.001; mode 'released' reproduces the released code's double softmax"),
    'history': C({'source': 'ema', 'attenuation': 0.1, 'steps': [1000, 2000, 3000], 'milestones': [100000, 200000]},
                 'history model: moved toward the EMA student (attenuation 0.1) every 1000 iterations up to 100k, '
                 'every 2000 up to 200k, every 3000 after'),
    'negatives': C({'num': 5, 'probs': {'noise': 1.0, 'blur': 0.0, 'resize': 0.0},
                    'noise': {'sigma_range': [1, 30], 'gray_prob': 0.5}},
                   'N = 5 negatives: H(x) and 4 x H(D_j(x)) with D_j Gaussian noise (sigma U[1, 30]/255, gray half '
                   "the time), the best degradation in the paper's ablation"),
}
LCR_OFF = {'# lcr_opt': C({'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5},
                          inline='label consistency, on in every released config')}
COST = {
    'precision': C('float32', 'cost, none of which changes the losses beyond rounding (docs/cost.md): '
                   'bfloat16 forward passes (weights, gradients and losses stay float32); images per no-grad pass over '
                   "the negatives (~ = the batch size); recompute the anchor's VQGAN activations in backward; "
                   'torch.compile the teacher, history model and VQGAN'),
    'frozen_chunk': None, 'vqgan_recompute': True, 'compile_frozen': False,
}

FAKD_NOTE = ('FAKD (He et al., ICIP 2020): L1 between the spatial affinity matrices of tapped student and '
             "teacher features, weight 10, with Logits KD, as the DUKD authors' FAKD configs; their code's feature "
             'loss cuts the graph, ours trains')
UPCYCLING = C({'type': 'L1Loss', 'loss_weight': 1.0, 'zoom_in': 1, 'zoom_out': False, 'prob': 0.3},
              'DUKD (arXiv 2309.14162): one zoom-in tile per image (an LR-sized tile of the ground truth, labelled '
              "by the teacher), LCR transforms on it with probability 0.3, no zoom-out: the authors' released configs")
LCR_ON = {'lcr_opt': C({'type': 'L1Loss', 'loss_weight': 1.0, 'prob': 0.5}, inline='label consistency')}


HINT_NOTE = ("FitNets (Romero et al., ICLR 2015): L2 between the teacher's features and the student's mapped by "
             'learned 1x1 regressors (adapters, saved with the student as net_adapters_*.pth), at the two inner stage '
             'taps of FAKD (FitNets takes one hint from the middle), with Logits KD; weight 1, not tuned')


def fakd_terms(pair):
    student_taps, teacher_taps = pair['taps']
    return {'kd_opt': PAPER_TERMS['kd_opt'],
            'feature_opt': C({'type': 'L1Loss', 'loss_weight': 10.0, 'student_taps': student_taps,
                              'teacher_taps': teacher_taps}, FAKD_NOTE)}


def fitnet_terms(pair):
    student_taps, teacher_taps = pair['taps']
    return {'kd_opt': PAPER_TERMS['kd_opt'],
            'hint_opt': C({'type': 'MSELoss', 'loss_weight': 1.0, 'student_taps': student_taps[1:-1],
                           'teacher_taps': teacher_taps[1:-1]}, HINT_NOTE)}


METHODS = {
    'dckd': {'title': 'DCKD: L1 + Logits KD + dynamic contrastive regularization (DCR) + distribution mapping (DMM).',
             'teacher': True, 'vqgan': True, 'terms': {**PAPER_TERMS, **LCR_OFF, **COST}},
    'logits': {'title': 'Logits KD baseline: L1 to the ground truth + L1 to the teacher output.',
               'teacher': True, 'vqgan': False, 'terms': {'kd_opt': PAPER_TERMS['kd_opt'], **LCR_OFF}},
    'scratch': {'title': 'Student from scratch: L1 to the ground truth only (DCKDModel with every teacher term off, '
                         'so the three runs share one model and differ only in their losses).',
                'teacher': False, 'vqgan': False, 'terms': {}},
    'fakd': {'title': 'FAKD baseline: L1 + Logits KD + feature-affinity KD at tapped modules.',
             'teacher': True, 'vqgan': False, 'terms': fakd_terms},
    'fitnet': {'title': "FitNets baseline: L1 + Logits KD + hints (the teacher's inner features, regressed from the "
                        "student's).",
               'teacher': True, 'vqgan': False, 'terms': fitnet_terms},
    'dukd': {'title': 'DUKD baseline: L1 + Logits KD + data upcycling (zoom-in tiles of the ground truth labelled '
                      'by the teacher).',
             'teacher': True, 'vqgan': False, 'terms': {'kd_opt': PAPER_TERMS['kd_opt'], 'upcycling_opt': UPCYCLING}},
    'dckdstar': {'title': "DCKD*: DCKD + DUKD's data upcycling + label consistency, the paper's best row (x4).",
                 'teacher': True, 'vqgan': True,
                 'terms': {**PAPER_TERMS, **LCR_ON, 'upcycling_opt': UPCYCLING, **COST}},
}


# ----- the demo (dckd-demo, scripts/demo.sh): a teacher, then three students, shrunk for a CPU ------

DEMO_TEACHER = edsr(4, 32, 6, 1)
DEMO_STUDENT = edsr(4, 16, 4, 1)
DEMO_DATA = {
    'train': {**paired('skimage_train', 'datasets/demo/train_gt.lmdb', 'datasets/demo/train_lq_x4.lmdb'),
              'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 8,
              'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
    'val': paired('skimage_held_out', 'datasets/demo/val_gt.lmdb', 'datasets/demo/val_lq_x4.lmdb'),
}
DEMO_VQGAN = C({'type': 'VQGANEncoder', 'ch': 32, 'ch_mult': [1, 1, 2, 2, 4], 'num_res_blocks': 1, 'z_channels': 64,
                'embed_dim': 64, 'n_embed': 256, 'input_range': [-1, 1]},
               "Shrunk VQGAN encoder (ch 32, one block per level) to fit the demo's time; no pretrained weights "
               'exist for it, so it is randomly initialised (the log and the demo table say so).')
DEMO_RUNS = [
    {'name': 'demo_teacher_x4', 'model_type': 'SRModel', 'network_g': DEMO_TEACHER, 'teacher': False, 'gt_size': 96,
     'iterations': 2000, 'milestone': 1500, 'every': 1000, 'terms': {},
     'title': "Demo step 1: a small x4 teacher (BasicSR's EDSR), trained on the scikit-image LMDBs. Run by "
              '`dckd-demo` (scripts/demo.sh); sizes are shrunk to fit a 2-core CPU in minutes.'},
    {'name': 'demo_scratch_x4', 'model_type': 'DCKDModel', 'network_g': DEMO_STUDENT, 'teacher': False, 'gt_size': 48,
     'iterations': 800, 'milestone': 600, 'every': 800, 'val_every': 100, 'terms': {},
     'title': 'Demo step 2: the student alone (L1 to the ground truth): DCKDModel with every KD term off.'},
    {'name': 'demo_logits_x4', 'model_type': 'DCKDModel', 'network_g': DEMO_STUDENT, 'teacher': True, 'gt_size': 48,
     'iterations': 800, 'milestone': 600, 'every': 800, 'val_every': 100, 'terms': {'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
     'title': 'Demo step 3: the same student with Logits KD (L1 to the teacher output).'},
    {'name': 'demo_dckd_x4', 'model_type': 'DCKDModel', 'network_g': DEMO_STUDENT, 'teacher': True, 'gt_size': 48,
     'iterations': 800, 'milestone': 600, 'every': 800, 'val_every': 100, 'vqgan': DEMO_VQGAN,
     'terms': {'kd_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
               'contrastive_opt': {'type': 'DynamicContrastiveLoss', 'loss_weight': 0.1},
               'distribution_opt': {'type': 'DistributionMappingLoss', 'loss_weight': 0.001, 'mode': 'paper'},
               'history': {'source': 'ema', 'attenuation': 0.1, 'steps': [50, 100], 'milestones': [400]},
               'negatives': {'num': 3, 'probs': {'noise': 1.0}}},
     'title': 'Demo step 4: the same student with DCKD: Logits KD + DCR + DMM (paper weights).'},
]


# ----- 8-bit students (options/quantized/): quantization-aware fine-tunes of distilled FP32 students -
# method: (the FP32 method whose terms it keeps, title)
QAT_METHODS = {'qat_l1': ('scratch', 'QAT with L1 only'), 'qat_logits': ('logits', 'QAT with Logits KD'),
               'qat_dckd': ('dckd', 'QAT with DCKD')}
QUANTIZED = [
    {'name': 'demo_x4', 'demo': 'demo_dckd_x4', 'scratch': 'demo_scratch_x4', 'logits': 'demo_logits_x4', 'dckd': 'demo_dckd_x4',
     'fraction': 0.25},
    {'name': 'edsr_baseline_x4', 'pair': 'edsr_baseline', 'scale': 4, 'fraction': 0.1},
]


# ----- VQGANs of one's own images (options/vqgan/): DCKD's feature space, trained (dckd-train-vqgan) ------
# taming-transformers' ImageNet recipe where it carries over: Adam (0.5, 0.9) at 4.5e-6 x the batch size,
# L1 + codebook + 0.25 x commitment, a perceptual term, a 3-layer patch discriminator (hinge) from disc_start

TAMING_PERCEPTUAL = C({'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1,
                                                                   'conv4_4': 1, 'conv5_4': 1},
                       'vgg_type': 'vgg19', 'use_input_norm': True, 'perceptual_weight': 1.0, 'style_weight': 0,
                       'range_norm': False, 'criterion': 'l1'},
                      "taming's LPIPS, as VGG19 features (Real-ESRGAN's layers); skipped with a log line when VGG19's "
                      'weights are not here (dckd-fetch vgg19)')
VQGAN_RUNS = [
    {'name': 'vqgan_f16_n1024_div2k',
     'network_g': {**VQGAN, 'type': 'VQGAN', 'dropout': 0.0, 'beta': 0.25,
                   'quantizer': C('taming', inline="taming's; ema if validation reports a collapse (docs/vqgan.md)")},
     'data': {'train': {'name': 'DIV2K', 'dataroot_gt': 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb', 'gt_size': 256,
                        'num_worker_per_gpu': 6, 'batch_size_per_gpu': 8},
              'val': {'name': 'Set14', 'dataroot_gt': 'datasets/Set14/GTmod12', 'backend': 'disk'}},
     'iterations': 100000, 'disc_start': 30001, 'perceptual': TAMING_PERCEPTUAL, 'every': 5000,
     'lr': C(4.5e-6 * 8, inline="taming's 4.5e-6 x the batch size"),
     'title': "The paper's VQGAN (taming's f16, 1024 codes: the encoder network_vqgan takes) trained on DIV2K's HR "
              'sub-images, for a GPU. Its run ends with models/vqgan_encoder.pth for path.pretrain_network_vqgan.'},
    {'name': 'vqgan_demo', 'network_g': {**DEMO_VQGAN.value, 'type': 'VQGAN', 'dropout': 0.0, 'beta': 0.25,
                                         'quantizer': C('ema', inline="taming's collapsed here (docs/vqgan.md)")},
     'data': {'train': {'name': 'skimage_train', 'dataroot_gt': 'datasets/demo/train_gt.lmdb', 'gt_size': 96,
                        'num_worker_per_gpu': 0, 'batch_size_per_gpu': 8},
              'val': {'name': 'skimage_held_out', 'dataroot_gt': 'datasets/demo/val_gt.lmdb', 'backend': 'lmdb'}},
     'iterations': 1000, 'disc_start': None, 'perceptual': None, 'every': 250,
     'lr': C(2e-4, inline="a CPU-sized run: taming's 4.5e-6 x the batch would barely move it in 1000 iterations"),
     'title': "The demo's VQGAN (the sizes of options/demo/demo_dckd_x4.yml's network_vqgan) trained on the demo's "
              'HR training sub-images (dckd-demo makes them), for a CPU, without the discriminator (at this scale it '
              'sank the reconstruction: docs/vqgan.md). Its run ends with models/vqgan_encoder.pth.'},
]
