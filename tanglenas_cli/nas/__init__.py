"""The method core: choices, samplers and the optimizer table, entangled layers, weight-sharing mixed op,
architect (one module each; import from the module).

Pure PyTorch: no files, no printing, no devices chosen here. This module imports nothing, so that
``tanglenas_cli.nas.optimizers`` (torch-free) loads without torch.
"""
