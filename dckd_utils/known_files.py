"""The files dckd-fetch knows: where each comes from (cited), where the options expect it, and how
to check it.

Every source is the upstream project's own link (its README, release page or download script);
`sha256` is the 8-hex prefix upstream puts in the file name where it gives one (BasicSR's zoo,
torch.hub's convention). A `page` instead of a link marks a file no script can fetch (a Google
Drive folder, a form): dckd-fetch prints the page and the path, and verifies the file once it is
there. `check` names the options file (and network key) whose network the file must load into;
`torchvision` the torchvision network a file of torchvision's zoo must load into.
"""
from dataclasses import dataclass
import os

PRETRAINED = 'experiments/pretrained_models'
DOWNLOADS = 'datasets/downloads'
DRIVE_URL = 'https://drive.usercontent.google.com/download?id={}&export=download&confirm=t'


@dataclass(frozen=True)
class Known:
    name: str
    destination: str
    source: str  # where the link is published
    url: str = None
    drive_id: str = None
    page: str = None  # no scripted download: the page to get it from by hand
    sha256: str = None
    check: tuple = None  # (options file, network key) the file must load into
    torchvision: str = None  # or: the torchvision network (torchvision.models.<name>) it must load into
    unpack: str = None  # data archives: the folder they unpack to, under DOWNLOADS
    then: str = None  # the command that uses it next

    @property
    def link(self):
        return DRIVE_URL.format(self.drive_id) if self.drive_id else self.url

    @property
    def is_data(self):
        return self.destination.startswith(DOWNLOADS)


SWINIR_RELEASE = 'https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/'
BASICSR_ZOO = ('XPixelGroup/BasicSR scripts/download_pretrained_models.py (Google Drive ids) and docs/ModelZoo.md; '
               'the 8-hex suffix is the sha256 prefix')
EDSR = {  # BasicSR's zoo: (file name, Google Drive id)
    'edsr_l_x2': ('EDSR_Lx2_f256b32_DIV2K_official-be38e77d.pth', '15257lZCRZ0V6F9LzTyZFYbbPrqNjKyMU'),
    'edsr_l_x3': ('EDSR_Lx3_f256b32_DIV2K_official-3660f70d.pth', '18q_D434sLG_rAZeHGonAX8dkqjoyZ2su'),
    'edsr_l_x4': ('EDSR_Lx4_f256b32_DIV2K_official-76ee1c8f.pth', '1GCi30YYCzgMCcgheGWGusP9aWKOAy5vl'),
    'edsr_m_x2': ('EDSR_Mx2_f64b16_DIV2K_official-3ba7b086.pth', '1mREMGVDymId3NzIc2u90sl_X4-pb4ZcV'),
    'edsr_m_x3': ('EDSR_Mx3_f64b16_DIV2K_official-6908f88a.pth', '1EriqQqlIiRyPbrYGBbwr_FZzvb3iwqz5'),
    'edsr_m_x4': ('EDSR_Mx4_f64b16_DIV2K_official-0c287733.pth', '1bCK6cFYU01uJudLgUUe-jgx-tZ3ikOWn'),
}


def _edsr(name, scale):
    file, drive_id = EDSR[name]
    large = name.startswith('edsr_l')
    return Known(name, f'{PRETRAINED}/EDSR/{file}', BASICSR_ZOO, drive_id=drive_id,
                 sha256=file.rsplit('-', 1)[1][:8],
                 check=(f'options/train/edsr/logits_edsr_x{scale}.yml', 'network_t') if large else
                 (f'options/train/edsr/scratch_edsr_baseline_x{scale}.yml', 'network_g'))


