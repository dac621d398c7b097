"""relabel.loop.queue: a round tops the review queue up to `[review] budget` open tasks (issue 20)."""
from relabel.loop.queue import TopUp


def test_a_round_pushes_budget_minus_open():
    assert TopUp(budget=20, open=10).to_push == 10
    assert TopUp(budget=20, open=0).to_push == 20
    assert TopUp(budget=20, open=25).to_push == 0            # never negative: an over-full queue pushes nothing


def test_add_pushes_that_many_whatever_is_open():
    assert TopUp(budget=20, open=20, add=5).to_push == 5
    assert TopUp(budget=20, open=0, add=0).to_push == 0


def test_it_says_what_it_did():
    assert TopUp(20, 10).describe() == "10 still open, budget 20: 20 open"
    full = TopUp(20, 20).describe()
    assert full.startswith("nothing pushed: 20 review tasks still open (budget 20") and "--add N" in full
    assert TopUp(20, 1, add=0).describe().startswith("1 were open, --add 0")
    assert "1 review task still open" in TopUp(1, 1).describe()
    assert TopUp(20, 10, add=5).as_dict() == {"budget": 20, "open_before": 10, "add": 5, "to_push": 5}
