"""The worked examples convkit grew from, as arrays (seed texts in ``shared/seeds``).

Seed 000 prints, for a 2x3x4x5 input, the first 3x3 window of sample 0 and the
kernels that produce the first output values with ``groups=1`` (-132.636) and
``groups=3`` (-105.5849 and 123.3577).  The rest of its input is not printed;
here it is filled with a fixed ramp so every run shows the same numbers.
"""
from __future__ import annotations

import numpy as np

SEED000_WINDOW = [  # input[0, :, 0:3, 0:3]
    [[141, 138, 143], [138, 139, 143], [135, 137, 138]],
    [[138, 135, 139], [135, 136, 139], [132, 134, 135]],
    [[109, 106, 113], [106, 107, 113], [111, 113, 116]],
]
SEED000_KERNEL_GROUPS1 = [  # weight[0] of the groups=1 layer, (3, 3, 3)
    [[-0.1146, -0.0763, -0.0392], [0.0143, 0.0109, 0.0747], [0.1792, 0.1717, 0.0782]],
    [[-0.0677, -0.0513, -0.0867], [-0.1899, -0.1886, -0.1195], [-0.1306, -0.0011, 0.0604]],
    [[-0.1809, -0.1719, 0.0385], [-0.1059, -0.1535, -0.1849], [0.1027, 0.0132, 0.0144]],
]
SEED000_KERNELS_GROUPS3 = [  # weight[0:2, 0] of the groups=3 layer, two (3, 3)
    [[0.2868, 0.1139, -0.0515], [-0.3059, 0.0081, -0.2814], [-0.1271, -0.2342, -0.1725]],
    [[0.1897, -0.3158, 0.2214], [0.0774, 0.1155, 0.1251], [0.2186, 0.0368, 0.2127]],
]


def seed000(groups: int = 1):
    """``(input, weight)`` of seed 000: input (2, 3, 4, 5); weight (6, 3, 3, 3) or (6, 1, 3, 3).

    The printed window and kernels are placed where the seed has them; the
    unprinted values are a deterministic ramp (input) and a small fixed pattern
    (weights), so ``conv2d(input, weight, groups=groups)[0, :2, 0, 0]`` are the
    seed's numbers.

    >>> x, w = seed000(groups=3)
    >>> x.shape, w.shape
    ((2, 3, 4, 5), (6, 1, 3, 3))
    """
    if groups not in (1, 3):
        raise ValueError(f"seed 000 has groups=1 and groups=3 examples, got groups={groups}")
    x = 100.0 + (np.arange(2 * 3 * 4 * 5) % 47).reshape(2, 3, 4, 5)
    x[0, :, :3, :3] = SEED000_WINDOW
    c_group = 3 // groups
    w = np.round(np.sin(np.arange(6 * c_group * 9)).reshape(6, c_group, 3, 3) * 0.3, 4)
    if groups == 1:
        w[0] = SEED000_KERNEL_GROUPS1
    else:
        w[:2, 0] = SEED000_KERNELS_GROUPS3
    return x, w
