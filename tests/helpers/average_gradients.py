"""Run under torchrun with 2 processes: average a linear model's gradients over unequal shards."""

import sys

import torch
import torch.distributed as dist

from tanglenas_cli.engine.distributed import Cluster

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = torch.nn.Linear(4, 3)
x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
shards = [list(range(0, 5)), list(range(5, 8))]  # unequal shares: 5 and 3 samples
mine = shards[rank]
cluster = Cluster(rank, world)
cluster.local_count = len(mine)
torch.nn.functional.cross_entropy(model(x[mine]), y[mine]).backward()
cluster.average_parameter_gradients(list(model.parameters()))
if rank == 0:
    torch.save({name: p.grad for name, p in model.named_parameters()}, sys.argv[1])
dist.destroy_process_group()
