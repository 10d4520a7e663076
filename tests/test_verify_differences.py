"""verify's element comparison (``verify.parity.differences``): a NaN on one side only, or an
infinity against anything else, is a difference of inf, so it fails the check. Before, such an
element gave a NaN difference, which Python's max() dropped, and the output passed."""

from __future__ import annotations

import numpy as np
import pytest

from platformio_tinyml.verify.parity import FLOAT_RTOL, differences


@pytest.mark.parametrize("ours, ref, worst", [
    ([1.0, 2.0], [1.0, 2.0], 0.0),
    ([1.0, np.nan], [1.0, np.nan], 0.0),           # NaN where the reference has NaN: equal
    ([np.inf, -np.inf], [np.inf, -np.inf], 0.0),   # the same infinities: equal
    ([1.0, 3.0], [1.0, np.nan], np.inf),           # a number where the reference has NaN
    ([np.nan, 2.0], [1.0, 2.0], np.inf),           # NaN where the reference has a number
    ([np.inf], [-np.inf], np.inf),
    ([5.0], [np.inf], np.inf),
    ([1.0, 2.5], [1.0, 2.0], 0.5),
])
def test_differences(ours, ref, worst):
    d, scale = differences(np.array(ours, np.float32), np.array(ref, np.float32))
    assert float(d.max()) == worst


def test_the_scale_is_the_largest_finite_reference_value():
    d, scale = differences(np.array([1.0, 2.0, np.inf], np.float32), np.array([1.0, 2.00001, np.inf], np.float32))
    assert scale == pytest.approx(2.00001) and float(d.max()) / scale > FLOAT_RTOL / 2   # not hidden by inf
    assert differences(np.zeros(3), np.zeros(4))[0].tolist() == [np.inf]
