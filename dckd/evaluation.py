"""PSNR/SSIM of a network on paired images, with BasicSR's own metric functions."""
import torch

from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img
from dckd.checkpoint import extract_state_dict, load_checkpoint
from dckd_models.kd_model import pad_to_multiple


def load_network(network_opt, checkpoint_path, param_key='params_ema'):
    """Build `network_opt` and load `param_key` (falling back to `params`) from a BasicSR checkpoint."""
    net = build_network(network_opt)
    checkpoint = load_checkpoint(checkpoint_path, 'network checkpoint')
    key = param_key if param_key in checkpoint else 'params'
    net.load_state_dict(extract_state_dict(checkpoint, key), strict=True)
    return net.eval()


@torch.no_grad()
def super_resolve(net, lq_bgr, window_size=None, device='cpu'):
    """uint8 BGR in, uint8 BGR out; windowed networks get padded inputs and cropped outputs."""
    lq = img2tensor(lq_bgr.astype('float32') / 255., bgr2rgb=True, float32=True).unsqueeze(0).to(device)
    padded = pad_to_multiple(lq, window_size) if window_size else lq
    out = net.to(device)(padded)
    scale = out.shape[-1] // padded.shape[-1]
    return tensor2img(out[..., :lq.shape[-2] * scale, :lq.shape[-1] * scale].clamp(0, 1))


def y_psnr_ssim(outputs, gts, scale):
    """Mean PSNR/SSIM on the Y channel with `scale` border pixels cropped (the SR convention)."""
    psnr = [calculate_psnr(o, g, crop_border=scale, test_y_channel=True) for o, g in zip(outputs, gts)]
    ssim = [calculate_ssim(o, g, crop_border=scale, test_y_channel=True) for o, g in zip(outputs, gts)]
    return sum(psnr) / len(psnr), sum(ssim) / len(ssim)
