"""Data order across epochs from one loader, and the training device choice."""

import pytest
import torch
from depth_estimation_training.trainer import StepBatches, epoch_batches, training_device


def test_step_batches_walk_the_epochs_and_resume_anywhere():
    num, batch, seed = 26, 4, 7  # 6 batches per epoch, 2 samples left out each epoch
    full = list(StepBatches(num, batch, seed, start=0, stop=20))
    assert len(full) == 20
    for step, pairs in enumerate(full):
        epoch, b = divmod(step, 6)
        assert pairs == [(epoch, i) for i in epoch_batches(num, batch, seed, epoch)[b]]
    assert full[:6] != full[6:12]  # each epoch is its own permutation
    assert list(StepBatches(num, batch, seed, start=9, stop=20)) == full[9:]  # a resumed run sees the same batches
    assert len(StepBatches(num, batch, seed, start=20, stop=20)) == 0


def test_step_batches_split_a_block_between_ranks():
    ranks = [list(StepBatches(24, 3, 1, start=0, stop=8, rank=r, world=2)) for r in range(2)]
    for step in range(8):
        together = [i for r in range(2) for _, i in ranks[r][step]]
        assert len(set(together)) == 6


def test_training_device_always_names_a_cuda_index():
    assert training_device("cpu", cuda_available=True) == torch.device("cpu")
    assert training_device("auto", cuda_available=False) == torch.device("cpu")
    assert training_device("auto", cuda_available=True) == torch.device("cuda", 0)  # bare "cuda" broke set_device
    assert training_device("cuda", cuda_available=True, current_index=2) == torch.device("cuda", 2)
    assert training_device("cuda:1", cuda_available=True) == torch.device("cuda", 1)
    assert training_device("cuda", cuda_available=True, world=4, local_rank=3) == torch.device("cuda", 3)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        training_device("cuda", cuda_available=False)