MODELS = [
    *[Known(f'swinir_m_x{s}', f'{PRETRAINED}/SwinIR/001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth',
            'JingyunLiang/SwinIR README and main_test_swinir.py (release v0.0)',
            url=f'{SWINIR_RELEASE}001_classicalSR_DIV2K_s48w8_SwinIR-M_x{s}.pth',
            check=(f'options/train/swinir/logits_swinir_x{s}.yml', 'network_t')) for s in (2, 3, 4)],
    *[_edsr(f'edsr_{size}_x{s}', s) for size in ('l', 'm') for s in (2, 3, 4)],
    *[Known(f'rcan_x{s}', f'{PRETRAINED}/RCAN/RCAN_BIX{s}_basicsr.pth',
            'yulunzhang/RCAN README, "Test": the models are in a shared folder (Dropbox / Google Drive / Baidu)',
            page='https://github.com/yulunzhang/RCAN#test',
            check=(f'options/train/rcan/logits_rcan_x{s}.yml', 'network_t'),
            then=f'download RCAN_BIX{s}.pt from the page, then: dckd-convert-rcan RCAN_BIX{s}.pt '
                 f'{PRETRAINED}/RCAN/RCAN_BIX{s}_basicsr.pth') for s in (2, 3, 4)],
    Known('nafnet_gopro_w32', f'{PRETRAINED}/NAFNet/NAFNet-GoPro-width32.pth',
          'megvii-research/NAFNet readme.md, "Results and Pre-trained Models" (Google Drive)',
          drive_id='1Fr2QadtDCEXg6iwWX8OzeZLbHOx2t5Bj', check=('options/train/nafnet/logits_nafnet_gopro.yml', 'network_t')),
    *[Known(f'restormer_{task}', f'{PRETRAINED}/Restormer/{file}',
            'swz30/Restormer README and demo (release v1.0)',
            url=f'https://github.com/swz30/Restormer/releases/download/v1.0/{file}',
            check=(f'options/train/restormer/logits_restormer_{pair}.yml', 'network_t'))
      for task, file, pair in (('motion_deblurring', 'motion_deblurring.pth', 'gopro'),
                               ('deraining', 'deraining.pth', 'rain13k'))],
    Known('vqgan_f16_1024', f'{PRETRAINED}/VQGAN/vqgan_imagenet_f16_1024.ckpt',
          'CompVis/taming-transformers README, "ImageNet (f=16), 1024" (heibox share, ckpts/last.ckpt)',
          url='https://heibox.uni-heidelberg.de/d/8088892a516d4e3baf92/files/?p=%2Fckpts%2Flast.ckpt&dl=1',
          check=('options/train/swinir/dckd_swinir_x4.yml', 'network_vqgan')),
    *[Known(f'hat_x{s}', f'{PRETRAINED}/HAT/HAT_SRx{s}.pth',
            'XPixelGroup/HAT README, "How To Test": the models are in a shared Google Drive / Baidu folder',
            page='https://github.com/XPixelGroup/HAT#how-to-test',
            check=(f'options/train/pretrained/logits_pretrained_swinir_x{s}.yml', 'network_t')) for s in (2, 3, 4)],
    Known('realesrgan_x4plus', f'{PRETRAINED}/RealESRGAN_x4plus.pth',
          'xinntao/Real-ESRGAN README and inference_realesrgan.py (release v0.1.0)',
          url='https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth',
          check=('options/train/realworld/logits_realesrnet_x4.yml', 'network_t')),
    Known('vgg19', f'{PRETRAINED}/vgg19-dcbb9e9d.pth',
          "torchvision's model zoo (VGG19_Weights.IMAGENET1K_V1); BasicSR's PerceptualLoss reads it at this path "
          '(basicsr/archs/vgg_arch.py, VGG_PRETRAIN_PATH)',
          url='https://download.pytorch.org/models/vgg19-dcbb9e9d.pth', sha256='dcbb9e9d', torchvision='vgg19'),
]

DATA = [
    Known('div2k', f'{DOWNLOADS}/DIV2K_train_HR.zip', 'the DIV2K site, data.vision.ee.ethz.ch/cvl/DIV2K',
          url='http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip', unpack='DIV2K_train_HR',
          then=f'dckd-prepare div2k {DOWNLOADS}/DIV2K_train_HR'),
    Known('benchmark', f'{DOWNLOADS}/benchmark.tar',
          'sanghyun-son/EDSR-PyTorch README (Set5, Set14, B100, Urban100 with HR/ and LR_bicubic/)',
          url='https://cv.snu.ac.kr/research/EDSR/benchmark.tar', unpack='benchmark',
          then='; '.join(f'dckd-prepare benchmark {DOWNLOADS}/benchmark/{folder}/HR --name {name}'
                         for folder, name in (('Set5', 'Set5'), ('Set14', 'Set14'), ('B100', 'BSD100'),
                                              ('Urban100', 'Urban100')))),
    Known('gopro', f'{DOWNLOADS}/GOPRO_Large', 'the GoPro page of Nah et al. (GOPRO_Large.zip, train/ and test/)',
          page='https://seungjunnah.github.io/Datasets/gopro', then=f'dckd-prepare gopro {DOWNLOADS}/GOPRO_Large'),
    Known('rain13k', f'{DOWNLOADS}/Rain13K', "swz30/Restormer Deraining/README.md (its Datasets folder: train/Rain13K, "
          'test/<set>, from Google Drive)',
          page='https://github.com/swz30/Restormer/blob/main/Deraining/README.md#training',
          then=f'dckd-prepare rain13k {DOWNLOADS}/Rain13K'),
]

KNOWN = {entry.name: entry for entry in MODELS + DATA}


def known_at(path):
    """The known file whose destination is `path` (both taken from the current folder), or None."""
    wanted = os.path.abspath(path)
    return next((e for e in KNOWN.values() if os.path.abspath(e.destination) == wanted), None)


def known_files_table():
    """Markdown rows of every known file, for docs/teachers.md."""
    lines = ['| name | put at | from | checked |', '|---|---|---|---|']
    for entry in MODELS + DATA:
        origin = f'[by hand]({entry.page})' if entry.page else f'[download]({entry.link})'
        checks = ([f'sha256 {entry.sha256}…'] if entry.sha256 else []) + (
            [f'loads into `{entry.check[1]}` of `{entry.check[0]}`'] if entry.check else []) + (
            [f"loads into torchvision's `{entry.torchvision}`"] if entry.torchvision else [])
        if entry.unpack:
            checks.append(f'unpacked to `{DOWNLOADS}/{entry.unpack}`')
        lines.append(f'| `{entry.name}` | `{entry.destination}` | {origin}: {entry.source} | {"; ".join(checks) or "–"} |')
    return '\n'.join(lines)
