"""The lexicon (model/lexicon.py) and its builder (training/lexicon.py): pure, no torch."""

from __future__ import annotations

import json

import pytest

from model.lexicon import Lexicon, brand_key, fold_text, read_lexicon
from training.examples import LabeledExample
from training.lexicon import brand_aliases, build_lexicon


def example(raw: str, product: str, brand: str | None, category: str) -> LabeledExample:
    return LabeledExample(raw, raw, product, brand, category)


TRAIN = [
    example("СОК СОЧН ДОЛ ПЕРСИК ЯБЛ 1,93Л", "Сок", "Сочная Долина", "beverages"),
    example("НЕКТАР СОЧН ДОЛ ВИШНЯ 1Л", "Нектар", "Сочная Долина", "beverages"),
    example("кофе nescafe gold 95г", "Кофе растворимый", "Nescafe", "tea_coffee"),
    example("НЕСКАФЕ КЛАССИК 100Г", "Кофе растворимый", "Nescafe", "tea_coffee"),
    example("хейнекен 0,45л ж/б", "Пиво", "Heineken", "alcohol"),
    example("хейнекен 0,5л ст", "Пиво", "Heineken", "alcohol"),
    example("т/б зева 4 рул", "Бумага туалетная", "Zewa", "personal_care"),
    example("т/б мягкий знак 8 рул", "Бумага туалетная", "Мягкий знак", "personal_care"),
    example("сок яблочный 1л", "Сок", None, "beverages"),
    example("молоко простоквашино 3,2% 1л", "Молоко", "Простоквашино", "dairy"),
    example("молоко домик в деревне 2,5%", "Молоко", "Домик в деревне", "dairy"),
    example("сыр ламбер 50% вес", "Сыр", "Ламбер", "dairy"),
    example("подгузники pampers 4 52шт", "Подгузники", "Pampers", "children_goods"),
]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return build_lexicon(TRAIN, ["Lipton"])


def test_aliases_are_the_spans_that_print_the_brand_verbatim_transliterated_or_cut():
    assert brand_aliases("СОК СОЧН ДОЛ ПЕРСИК", "Сочная Долина") == [brand_key("сочн дол")]
    assert brand_key("NESCAFE") == brand_key("нескафе")
    assert brand_aliases("НЕСКАФЕ КЛАССИК", "Nescafe") == [brand_key("нескафе")]
    assert brand_aliases("сок яблочный", "Сочная Долина") == []


def test_a_known_brand_is_found_by_its_printed_abbreviation_and_transliteration(lexicon):
    assert lexicon.brand_in("НАПИТОК СОЧН ДОЛ АПЕЛЬСИН 0,9Л").brand == "Сочная Долина"
    assert lexicon.brand_in("кофе нескафе голд 190г").brand == "Nescafe"
    assert lexicon.brand_in("ЧАЙ LIPTON YELLOW LABEL 25ПАК").brand == "Lipton"  # from the shipped brand list


def test_near_misses_and_common_words_are_not_brands(lexicon):
    # `сочный` is not `сочн дол`; `домик` alone is not Домик в деревне; one letter off a 4-letter brand is another word.
    assert lexicon.brand_in("сок сочный яблоко 1л") is None
    assert lexicon.brand_in("домик для кошки") is None
    assert lexicon.brand_in("сыр ламбо 45%") is None


def test_evidence_is_the_share_of_training_strings_where_the_alias_meant_the_brand(lexicon):
    match = lexicon.brand_in("НЕКТАР СОЧН ДОЛ МАНГО")
    assert (match.hits, match.seen) == (2, 2)
    assert 0.5 < match.evidence < 1.0


def test_product_candidates_open_abbreviations_imply_unprinted_nouns_and_read_mixed_scripts(lexicon):
    candidates = lexicon.head_candidates("ПОДГУЗ PAMPERS 5")
    assert "подгузники" in candidates  # `подгуз` opens to a labelled head noun
    assert "пиво" in lexicon.head_candidates("хейнекен 0,33 ст")  # implied twice, never printed
    assert "бумага" in lexicon.head_candidates("т/б папия 3сл")
    assert "колбаса" in lexicon.head_candidates("kолбаса вар. 400г")  # a Latin k inside a Cyrillic word
    assert fold_text("cр-во д/пос") == "ср-во д/пос"
    # Two-letter register codes are not product words.
    assert "вл" not in lexicon.head_candidates("вл. салф. 15 шт")


def test_a_word_whose_strings_mostly_name_one_head_noun_implies_it_where_it_is_not_printed():
    noodles = [example(f"лапша доширак {taste} 90г", "Лапша", "Доширак", "grocery") for taste in ("говядина", "курица", "грибы")]
    # Printed beside its head noun three times, alone once: the unprinted count alone (once) would not imply it.
    lexicon = build_lexicon([*noodles, example("доширак 70г", "Лапша", "Доширак", "grocery"), example("лапша удон 300г", "Лапша", None, "grocery")])
    assert "лапша" in lexicon.head_candidates("доширак 110г")
    # A word seen with several head nouns implies none of them.
    mixed = build_lexicon([example("сыр ламбер", "Сыр", "Ламбер", "dairy"), example("ламбер масло", "Масло", "Ламбер", "dairy")] * 2)
    assert lexicon.head_candidates("доширак 110г") and not {"сыр", "масло"} & set(mixed.head_candidates("ламбер 200г"))


def test_a_word_often_chosen_outranks_a_word_rarely_chosen(lexicon):
    candidates = lexicon.head_candidates("сок персик 1л")
    assert lexicon.head_log_prior("сок", candidates["сок"]) > lexicon.head_log_prior("персик", candidates["персик"])


def test_brand_word_prior_learns_which_kinds_of_printed_words_are_brands(lexicon):
    # No label names `хуггис` or `huggies`: an unknown or Latin word is likelier a brand than a dictionary word.
    words = {word: p for word, _, p in lexicon.brand_word_probabilities("подгузники huggies 4 хуггис")}
    assert words["huggies"] > words["подгузники"]
    assert words["хуггис"] > words["подгузники"]
    # A training item's own label is taken out of the records it is scored with.
    own = {word: p for word, _, p in lexicon.brand_word_probabilities("сыр ламбер 50% вес", leave_out=True, brand="Ламбер")}
    served = {word: p for word, _, p in lexicon.brand_word_probabilities("сыр ламбер 50% вес")}
    assert own["ламбер"] < served["ламбер"]


def test_category_prior_follows_the_words_seen_with_each_category(lexicon):
    prior = lexicon.category_log_prior("молоко 1л")
    assert max(prior, key=prior.get) == "dairy"
    assert lexicon.category_log_prior("xyz") == {}


def test_the_lexicon_file_round_trips_and_refuses_another_format(lexicon, tmp_path):
    lexicon.write(tmp_path)
    assert read_lexicon(tmp_path) == lexicon
    document = json.loads((tmp_path / "lexicon.json").read_text(encoding="utf-8"))
    document["format"] = 99
    (tmp_path / "lexicon.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match="format 99.*rebuild"):
        read_lexicon(tmp_path)
    assert read_lexicon(tmp_path / "nowhere") == Lexicon()
