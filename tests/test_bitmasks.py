"""BitMasks keep [T, H, W] masks a bit a pixel and give frames back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from refine.bitmasks import BitMasks, FrameView


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 9), (96, 128)])
def test_pack_then_read_is_exact_for_any_frame_size(size):
    masks = np.random.default_rng(0).random((4, *size)) > 0.5
    packed = BitMasks.pack(masks)
    assert packed.shape == masks.shape and len(packed) == 4
    assert packed.nbytes == 4 * -(-size[0] * size[1] // 8)
    np.testing.assert_array_equal(packed.array(), masks)
    np.testing.assert_array_equal(np.asarray(packed), masks)
    for t in range(4):
        assert packed[t].dtype == bool
        np.testing.assert_array_equal(packed[t], masks[t])


def test_bits_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="do not hold masks of"):
        BitMasks(np.zeros((2, 3), np.uint8), (4, 8))


def test_a_frame_view_computes_frames_on_demand():
    calls = []

    def frame(t):
        calls.append(t)
        return np.full((2, 3), t % 2 == 1)

    view = FrameView(frame, (3, 2, 3))
    assert view[1].all() and not view[-1].any() and calls == [1, 2]
    assert np.asarray(view).shape == (3, 2, 3) and [m.all() for m in view] == [0, 1, 0]
    with pytest.raises(IndexError):
        view[3]
