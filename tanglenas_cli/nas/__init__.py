"""The method core: choices, samplers, entangled layers, weight-sharing mixed op, architect.

Pure PyTorch: no files, no printing, no devices chosen here.
"""

from tanglenas_cli.nas.architect import Architect
from tanglenas_cli.nas.choices import (
    Choice,
    ChoiceSubset,
    JointChoice,
    Mixing,
    WeightSource,
    arch_parameters,
    find_choices,
    weight_parameters,
)
from tanglenas_cli.nas.entangled import EntangledConv2d, EntangledLayer, EntangledLinear
from tanglenas_cli.nas.mixed_op import MixedOp, Zero
from tanglenas_cli.nas.samplers import (
    SAMPLERS,
    DartsSampler,
    DiscreteSampler,
    DrNASSampler,
    GDASSampler,
    Sampler,
    SPOSSampler,
    SubsetSPOSSampler,
    make_sampler,
    sparsemax,
)
from tanglenas_cli.nas.superposition import SlicedDim, Superposition

__all__ = [
    "SAMPLERS",
    "Architect",
    "Choice",
    "ChoiceSubset",
    "DartsSampler",
    "DiscreteSampler",
    "DrNASSampler",
    "EntangledConv2d",
    "EntangledLayer",
    "EntangledLinear",
    "GDASSampler",
    "JointChoice",
    "MixedOp",
    "Mixing",
    "SPOSSampler",
    "Sampler",
    "SlicedDim",
    "SubsetSPOSSampler",
    "Superposition",
    "WeightSource",
    "Zero",
    "arch_parameters",
    "find_choices",
    "make_sampler",
    "sparsemax",
    "weight_parameters",
]
