"""PSNR/SSIM with BasicSR's own functions, under each task's convention."""
from basicsr.metrics import calculate_psnr, calculate_ssim

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
