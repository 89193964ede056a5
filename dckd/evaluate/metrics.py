"""PSNR/SSIM with BasicSR's own functions, under each task's convention, and NIQE where there is no
ground truth."""
from basicsr.metrics import calculate_niqe, calculate_psnr, calculate_ssim

TASKS = {
    # task: (Y channel?, border = scale?)
    'sr': (True, True),
    'deblur': (False, False),
    'derain': (True, False),
}


def convention(task, scale):
    """(test_y_channel, crop_border) of the paper's tables: Y + border = scale for SR, RGB for
    deblurring (GoPro), Y for deraining."""
    y_channel, border_is_scale = TASKS[task]
    return y_channel, scale if border_is_scale else 0


def psnr_ssim(output, gt, y_channel, border):
    return (calculate_psnr(output, gt, crop_border=border, test_y_channel=y_channel),
            calculate_ssim(output, gt, crop_border=border, test_y_channel=y_channel))


def niqe(output, border):
    """NIQE of a restored image without ground truth (lower is better): BasicSR's implementation, which
    gives the official MATLAB code's values, on the Y channel with `border` pixels left out."""
    return float(calculate_niqe(output, crop_border=border, input_order='HWC', convert_to='y'))
