import pytest
import torch

from workbench.errors import UsageError
from workbench.tasks import OPERATIONS, is_prime, make_dataset, make_split

P = 13


def expected(op: str, a: int, b: int, p: int) -> int:
    return {
        "add": a + b,
        "sub": a - b,
        "mul": a * b,
        "div": a * pow(b, -1, p) if b else None,
        "x2+y2": a * a + b * b,
        "x2+xy+y2": a * a + a * b + b * b,
        "x3+xy": a**3 + a * b,
    }[op] % p


@pytest.mark.parametrize("op", [o for o in OPERATIONS if o != "random"])
def test_labels_match_modular_arithmetic(op):
    ds = make_dataset(op, P)
    assert ds.tokens.shape[1] == 3 and (ds.tokens[:, 2] == P).all(), "every input ends with '=' (token p)"
    for (a, b, _), c in zip(ds.tokens.tolist(), ds.labels.tolist(), strict=True):
        assert c == expected(op, a, b, P)
    assert ds.n_examples == (P * (P - 1) if op == "div" else P * P)


def test_div_skips_zero_and_inverts():
    ds = make_dataset("div", P)
    assert (ds.tokens[:, 1] != 0).all()
    # (a / b) * b == a
    assert ((ds.labels * ds.tokens[:, 1]) % P == ds.tokens[:, 0]).all()


def test_random_table_is_fixed_by_seed_and_has_no_structure():
    a, b = make_dataset("random", 31, table_seed=0), make_dataset("random", 31, table_seed=0)
    c = make_dataset("random", 31, table_seed=1)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)
    # not addition: agrees with (a+b) mod p about 1/p of the time
    agree = (a.labels == (a.tokens[:, 0] + a.tokens[:, 1]) % 31).double().mean()
    assert agree < 0.1


def test_split_is_deterministic_disjoint_and_complete():
    s1, s2, s3 = make_split(1000, 0.3, seed=7), make_split(1000, 0.3, seed=7), make_split(1000, 0.3, seed=8)
    assert torch.equal(s1.train, s2.train) and torch.equal(s1.test, s2.test)
    assert not torch.equal(s1.train, s3.train)
    assert len(s1.train) == 300 and len(s1.test) == 700
    both = torch.cat([s1.train, s1.test])
    assert len(set(both.tolist())) == 1000, "train and test are disjoint and cover every example"


def test_split_matches_transformerlens_grokking_demo():
    # The demo: torch.manual_seed(598); indices = torch.randperm(p*p); train = indices[:int(p*p*0.3)]
    p = 113
    torch.manual_seed(598)
    demo = torch.randperm(p * p)[: int(p * p * 0.3)]
    ours = make_split(p * p, 0.3, seed=598)
    assert torch.equal(ours.train, demo.sort().values)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fraction_outside_unit_interval(frac):
    with pytest.raises(UsageError, match="frac_train"):
        make_split(100, frac, 0)


def test_bad_tasks_are_refused_with_the_valid_choices():
    with pytest.raises(UsageError, match="valid operations: add, sub"):
        make_dataset("pow", 13)
    with pytest.raises(UsageError, match="prime"):
        make_dataset("div", 12)
    assert is_prime(113) and not is_prime(111)


def test_nanda2023_split_rule_is_their_shuffle_of_the_pairs():
    """Nanda et al.'s code: random.seed(seed); random.shuffle(pairs); the first int(frac n) train."""
    import random

    pairs = [(i, j, 113) for i in range(113) for j in range(113)]
    random.seed(0)
    random.shuffle(pairs)
    split = make_split(113 * 113, 0.3, seed=0, rule="nanda2023")
    assert len(split.train) == 3830 and len(split.test) == 8939
    assert split.train.tolist() == sorted(i * 113 + j for i, j, _ in pairs[:3830])
    assert not torch.equal(split.train, make_split(113 * 113, 0.3, seed=0).train)  # not the randperm split
    with pytest.raises(UsageError, match="unknown split rule 'x'; valid: randperm, nanda2023"):
        make_split(100, 0.3, 0, rule="x")
