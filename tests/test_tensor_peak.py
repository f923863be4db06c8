"""benchmarks/tensor_peak.py: the tensor-memory count behind docs/performance.md's 512x512 memory figures."""

import pytest
import torch

from benchmarks.tensor_peak import TensorPeak, counted, counted_real_run


def test_the_count_follows_storages_not_views():
    keep = torch.zeros(10)  # 40 bytes, counted from the start
    with TensorPeak(keep) as peak:
        a = torch.zeros(1000)  # 4000
        view = a[:10]  # a view: no new storage
        b = torch.ones(500, dtype=torch.float64)  # 4000
        assert (peak.now, peak.peak) == (8040, 8040)
        del a
        assert peak.now == 8040  # the view keeps a's storage alive
        del view
        assert peak.now == 4040
        c = b.to(torch.bfloat16)  # 1000
        del b
    assert (peak.now, peak.peak, c.dtype) == (1040, 8040, torch.bfloat16)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_fake_count_equals_the_count_of_a_real_run(precision):
    """Fake tensors and the fixed augmentation change nothing the count sees; the real run also holds the
    augmentation's few random draws (20 bytes a step)."""
    assert counted("deeplab-mini", 48, 2, precision) == pytest.approx(
        counted_real_run("deeplab-mini", 48, 2, precision), abs=1 / 1024)


def test_bf16_keeps_the_batchnorm_prior_inputs_in_bf16():
    """The prior's moments keep a bf16 BatchNorm input for the backward, not a float32 copy of it."""
    fp32, bf16 = counted("deeplab-mini", 128, 4, "fp32"), counted("deeplab-mini", 128, 4, "bf16")
    assert bf16 < 0.7 * fp32
