from fractions import Fraction

import numpy as np
import pytest

from refine.fusion import as_fraction, bbox_areas, decide, fuse


def rect(h, w, r0, r1, c0, c1):
    m = np.zeros((h, w), bool)
    m[r0 : r1 + 1, c0 : c1 + 1] = True
    return m


def test_bbox_area_has_no_plus_one():
    ms = np.stack(
        [
            np.zeros((8, 9), bool),
            rect(8, 9, 3, 3, 4, 4),  # one pixel: area 0
            rect(8, 9, 1, 1, 0, 8),  # one row: area 0
            rect(8, 9, 1, 4, 2, 7),  # 3 * 5
        ]
    )
    ms[3, 7, 8] = True  # extends the box to rows 1..7, cols 2..8
    assert bbox_areas(ms).tolist() == [0, 0, 0, 6 * 6]


def test_ratio_boundary_is_strict():
    # area(sam) * 3 < area(ori) * 2: sam 2, ori 3 is NOT shrunk; sam 1, ori 3 is
    d = decide(np.array([3, 3, 30]), np.array([2, 1, 19]))
    assert (d.valid, d.shrunk) == (3, 2)
    d = decide(np.array([300]), np.array([200]))
    assert d.shrunk == 0
    d = decide(np.array([300]), np.array([199]))
    assert d.shrunk == 1


def test_vote_boundary_is_strict_and_empty_frames_are_not_valid():
    # 2 shrunk of 4 valid: 2 > 4/2 is false → SAM2 only
    d = decide(np.array([9, 9, 9, 9, 9, 0]), np.array([1, 1, 9, 9, 0, 1]))
    assert (d.valid, d.shrunk, d.multi) == (4, 2, False)
    # 3 shrunk of 5 valid → union
    d = decide(np.array([9, 9, 9, 9, 9]), np.array([1, 1, 1, 9, 9]))
    assert (d.valid, d.shrunk, d.multi) == (5, 3, True)
    # nothing valid → SAM2 only
    assert not decide(np.array([0, 5]), np.array([5, 0])).multi


def test_parameters_change_the_decision():
    a1, a2 = np.array([10, 10, 10]), np.array([7, 7, 9])
    assert decide(a1, a2).shrunk == 0
    assert decide(a1, a2, area_ratio=0.75).shrunk == 2
    assert decide(a1, a2, area_ratio=0.75, vote=Fraction(2, 3)).multi is False
    assert decide(a1, a2, area_ratio="3/4", vote="0.6").multi is True


def test_fuse_branches():
    t = 4
    ori = np.stack([rect(20, 20, 0, 19, 0, 19)] * t)
    sam = np.stack([rect(20, 20, 0, 5, 0, 5)] * t)
    fused, d = fuse(ori, sam)
    assert d.multi and np.array_equal(fused, ori | sam)
    big = np.stack([rect(20, 20, 0, 18, 0, 18)] * t)
    fused, d = fuse(ori, big)
    assert not d.multi and np.array_equal(fused, big)
    assert "0 of 4" in d.describe() and "SAM2 only" in d.describe()


def test_as_fraction():
    assert as_fraction(2 / 3, "rho") == Fraction(2, 3)
    assert as_fraction("1/2", "v") == Fraction(1, 2)
    with pytest.raises(ValueError, match="rho"):
        as_fraction("two thirds", "rho")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_fraction(1.5, "rho")
