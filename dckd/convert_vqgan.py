"""`dckd-convert-vqgan LAST.ckpt OUT.pth`: taming's Lightning VQGAN checkpoint -> encoder-only .pth.

Keeps `encoder.*`, `quant_conv.*` and `quantize.embedding.weight` (about a third of the file),
checks them against VQGANEncoder's layout, and saves `{'params': ...}` for
`path.pretrain_network_vqgan`. Never overwrites an existing file unless --force is given.
"""
import argparse

from dckd_arch.vqgan_arch import VQGANEncoder, load_vqgan_encoder
from dckd_utils.checkpoint import refuse_to_replace, save_atomically


def convert(checkpoint_path, output_path, force=False, **arch_options):
    refuse_to_replace(output_path, force)
    net = VQGANEncoder(**arch_options)
    load_vqgan_encoder(net, checkpoint_path)  # strict: fails naming missing or mis-shaped keys
    save_atomically({'params': net.state_dict()}, output_path)
    return len(net.state_dict())


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dckd-convert-vqgan', description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoint', help="taming-transformers VQModel checkpoint (e.g. vqgan_imagenet_f16_1024 last.ckpt)")
    parser.add_argument('output', help='encoder-only .pth to write')
    parser.add_argument('--force', action='store_true', help='replace an existing output file')
    args = parser.parse_args(argv)
    count = convert(args.checkpoint, args.output, args.force)
    print(f'wrote {count} encoder tensors to {args.output}')


if __name__ == '__main__':
    main()
