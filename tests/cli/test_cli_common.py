"""The shared numeric-argument checkers of the CLI (ebm_ppl/cli/common.py): a bad number fails at
parse time with one line naming the option and the rule, exit code 2, before any JAX work."""

import argparse
import math

import pytest

from ebm_ppl.cli import UsageError, main
from ebm_ppl.cli.common import (
    check_number,
    non_negative_float,
    non_negative_int,
    number,
    open_probability,
    positive_float,
    positive_int,
    probability,
)


@pytest.mark.parametrize(
    "fn, good, expect",
    [
        (positive_int, "3", 3),
        (non_negative_int, "0", 0),
        (positive_float, "1e-3", 1e-3),
        (non_negative_float, "0", 0.0),
        (probability, "1", 1.0),
        (open_probability, "0.8", 0.8),
        (number(int, low=10), "10", 10),
        (number(float, low=-1, high=1), "-1", -1.0),
    ],
)
def test_checkers_accept(fn, good, expect):
    assert fn(good) == expect and type(fn(good)) is type(expect)


@pytest.mark.parametrize(
    "fn, bad, words",
    [
        (positive_int, "-2", "integer >= 1"),
        (positive_int, "0", ">= 1"),
        (positive_int, "2.5", "integer"),
        (positive_int, "x", "integer"),
        (non_negative_int, "-1", ">= 0"),
        (positive_float, "0", "> 0"),
        (positive_float, "nan", "finite"),
        (positive_float, "inf", "finite"),
        (non_negative_float, "-0.1", ">= 0"),
        (probability, "1.01", "<= 1"),
        (open_probability, "1", "< 1"),
        (open_probability, "0", "> 0"),
    ],
)
def test_checkers_reject_with_rule_and_value(fn, bad, words):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        fn(bad)
    assert words in str(err.value) and repr(bad) in str(err.value)


def test_check_number_after_parsing():
    assert check_number("--steps", None) is None
    assert check_number("--steps", 4, int, low=1) == 4
    with pytest.raises(UsageError, match=r"^--steps: must be an integer >= 1, got -2$"):
        check_number("--steps", -2, int, low=1)
    with pytest.raises(UsageError, match="finite"):
        check_number("--lr", math.nan, float, low=0, low_open=True)


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--steps", "-2"], "--steps"),
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--levels", "1"], "--levels"),
    ],
)
def test_train_cli_bad_number_one_line_exit_2(tmp_path, capsys, argv, option):
    rc = main(["train", "--data", "8gaussians", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ebm-ppl train: error: argument") and option in err
    assert not (tmp_path / "x").exists()
