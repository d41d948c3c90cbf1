"""Train the example CNN on scikit-learn's digits and write everything the example ships.

    .venv/bin/pip install torch==2.13.0 scikit-learn   # torch is not a dependency of edgeloop
    .venv/bin/python examples/digits/train.py

Writes, beside this script: digits_cnn.onnx (opset 17, BatchNormalization kept so convert's
folding is visible), validation/ (32 held-out digits as .raw, input_list.txt, labels.txt),
calibration/ (64 training digits as .raw and input_list.txt) and metrics.json (the figures quoted
in README.md). Seeds are fixed and torch runs single-threaded and deterministic, so a rerun on
the same versions gives the same weights.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from deploy.fsutil import atomic_path, atomic_write_text
from deploy.inputs import write_raw_set

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 40
VALIDATION_SAMPLES = 32
CALIBRATION_SAMPLES = 64
PIXEL_MAX = 16.0  # digits pixels are integers 0..16; the model takes pixel / 16


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU, Conv-BN-ReLU, 2x2 max pool, fully connected: 1x1x8x8 -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def seed_everything() -> None:
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = (digits.images / PIXEL_MAX).astype(np.float32)[:, np.newaxis]  # N x 1 x 8 x 8
    return train_test_split(images, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target)


def train(x: np.ndarray, y: np.ndarray) -> DigitsCNN:
    model = DigitsCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y).long()
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        for idx in torch.randperm(len(xs), generator=generator).split(64):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            optimiser.step()
    return model.eval()


def top1(model: DigitsCNN, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export(model: DigitsCNN, path: Path) -> None:
    """Batch 1, BatchNorm kept as its own node (TrainingMode.PRESERVE of an eval model, no folding)."""
    with atomic_path(path) as tmp:
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(tmp), input_names=["digits"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def main() -> None:
    seed_everything()
    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train)
    export(model, HERE / "digits_cnn.onnx")
    val_x, val_y = x_test[:VALIDATION_SAMPLES], y_test[:VALIDATION_SAMPLES]
    write_raw_set(list(val_x[:, np.newaxis]), [f"digit_{i:03d}" for i in range(len(val_x))], HERE / "validation")
    atomic_write_text(HERE / "validation" / "labels.txt", "".join(f"{label}\n" for label in val_y))
    calib_x = x_train[:CALIBRATION_SAMPLES]
    write_raw_set(list(calib_x[:, np.newaxis]), [f"calib_{i:03d}" for i in range(len(calib_x))],
                  HERE / "calibration")
    metrics = {"train_samples": len(x_train), "held_out_samples": len(x_test), "epochs": EPOCHS,
               "float_top1_train": round(top1(model, x_train, y_train), 4),
               "float_top1_held_out": round(top1(model, x_test, y_test), 4),
               "float_top1_validation_samples": round(top1(model, val_x, val_y), 4),
               "torch": torch.__version__}
    atomic_write_text(HERE / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
