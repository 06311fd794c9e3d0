"""deepcompress.augment: random shifts of training images, reproducible and refused where they do not apply."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from deepcompress.augment import check_shift, random_shift  # noqa: E402
from deepcompress.errors import ConfigError  # noqa: E402


def test_each_image_is_moved_by_at_most_shift_pixels_and_filled_with_black():
    x = torch.full((64, 1, 9, 9), -1.0)
    x[:, 0, 4, 4] = 100 + torch.arange(64, dtype=torch.float32)  # one bright pixel in the middle of each image
    torch.manual_seed(0)
    out = random_shift(x, 2)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for i in range(64):
        (r, c), = torch.nonzero(out[i, 0] > 0).tolist()
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
        assert float(out[i, 0, r, c]) == 100 + i
        assert int((out[i] == -1.0).sum()) == 80  # everything else is the fill: the batch's smallest value
        seen.add((r, c))
    assert len(seen) > 10  # offsets differ from image to image
    torch.manual_seed(0)
    assert torch.equal(random_shift(x, 2), out)  # torch's generator decides: reproducible
    assert random_shift(x, 0) is x


def test_shift_is_checked():
    for bad in (-1, 9, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="shift must be an int"):
            check_shift(bad)
    with pytest.raises(ConfigError, match=r"image batches \(N, C, H, W\)"):
        random_shift(torch.zeros(4, 64), 2)


def test_recipe_field_reaches_training_and_the_cache_key(tmp_path):
    from deepcompress.pipeline.stages import FinetuneConfig, RetrainConfig

    assert RetrainConfig(shift=2).shift == 2 and FinetuneConfig(shift=1).shift == 1
    with pytest.raises(ConfigError, match="shift must be"):
        RetrainConfig(shift=20)
    assert RetrainConfig(shift=2).to_json()["shift"] == 2  # in the cache key and header (test_cache_key.py)
