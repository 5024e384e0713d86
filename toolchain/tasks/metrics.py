"""Image quality and segmentation metrics (PSNR/SSIM from scikit-image; F1, Jaccard, accuracy, mIoU)."""
from __future__ import annotations

import numpy as np


def psnr(clean: np.ndarray, restored: np.ndarray) -> float:
    """PSNR in dB of CHW images in [0, 1]: 10 log10(1 / MSE)."""
    from skimage.metrics import peak_signal_noise_ratio
    return float(peak_signal_noise_ratio(clean, restored, data_range=1.0))


def ssim(clean: np.ndarray, restored: np.ndarray) -> float:
    """SSIM of CHW images in [0, 1] (channels averaged for color)."""
    from skimage.metrics import structural_similarity
    if clean.shape[0] == 1:
        return float(structural_similarity(clean[0], restored[0], data_range=1.0))
    return float(structural_similarity(clean, restored, data_range=1.0, channel_axis=0))


def binary_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """F1 = 2TP / (2TP + FP + FN), Jaccard = TP / (TP + FP + FN), accuracy = correct / all (class 1 = foreground)."""
    t, p = truth.astype(bool), predicted.astype(bool)
    tp = float(np.sum(t & p))
    fp = float(np.sum(~t & p))
    fn = float(np.sum(t & ~p))
    denominator = 2 * tp + fp + fn
    return {"f1": 2 * tp / denominator if denominator else 1.0,
            "jaccard": tp / (tp + fp + fn) if denominator else 1.0,
            "accuracy": float(np.mean(t == p))}


def mean_iou(truth: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """mIoU: the mean over classes present in truth or prediction of |T_c & P_c| / |T_c | P_c|."""
    ious = []
    for c in range(classes):
        t, p = truth == c, predicted == c
        union = np.sum(t | p)
        if union:
            ious.append(np.sum(t & p) / union)
    return float(np.mean(ious)) if ious else 1.0
