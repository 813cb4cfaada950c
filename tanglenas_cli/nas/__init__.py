"""The method core: choices, samplers, entangled layers, weight-sharing mixed op, architect.

Pure PyTorch: no files, no printing, no devices chosen here.
"""

from tanglenas_cli.nas.architect import Architect, MicroBatches
from tanglenas_cli.nas.choices import (
    Choice,
    ChoiceSubset,
    FixedChoice,
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
from tanglenas_cli.nas.transformer import (
    EntangledEmbedding,
    EntangledLayerNorm,
    EntangledSelfAttention,
    mix_depths,
)

__all__ = [
    "SAMPLERS",
    "Architect",
    "Choice",
    "ChoiceSubset",
    "DartsSampler",
    "DiscreteSampler",
    "DrNASSampler",
    "EntangledConv2d",
    "EntangledEmbedding",
    "EntangledLayer",
    "EntangledLayerNorm",
    "EntangledLinear",
    "EntangledSelfAttention",
    "FixedChoice",
    "GDASSampler",
    "JointChoice",
    "MicroBatches",
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
    "mix_depths",
    "sparsemax",
    "weight_parameters",
]
