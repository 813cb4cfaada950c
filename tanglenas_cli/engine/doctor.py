"""``tanglenas doctor``: what a bug report needs -- versions, devices, Accelerate, data and benchmarks."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

from tanglenas_cli.data.registry import list_datasets
from tanglenas_cli.paths import DATA_ROOT_ENV, default_data_root

PACKAGES = ("tanglenas", "torch", "torchvision", "accelerate", "timm", "numpy", "pydantic", "typer", "wandb")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _devices() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda_version"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    mps = getattr(torch.backends, "mps", None)
    info["mps_available"] = bool(mps is not None and mps.is_available())
    info["distributed_backends"] = [
        name
        for name, available in (
            ("gloo", torch.distributed.is_gloo_available()),
            ("nccl", torch.distributed.is_nccl_available()),
            ("mpi", torch.distributed.is_mpi_available()),
        )
        if available
    ]
    return info


def _accelerate_config() -> dict[str, Any]:
    from accelerate.commands.config import default_config_file

    path = Path(os.environ.get("ACCELERATE_CONFIG_FILE", default_config_file))
    info: dict[str, Any] = {"config_file": str(path), "exists": path.is_file()}
    if path.is_file():
        import yaml

        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            info["error"] = f"unreadable: {error}".splitlines()[0]
        else:
            keys = ("compute_environment", "distributed_type", "num_processes", "mixed_precision", "use_cpu")
            info.update({key: loaded.get(key) for key in keys if key in loaded})
    launched = {k: os.environ[k] for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK") if k in os.environ}
    if launched:
        info["launched_as"] = launched
    return info


def _data(data_root: Path, origin: str) -> dict[str, Any]:
    from tanglenas_cli.data.paths import dataset_dir

    found = [name for name in list_datasets() if dataset_dir(data_root, name).exists()]
    bench_dir = data_root / "benchmarks"
    benchmarks = sorted(p.name for p in bench_dir.iterdir()) if bench_dir.is_dir() else []
    return {
        "data_root": str(data_root),
        "from": origin,
        "exists": data_root.is_dir(),
        "datasets_found": found,
        "benchmarks_found": benchmarks,
    }


def run_doctor(data_root: Path | None = None) -> dict[str, Any]:
    """Return everything ``tanglenas doctor`` reports, as plain data."""
    root = (data_root or default_data_root()).expanduser()
    if data_root is not None:
        origin = "--data-root"
    else:
        origin = f"${DATA_ROOT_ENV}" if os.environ.get(DATA_ROOT_ENV, "").strip() else "default"
    return {
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": _devices(),
        "accelerate": _accelerate_config(),
        "data": _data(root, origin),
    }
