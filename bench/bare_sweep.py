"""The bare baseline of the packs benchmark: the default 10-seed sweep as a plain sequential PyTorch script.

    python bench/bare_sweep.py [--seeds 10] [--epochs 30]

Trains what ``python train.py regularizer=l1l2 -m seed=0-9 callbacks=no_stop`` trains (scikit-learn's
digits with the same split and min-max scaling, the 64-512-256-10 ReLU MLP, Adam lr 1e-3,
batch 64, L1 and L2 penalties of 5e-4 on the weight matrices, 30 epochs, validation after every
epoch), one model after another, the way a short script would: nn.Sequential, torch.optim.Adam,
autograd through the penalty. It writes nothing and prints its wall time.
"""

from __future__ import annotations

import argparse
import time

START = time.perf_counter()

import numpy as np  # noqa: E402  (imports are part of the measured time)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

STRENGTH = 5e-4  # conf/regularizer/l1l2.yaml


def digits_splits() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    x_pool, _, y_pool, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_pool, y_pool, test_size=0.2, random_state=0, stratify=y_pool)
    low, high = x_train.min(), x_train.max()
    scale = lambda a: torch.as_tensor((a - low) / (high - low)).reshape(len(a), -1)  # noqa: E731
    return scale(x_train), torch.as_tensor(y_train), scale(x_val), torch.as_tensor(y_val)


def train_one(seed: int, epochs: int, data: tuple[torch.Tensor, ...], batch_size: int = 64) -> float:
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(x_train), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            loss = loss + STRENGTH * sum(w.abs().sum() for w in weights) + STRENGTH * sum(w.pow(2).sum() for w in weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    data = digits_splits()
    accuracies = [train_one(seed, args.epochs, data) for seed in range(args.seeds)]
    print(f"{args.seeds} models, mean val acc {np.mean(accuracies):.4f}, wall {time.perf_counter() - START:.2f} s")


if __name__ == "__main__":
    main()
