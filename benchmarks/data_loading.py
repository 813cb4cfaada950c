"""Fashion-MNIST batches per second: torchvision's per-image PIL transforms against the tensors that
``tanglenas`` decodes into memory once (the same numbers, a test checks them).

Usage: python benchmarks/data_loading.py   (needs ``tanglenas prepare-data fashion_mnist`` first)
"""

from __future__ import annotations

import time

from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from tanglenas_cli.data.fashion_mnist import MEAN, STD, build_fashion_mnist, raw_folder
from tanglenas_cli.paths import default_data_root as data_root


def main() -> None:
    root = data_root()
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    per_image = FashionMNIST(str(raw_folder(root).parents[1]), train=True, transform=pipeline)
    in_memory, _, _ = build_fashion_mnist(root)
    for name, dataset in (("torchvision, per image", per_image), ("in memory", in_memory)):
        started = time.perf_counter()
        for _ in DataLoader(dataset, batch_size=64, shuffle=True, num_workers=0):
            pass
        print(f"{name}: {len(dataset):,} images in batches of 64, {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
