"""The head-noun and brand rankers (model/head_ranker.py, model/brand_ranker.py) and their fit (training/rankers.py)."""

from __future__ import annotations

import math

import pytest

from model.brand_ranker import NO_BRAND_OPTION, brand_log_priors, brand_options
from model.head_ranker import candidate_features, head_log_priors
from training.examples import LabeledExample
from training.rankers import fit_brand_weights, fit_head_weights, with_rankers
from training.lexicon import build_lexicon


def example(raw: str, product: str, brand: str | None, category: str) -> LabeledExample:
    return LabeledExample(raw, raw, product, brand, category)


# A maker's name printed before the product, and adjectives before the noun: the first word is not the head.
TRAIN = [
    example("растишка творожок клубника 100г", "Творожок", "Растишка", "dairy"),
    example("растишка йогурт питьевой 185г", "Йогурт питьевой", "Растишка", "dairy"),
    example("растишка десерт банан 90г", "Десерт", "Растишка", "dairy"),
    example("простоквашино молоко 2,5% 930мл", "Молоко", "Простоквашино", "dairy"),
    example("простоквашино творог 5% 200г", "Творог", "Простоквашино", "dairy"),
    example("простоквашино кефир 1% 900г", "Кефир", "Простоквашино", "dairy"),
    example("домик в деревне сметана 15%", "Сметана", "Домик в деревне", "dairy"),
    example("домик в деревне масло сливочное", "Масло сливочное", "Домик в деревне", "dairy"),
    example("свежая морковь мытая 1кг", "Морковь", None, "fruits_vegetables"),
    example("красный лук 1кг", "Лук", None, "fruits_vegetables"),
    example("зеленый горошек 400г", "Горошек", None, "canned"),
    example("сладкая кукуруза 340г", "Кукуруза", None, "canned"),
    example("сок яблочный 1л", "Сок", None, "beverages"),
    example("молоко 3,2% 1л", "Молоко", None, "dairy"),
    example("хлеб бородинский 400г", "Хлеб", None, "bakery"),
    example("пирожок с капустой", "Пирожок", None, "bakery"),
    example("пирожок с картошкой", "Пирожок", None, "bakery"),
]


@pytest.fixture(scope="module")
def lexicon():
    return with_rankers(build_lexicon(TRAIN), TRAIN)


def test_the_fit_learns_weights_and_the_lexicon_keeps_them(lexicon):
    assert lexicon.head_weights and all(math.isfinite(w) for w in lexicon.head_weights.values())
    assert type(lexicon).from_json(lexicon.to_json()).head_weights == pytest.approx(lexicon.head_weights, abs=1e-5)


def test_the_fit_learns_what_the_labels_show_about_a_words_neighbours(lexicon):
    weights = lexicon.head_weights
    assert weights["brand_alias"] < 0  # `растишка`, `простоквашино`: a known brand's words are not the product
    assert weights["grammar:ADJF"] < 0 < weights["previous:ADJF"]  # `красный лук`: the noun after the adjective
    assert weights["previous:PREP"] < 0  # `пирожок с капустой`


def test_priors_are_a_distribution_over_the_items_candidates(lexicon):
    priors = head_log_priors(lexicon, "простоквашино ряженка 4%")
    assert set(priors) == set(lexicon.head_candidates("простоквашино ряженка 4%"))
    assert sum(math.exp(p) for p in priors.values()) == pytest.approx(1.0)
    assert head_log_priors(lexicon, "12345 678") == {}


def test_a_new_item_gets_its_noun_over_the_makers_name_and_the_adjective(lexicon):
    # Neither string was trained on; `ряженка` and `фасоль` were never labelled.
    priors = head_log_priors(lexicon, "простоквашино ряженка 4% 450г")
    assert max(priors, key=priors.get) == "ряженка", priors
    priors = head_log_priors(lexicon, "красная фасоль 400г")
    assert max(priors, key=priors.get) == "фасоль", priors


def test_an_items_own_label_is_left_out_of_the_word_record_it_is_fitted_on():
    lexicon = build_lexicon([example("ряженка 4%", "Ряженка", None, "dairy")])
    own = candidate_features(lexicon, "ряженка 4%", leave_out="ряженка")["ряженка"]
    assert own["unseen"] == 1.0  # with its own count out, the word was never offered
    assert candidate_features(lexicon, "ряженка 4%")["ряженка"]["unseen"] == 0.0
    assert own["record"] < candidate_features(lexicon, "ряженка 4%")["ряженка"]["record"]


