"""The examples in the docstrings run, and every loss that cites an equation shows one."""

import doctest
import importlib
import inspect
import re

import pytest

MODULES = ["seginv.distill.losses", "seginv.distill.multilabel_losses", "seginv.synthesis.aggregation",
           "seginv.synthesis.priors", "seginv.importance", "seginv.multilabel_metrics", "seginv.metrics"]
LOSSES = ["seginv.distill.losses", "seginv.distill.multilabel_losses"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_citing_an_equation_has_an_example(name):
    module = importlib.import_module(name)
    missing = [n for n, f in inspect.getmembers(module, inspect.isfunction)
               if f.__module__ == name and not n.startswith("_") and re.search(r"\beq\. ?\d", f.__doc__ or "")
               and ">>>" not in f.__doc__]
    assert not missing, f"{name}: no example in {missing}"
