import csv
import json

import pytest

from schemas.taxonomy import load_taxonomy
from tests.conftest import REPO_ROOT
from training.evaluate import (
    CATEGORY_MAP_PATH,
    floor_predictions,
    load_benchmark,
    load_category_maps,
    load_tinkoff_predictions,
)
from training.scoring import (
    Gold,
    Prediction,
    benchmark_scores,
    brand_points,
    fold_brand,
    macro_f1,
    name_similarity,
    per_class,
    product_points,
    real_scores,
    worst_confusions,
)

BENCHMARK_DIR = REPO_ROOT / "training" / "data" / "receipt-parser-benchmark"


def test_product_is_right_when_every_gold_word_is_in_the_answer():
    assert product_points("Сок", "сок") == 1.0
    assert product_points("Желудки куриные", "желудки") == 1.0  # extra qualifiers are fine
    assert product_points("Кислота уксусная", "кислота уксусная") == 1.0
    assert product_points("Огурец", "огурцы") == 1.0  # number does not decide
    assert product_points("Персик", "персики") == 1.0
    assert product_points("Творог", "товрог") == 1.0  # one typo at 5+ letters (the gold has this one)
    assert product_points("Биойогурт", "йогурт") == 1.0  # compound


def test_product_is_partly_right_for_a_missing_qualifier_or_a_cut_head():
    assert product_points("Молоко", "молоко сгущенное") == 0.5
    assert product_points("Средство", "средство антижир") == 0.5
    assert product_points("слив", "сливки") == 0.5
    assert product_points("Батончики", "батон") == 0.5


def test_product_is_wrong_for_another_noun_or_no_answer():
    assert product_points("Хлеб", "батон") == 0.0
    assert product_points("железная банка", "пиво") == 0.0
    assert product_points(None, "батон") == 0.0
    assert product_points("—", "лайм") == 0.0


def test_a_list_of_candidates_earns_at_most_half():
    assert product_points("нарезка, балык свиной", "балык") == 0.5
    assert product_points("яйцо, майонез", "майонез") == 0.5
    assert product_points("арбуз, напиток", "йогурт") == 0.0
    assert brand_points("бзмж, брест-литовск", "брест-литовск") == 0.5


def test_brand_scores_fold_case_quotes_spacing_and_script():
    assert brand_points(None, None) == 1.0
    assert brand_points("—", "-") == 1.0
    assert brand_points("Nescafe", "nescafe") == 1.0
    assert brand_points("Campina", "КАМПИНА") == 1.0
    assert brand_points("mikado", "микадо") == 1.0
    assert brand_points("mr . ricco", "mr.ricco") == 1.0
    assert brand_points('"Фрекен Бок"', "фрекен бок") == 1.0
    assert fold_brand("Брест-Литовск") == "брестлитовск"


def test_brand_is_partly_right_when_one_contains_the_other_and_wrong_otherwise():
    assert brand_points("Озби", "семейка озби") == 0.5
    assert brand_points("тр", "троекурово") == 0.0  # two letters say nothing
    assert brand_points("Lipton", None) == 0.0
    assert brand_points(None, "Lipton") == 0.0
    assert brand_points("бзмж", "ламбер") == 0.0


def test_an_adjacent_swap_or_one_letter_is_the_same_word_from_five_letters():
    assert product_points("Товрог", "творог") == 1.0  # the benchmark's own gold has `товрог`
    assert product_points("Огурц", "огурец") == 1.0
    assert product_points("Сыр", "сок") == 0.0