def test_without_weights_the_ranker_orders_by_the_word_record():
    lexicon = build_lexicon(TRAIN)
    assert not lexicon.head_weights
    priors = head_log_priors(lexicon, "сок персик 1л")
    candidates = lexicon.head_candidates("сок персик 1л")
    by_record = sorted(candidates, key=lambda c: lexicon.head_log_prior(c, candidates[c]))
    assert sorted(priors, key=priors.get) == by_record


def test_nothing_to_learn_from_gives_no_weights():
    assert fit_head_weights(build_lexicon([]), []) == {}


# ---------- brands ----------

BRANDED = TRAIN + [
    example("сыр ламбер 50% вес", "Сыр", "Ламбер", "dairy"),
    example("сыр ламбер полутвердый 230г", "Сыр", "Ламбер", "dairy"),
    example("подгузники pampers 4 52шт", "Подгузники", "Pampers", "children_goods"),
    example("шампунь syoss color 500мл", "Шампунь", "Syoss", "cosmetics"),
    example("кофе jacobs monarch 95г", "Кофе растворимый", "Jacobs", "tea_coffee"),
    example("чай greenfield earl grey 25пак", "Чай", "Greenfield", "tea_coffee"),
    example("сок яблочный осветленный 1л", "Сок", None, "beverages"),
]


@pytest.fixture(scope="module")
def branded():
    return with_rankers(build_lexicon(BRANDED), BRANDED)


def test_brand_priors_are_a_distribution_over_no_brand_and_the_printed_spans(branded):
    priors, none = brand_log_priors(branded, "сыр ламбер 50% вес", 3)
    assert set(priors) | {NO_BRAND_OPTION} == set(brand_options(branded, "сыр ламбер 50% вес", 3))
    assert "сыр ламбер" in priors and "ламбер 50" in priors
    assert math.exp(none) + sum(math.exp(p) for p in priors.values()) == pytest.approx(1.0)


def test_without_weights_the_brand_prior_is_the_brand_word_record():
    lexicon = build_lexicon(BRANDED)
    assert not lexicon.brand_weights
    # A span's words are brand words and its neighbours are not; "no brand" that none is.
    priors, none = brand_log_priors(lexicon, "сыр ламбер 50% вес", 3)
    assert max(priors, key=priors.get) == "ламбер"
    assert none < priors["ламбер"] and priors["сыр ламбер"] < priors["ламбер"]
    priors, none = brand_log_priors(lexicon, "сок яблочный 1л", 3)
    assert none > max(priors.values())


def test_the_fit_learns_that_known_aliases_are_brands_and_the_product_is_not(branded):
    weights = branded.brand_weights
    assert weights["alias"] > 0
    assert weights["holds_head"] < 0
    # Unseen strings: a known alias, an unknown Latin word, and none.
    for item, brand in (("сыр ламбер сливочный 45% 1кг", "ламбер"), ("бальзам gliss 200мл", "gliss"), ("сок томатный 1л", NO_BRAND_OPTION)):
        priors, none = brand_log_priors(branded, item, 3)
        priors[NO_BRAND_OPTION] = none
        assert max(priors, key=priors.get) == brand, (item, sorted(priors.items(), key=lambda t: -t[1])[:3])


def test_a_training_items_own_label_is_left_out_of_the_alias_record(branded):
    served = brand_options(branded, "сыр ламбер 50% вес", 3)["ламбер"]
    fitted = brand_options(branded, "сыр ламбер 50% вес", 3, leave_out=True, brand="Ламбер")["ламбер"]
    assert fitted["alias:evidence"] < served["alias:evidence"] and fitted["prior"] < served["prior"]
    # An alias only this item printed is no alias once its own string is out.
    assert "alias" not in brand_options(branded, "шампунь syoss color 500мл", 3, leave_out=True, brand="Syoss")["syoss"]


def test_nothing_to_learn_from_gives_no_brand_weights():
    assert fit_brand_weights(build_lexicon([]), []) == {}
