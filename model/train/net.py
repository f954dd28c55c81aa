# SPDX-License-Identifier: Apache-2.0
"""net.py — trident's network as a PyTorch module, with the seed's layer names.

The forward is exactly the seed network's (docs/DESIGN.md "The network"):
no activation functions, max-pooling is the only non-linearity; BN is defined
but unused, so its tensors appear in the state_dict and the daemon ignores
them.  The C reference (model/net_ref.c) implements the same function.

    conv1 (1->64, k32 s8 p12) -> pool1 (2,2)
    for k in 3, 5, 7:  conv{k}_1 (64->64), pool{k}_1, conv{k}_2 (64->128),
                       pool{k}_2, conv{k}_3 (128->256), pool{k}_3, pool2 (8,1)
    cat (3 x 256) -> fc (768 -> C)
"""
import numpy as np
import torch
import torch.nn as nn

WINDOW = 1024


class Net(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 64, kernel_size=32, stride=8, padding=12)
        self.pool1 = nn.MaxPool1d(2, 2)
        self.BN = nn.BatchNorm1d(64)
        for k in (3, 5, 7):
            p = (k - 1) // 2
            setattr(self, f"conv{k}_1", nn.Conv1d(64, 64, k, 1, p))
            setattr(self, f"pool{k}_1", nn.MaxPool1d(2, 2))
            setattr(self, f"conv{k}_2", nn.Conv1d(64, 128, k, 1, p))
            setattr(self, f"pool{k}_2", nn.MaxPool1d(2, 2))
            setattr(self, f"conv{k}_3", nn.Conv1d(128, 256, k, 1, p))
            setattr(self, f"pool{k}_3", nn.MaxPool1d(2, 2))
        self.pool2 = nn.MaxPool1d(8, 1)
        self.fc = nn.Linear(768, num_classes)

    def branch(self, x, k):
        x = getattr(self, f"pool{k}_1")(getattr(self, f"conv{k}_1")(x))
        x = getattr(self, f"pool{k}_2")(getattr(self, f"conv{k}_2")(x))
        x = getattr(self, f"pool{k}_3")(getattr(self, f"conv{k}_3")(x))
        return self.pool2(x)

    def features(self, x):
        """The fc layer's input: the 768 pooled activations (3 branches x 256),
        as the daemon's net_features() returns them."""
        x = self.pool1(self.conv1(x))
        return torch.cat([self.branch(x, k) for k in (3, 5, 7)], dim=1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def normalize(windows, kind):
    """Per-window normalisation exactly as dsp/normalize.c does it.

    windows: float32 array [..., WINDOW].  zscore: mean and population std in
    float64; a window with std < 1e-12 becomes window - mean.
    """
    w = np.asarray(windows, dtype=np.float32)
    if kind in (None, "", "none"):
        return w
    if kind != "zscore":
        raise ValueError(f"unknown normalisation {kind!r}")
    # Left-to-right sums (np.add.accumulate), as the C loop adds, not numpy's
    # pairwise x.mean(): the float32 results are then bit-identical.
    x = w.astype(np.float64)
    n = float(x.shape[-1])
    mean = np.add.accumulate(x, axis=-1)[..., -1:] / n
    d = x - mean
    std = np.sqrt(np.add.accumulate(d * d, axis=-1)[..., -1:] / n)
    std = np.where(std < 1e-12, 1.0, std)
    return (d / std).astype(np.float32)
