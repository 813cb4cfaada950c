"""Datasets: the registry (``list_datasets``, ``build_datasets``, ``prepare_dataset``), the splits of search,
training and evaluation, and the loading code of each dataset (one module each).

A leaf package: it imports only torch, torchvision, numpy, scikit-learn and tanglenas_cli's errors and
validation. This module imports nothing, so that reading the registry does not load torch.
"""
