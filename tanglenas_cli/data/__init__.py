"""Datasets: registry (build_datasets), the search-time weight/arch split, and prepare-data steps.

A leaf package: it imports only torch, torchvision, numpy, scikit-learn and tanglenas_cli.errors.
"""

from tanglenas_cli.data.cutout import Cutout
from tanglenas_cli.data.info import DatasetInfo
from tanglenas_cli.data.memory import InMemoryDataset
from tanglenas_cli.data.names import DATASET_NAMES
from tanglenas_cli.data.paths import default_data_root
from tanglenas_cli.data.prepare import run_prepare
from tanglenas_cli.data.registry import build_datasets
from tanglenas_cli.data.splits import search_splits

__all__ = [
    "DATASET_NAMES",
    "Cutout",
    "DatasetInfo",
    "InMemoryDataset",
    "build_datasets",
    "default_data_root",
    "run_prepare",
    "search_splits",
]
