"""Small OpenCV drawing helpers shared by the figures."""
import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, GRAY = (255, 255, 255), (0, 0, 0), (170, 170, 170)
# distinct line colours (BGR)
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
           (194, 119, 227), (127, 127, 127)]


def put_text(img, text, origin, scale=0.5, color=BLACK, thickness=1):
    cv2.putText(img, text, origin, FONT, scale, color, thickness, cv2.LINE_AA)


def text_width(text, scale=0.5, thickness=1):
    return cv2.getTextSize(text, FONT, scale, thickness)[0][0]


def labelled(img, text, strip_height, scale=0.5):
    """`img` with a white strip below it holding `text`, centred (in smaller type where it is wider)."""
    scale = min(scale, scale * (img.shape[1] - 4) / text_width(text, scale))
    strip = np.full((strip_height, img.shape[1], 3), 255, np.uint8)
    put_text(strip, text, ((img.shape[1] - text_width(text, scale)) // 2, strip_height - 7), scale)
    return np.concatenate([img, strip], axis=0)


def padded_to_width(img, width):
    """`img` with white columns added on the right up to `width`."""
    return np.pad(img, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)