def test_macro_f1_weights_every_category_equally():
    assert macro_f1(["a", "a", "b"], ["a", "a", "b"]) == 1.0
    # 'b' is never predicted: its F1 is 0, 'a' gets 2*2/(2*2+1) = 0.8
    assert macro_f1(["a", "a", "a"], ["a", "a", "b"]) == pytest.approx(0.4)
    report = per_class(["a", "a", "a"], ["a", "a", "b"])
    assert report["a"]["precision"] == pytest.approx(2 / 3) and report["a"]["recall"] == 1.0
    assert report["b"] == {"support": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_name_similarity_is_difflib_ratio_of_folded_names():
    assert name_similarity("Сок Добрый 1 л", "сок добрый 1 л.") == 1.0
    assert name_similarity("abcd", "abxy") == pytest.approx(0.5)
    assert name_similarity(None, "сок") == 0.0


def test_real_and_benchmark_scores_count_fields_independently():
    predictions = [
        Prediction("Сок Добрый яблочный 1 л", "Сок", "Добрый", "beverages", True),
        Prediction("Хлеб", "Хлеб", None, "bakery", False),
    ]
    golds = [Gold("Сок Добрый яблочный 1 л", "Сок", "Добрый", "beverages"), Gold("Батон нарезной", "Батон", None, "bakery")]
    exact = real_scores([g.normalized_name for g in golds], predictions, golds)
    assert exact["parsed"] == 0.5 and exact["product"] == 0.5 and exact["brand"] == 1.0 and exact["category"] == 1.0
    assert 0.5 < exact["name_similarity"] < 1.0
    bench = benchmark_scores(predictions, golds)
    assert bench["product"] == 0.5 and bench["brand"] == 1.0


def test_brand_when_present_ignores_the_items_that_have_no_brand():
    golds = [Gold(None, "сок", "Добрый", "x"), Gold(None, "хлеб", None, "x"), Gold(None, "хлеб", None, "x")]
    predictions = [Prediction("", "сок", None, "x", True), Prediction("", "хлеб", None, "x", True), Prediction("", "хлеб", None, "x", True)]
    scores = benchmark_scores(predictions, golds)
    assert scores["brand"] == pytest.approx(2 / 3)
    assert scores["brand_when_present"] == 0.0


def test_the_floor_answers_the_first_word_no_brand_and_the_commonest_class():
    golds = [Gold(None, "сок", None, "Напитки"), Gold(None, "вода", None, "Напитки"), Gold(None, "хлеб", None, "Хлеб")]
    floor = floor_predictions(["СОК ЯБЛ 1Л", "123 ВОДА", "Хлеб"], golds)
    assert [(p.product, p.brand, p.category) for p in floor] == [("сок", None, "Напитки"), ("вода", None, "Напитки"), ("хлеб", None, "Напитки")]


def test_worst_confusions_are_counted_gold_to_predicted():
    assert worst_confusions(["a", "b", "b", "c"], ["a", "a", "a", "a"]) == [("a", "b", 2), ("a", "c", 1)]


def test_every_taxonomy_category_maps_to_a_benchmark_class():
    ours, tinkoff = load_category_maps()
    assert set(ours) == set(load_taxonomy().ids)
    assert set(tinkoff.values()) <= set(ours.values()) | {"Другое"}


def test_category_maps_point_only_at_classes_the_benchmark_uses():
    with (BENCHMARK_DIR / "products_to_category.csv").open(encoding="utf-8", newline="") as source:
        classes = {row["category"] for row in csv.DictReader(source)}
    _, golds = load_benchmark(BENCHMARK_DIR / "benchmark_standard.csv")
    classes |= {g.category for g in golds}
    document = json.loads(CATEGORY_MAP_PATH.read_text(encoding="utf-8"))
    assert set(document["ours"].values()) <= classes
    assert set(document["tinkoff"].values()) <= classes


def test_tinkoffs_published_answers_score_as_measured_under_this_rule():
    """Guards the rule: Tinkoff's own answers give 74% / 68% / 69% here (hand-graded: 86% / 67% / 76%)."""
    raws, golds = load_benchmark(BENCHMARK_DIR / "benchmark_standard.csv")
    _, tinkoff_map = load_category_maps()
    predictions = load_tinkoff_predictions(BENCHMARK_DIR / "benchmark_tinkoff_service_predictions.csv", raws, tinkoff_map)
    scores = benchmark_scores(predictions, golds)
    assert scores["items"] == 45
    assert scores["product"] == pytest.approx(33.5 / 45)
    assert scores["brand"] == pytest.approx(30.5 / 45)
    assert scores["category"] == pytest.approx(31 / 45)
    assert scores["parsed"] == pytest.approx(42 / 45)  # three rows came back empty


def test_real_product_rule_is_the_gold_head_noun_first_or_among_the_words():
    from training.scoring import real_product_right

    assert real_product_right("Сок", "Сок")
    assert real_product_right("Зубная паста", "Паста зубная")  # the head noun is one of its words
    assert real_product_right("ЙОГУРТ питьевой", "Йогурт")
    assert real_product_right("Ёлка", "елка")
    assert not real_product_right("Напиток", "Сок")
    assert not real_product_right(None, "Сок")


def test_real_brand_rule_ignores_case_punctuation_and_script():
    from training.scoring import real_brand_right

    assert real_brand_right("Lipton", "ЛИПТОН")
    assert real_brand_right("Head & Shoulders", "head shoulders")
    # An accent is no other brand: the labels write Nescafé, registers and the lexicon NESCAFE.
    assert real_brand_right("Nescafe", "Nescafé") and real_brand_right("нескафе", "Nescafé")
    assert real_brand_right(None, None) and real_brand_right("-", None)
    assert not real_brand_right("Lipton", None) and not real_brand_right(None, "Lipton")


def test_names_grounded_accepts_words_abbreviations_typos_the_brand_and_printed_numbers_only():
    from training.scoring import grounded_words

    # Six words and one number (1,93), all supported.
    assert grounded_words("Сок Сочная Долина персик-яблоко 1,93 л", "СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "Сочная Долина") == (7, 7)
    supported, total = grounded_words("Сок яблочный Добрый", "СОК ЯБЛ 1Л", None)
    assert (supported, total) == (2, 3)  # "Добрый" is invented
    # A number counts by its value (`0,9` for `0,900`); a changed one is invented (`90` for `55Г`).
    assert grounded_words("Вермишель 0,9 кг", "ВЕРМИШЕЛЬ 0,900КГ", None) == (3, 3)
    assert grounded_words("Батончик Snickers 90 г", "ШОК.БАТ.SNICKERS 55Г", "Snickers") == (3, 4)


def test_real_scores_report_brand_precision_and_coverage():
    from training.scoring import real_scores

    raws = ["ЧАЙ LIPTON", "СОК ЯБЛ", "МОЛОКО"]
    golds = [Gold("Чай Lipton", "Чай", "Lipton", "tea_coffee"), Gold("Сок", "Сок", None, "beverages"), Gold("Молоко", "Молоко", None, "dairy")]
    predictions = [
        Prediction("Чай Lipton", "Чай", "Lipton", "tea_coffee", True),
        Prediction("Сок", "Сок", "Ябл", "beverages", True),
        Prediction("Молоко", "Молоко", None, "beverages", True),
    ]
    scores = real_scores(raws, predictions, golds)
    assert scores["product"] == 1.0
    assert scores["brand"] == pytest.approx(2 / 3)
    assert scores["brand_precision"] == 0.5 and scores["brand_coverage"] == pytest.approx(2 / 3)
    assert scores["brand_when_present"] == 1.0
    assert scores["category"] == pytest.approx(2 / 3)
