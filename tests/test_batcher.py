import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.stages.batcher import BatchLimits, padded_tokens, plan_batches


def test_batches_never_exceed_the_item_limit():
    texts = [f"item {i}" for i in range(10)]
    batches = plan_batches(texts, [5] * 10, BatchLimits(max_items=4, max_tokens=10_000, answer_tokens=20))
    assert [len(b.texts) for b in batches] == [4, 4, 2]


def test_batches_respect_the_padded_token_budget():
    # Each row costs prompt + answer = 10 + 20 tokens; a 100-token budget fits three rows.
    texts = [f"item {i}" for i in range(7)]
    batches = plan_batches(texts, [10] * 7, BatchLimits(max_items=100, max_tokens=100, answer_tokens=20))
    assert [len(b.texts) for b in batches] == [3, 3, 1]
    for batch in batches:
        assert len(batch.texts) * (batch.row_tokens + 20) <= 100


def test_an_item_too_long_for_the_budget_still_gets_a_batch_of_its_own():
    batches = plan_batches(["short", "huge"], [5, 500], BatchLimits(max_items=8, max_tokens=100, answer_tokens=20))
    assert [b.texts for b in batches] == [("short",), ("huge",)]


def test_duplicate_texts_from_several_receipts_are_planned_once():
    texts = ["МОЛОКО 3,2%", "ХЛЕБ", "МОЛОКО 3,2%", "ХЛЕБ", "СОК"]
    batches = plan_batches(texts, [4, 2, 4, 2, 2], BatchLimits(max_items=10, max_tokens=10_000, answer_tokens=8))
    planned = [t for b in batches for t in b.texts]
    assert sorted(planned) == sorted({"МОЛОКО 3,2%", "ХЛЕБ", "СОК"})


def test_items_are_grouped_by_length_to_cut_padding():
    lengths = [3, 30, 4, 31, 5, 29]
    texts = [f"t{i}" for i in range(6)]
    batches = plan_batches(texts, lengths, BatchLimits(max_items=3, max_tokens=10_000, answer_tokens=0))
    assert [sorted(b.prompt_tokens) for b in batches] == [[3, 4, 5], [29, 30, 31]]
    assert [round(b.padding_waste(), 3) for b in batches] == [0.2, round(1 - 90 / 93, 3)]


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        plan_batches(["a"], [1, 2], BatchLimits(1, 10, 1))


@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=5), st.integers(1, 200)), max_size=200),
    st.integers(1, 64),
    st.integers(1, 4000),
)
def test_every_unique_text_lands_in_exactly_one_batch(rows, max_items, max_tokens):
    texts = [t for t, _ in rows]
    tokens = [n for _, n in rows]
    batches = plan_batches(texts, tokens, BatchLimits(max_items=max_items, max_tokens=max_tokens, answer_tokens=10))
    planned = [t for b in batches for t in b.texts]
    assert sorted(planned) == sorted(set(texts))
    for batch in batches:
        assert 1 <= len(batch.texts) <= max_items
        assert len(batch.texts) == 1 or len(batch.texts) * (batch.row_tokens + 10) <= max_tokens


def test_padded_tokens_is_rows_times_longest_prompt_plus_answer_budget():
    assert padded_tokens([10, 25, 7], answer_tokens=40) == 3 * (25 + 40)
    assert padded_tokens([], answer_tokens=40) == 0
