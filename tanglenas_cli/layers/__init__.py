"""Network building blocks that know nothing of the method (as timm's ``layers``), one small file each.

Pure PyTorch, importing nothing else of tanglenas: the entangled layers of ``nas`` and the networks of
``spaces`` are built from them.
"""
