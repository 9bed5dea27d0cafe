"""PSNR and SSIM against known values: PSNR of a known MSE, SSIM of identical and constant images
(closed form), and SSIM of single windows written out by hand with the Gaussian weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils.image_metrics import SSIM_K1, SSIM_K2, gaussian_window, psnr, ssim, ssim_map


def test_psnr_of_known_mse():
    clean = torch.zeros(2, 3, 8, 8)
    noisy = clean.clone()
    noisy[0] += 0.1  # MSE 0.01 -> 20 dB
    noisy[1, :, :4] += 0.2  # half the pixels off by 0.2: MSE 0.02 -> 16.99 dB
    torch.testing.assert_close(psnr(noisy, clean), torch.tensor([20.0, 10 * math.log10(50)], dtype=torch.float64))
    # uint8 values, data range 255: an error of 16 everywhere gives 10 log10(255^2 / 256) = 24.0484 dB
    a = torch.full((1, 1, 4, 4), 100, dtype=torch.uint8)
    assert float(psnr(a + 16, a, data_range=255)) == pytest.approx(24.04840, abs=1e-5)
    assert math.isinf(float(psnr(a, a, data_range=255)[0]))


def test_gaussian_window_is_the_reference_one():
    window = gaussian_window()
    assert window.shape == (11,) and float(window.sum()) == pytest.approx(1.0)
    assert torch.equal(window, window.flip(0))
    # centre of the 11-tap sigma-1.5 window: 1 / sum_k exp(-k^2 / 4.5), k = -5..5 (MATLAB's
    # fspecial('gaussian', 11, 1.5) of Wang et al.'s code has 0.266^2 = 0.0707 at its centre)
    assert float(window[5]) == pytest.approx(0.266012, abs=1e-6)
    assert float(window[5] ** 2) == pytest.approx(0.0707, abs=1e-4)


def test_ssim_of_identical_images_is_one_and_symmetric():
    x = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(0))
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(ssim(x, y), ssim(y, x))
    assert (ssim(x, y) < 1).all()
    more = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(x, more) < ssim(x, y)).all()  # more noise, lower SSIM


@pytest.mark.parametrize("a, b", [(0.2, 0.5), (0.9, 0.1), (0.5, 0.5)])
def test_ssim_of_constant_images_is_the_closed_form(a, b):
    """No variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) (the contrast-structure term is C2 / C2)."""
    c1 = SSIM_K1 ** 2
    x, y = (torch.full((1, 1, 16, 16), v, dtype=torch.float64) for v in (a, b))
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)
    # on the 0..255 scale with data_range 255 the constants scale with it: the same index
    assert float(ssim(x * 255, y * 255, data_range=255)) == pytest.approx(float(ssim(x, y)), abs=1e-12)


def _window_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of one 11x11 window, written out with the Gaussian weights (population statistics)."""
    k = np.arange(11) - 5
    g = np.exp(-k ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx ** 2, (w * y * y).sum() - my ** 2
    cxy = (w * x * y).sum() - mx * my
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def test_ssim_equals_the_windows_written_out():
    rng = np.random.default_rng(0)
    x = rng.random((3, 12, 11))  # 3 channels, two window positions down, one across
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape) + 0.05, 0, 1)
    want = [_window_ssim(x[c, r:r + 11], y[c, r:r + 11]) for c in range(3) for r in range(2)]
    got_map = ssim_map(torch.from_numpy(x)[None], torch.from_numpy(y)[None])
    assert got_map.shape == (1, 3, 2, 1)
    np.testing.assert_allclose(got_map.flatten().numpy(), want, rtol=0, atol=1e-12)
    assert float(ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None])) == pytest.approx(np.mean(want), abs=1e-12)


def test_ssim_rejects_small_or_mismatched_images():
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 10, 20), torch.rand(1, 3, 10, 20))
    with pytest.raises(ValueError):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
