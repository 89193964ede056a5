"""dckd: Dynamic Contrastive Knowledge Distillation for BasicSR.

basicsr 1.4.2 (or 1.3.4.9, which HAT and other forks pin) must be installed first with
`pip install --no-deps --no-build-isolation basicsr==1.4.2` (its metadata names the uninstallable
tb-nightly); scripts/ensure_env.sh does it.
"""
from setuptools import find_packages, setup

setup(
    name='dckd',
    version='0.2.0',
    description='Dynamic Contrastive Knowledge Distillation (AAAI 2025) for image restoration, on BasicSR',
    python_requires='>=3.10',
    packages=find_packages(include=['dckd', 'dckd.*', 'dckd_arch', 'dckd_data', 'dckd_losses', 'dckd_models', 'dckd_models.*',
                                    'dckd_utils']),
    install_requires=['basicsr>=1.3.4.9,<=1.4.2', 'torch', 'torchvision', 'opencv-python', 'lmdb', 'numpy', 'pyyaml', 'spandrel==0.4.2'],
    extras_require={'export': ['onnx', 'onnxscript', 'onnxruntime'],  # dckd-export to ONNX, and its check
                    'quantize': ['torchao==0.18.0', 'onnx', 'onnxscript', 'onnxruntime'],  # dckd-quantize x86, onnx
                    'executorch': ['executorch==1.5.1'],  # dckd-quantize xnnpack (the version measured; it takes torchao 0.18)
                    'vqgan': ['vector-quantize-pytorch==1.32.0']},  # VQGAN network_g.quantizer: ema
    entry_points={
        'console_scripts': [
            'dckd-train=dckd.train:main',
            'dckd-train-vqgan=dckd.train_vqgan:main',
            'dckd-test=dckd.test:main',
            'dckd-demo=dckd.demo.run:main',
            'dckd-convert-vqgan=dckd.convert_vqgan:main',
            'dckd-convert-rcan=dckd.convert_rcan:main',
            'dckd-dropin=dckd.dropin:main',
            'dckd-prepare=dckd.prepare.cli:main',
            'dckd-fetch=dckd.fetch.cli:main',
            'dckd-evaluate=dckd.evaluate.cli:main',
            'dckd-profile=dckd.profile:main',
            'dckd-restore=dckd.restore:main',
            'dckd-export=dckd.export:main',
            'dckd-quantize=dckd.quantize:main',
            'dckd-compare=dckd.figures.comparison:main',
            'dckd-curves=dckd.figures.curves:main',
        ],
    },
)
