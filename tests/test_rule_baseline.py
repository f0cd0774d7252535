"""The dictionary rule and the morphology of the product's head noun (pure; pymorphy3, no torch)."""

from model.product_noun import nominative_head
from training.rule_baseline import DictionaryRule, first_noun


def test_the_rule_takes_the_first_cyrillic_word_and_the_longest_whole_word_brand():
    rule = DictionaryRule(["чудо", "чудо молоко", "lipton", "ла"])
    assert rule.product("36572156371 вино бон вояж") == "вино"
    assert rule.product("LIPTON YELLOW LABEL") is None
    assert rule.brand("коктейль ЧУДО МОЛОКО 2%") == "чудо молоко"
    assert rule.brand("ЧАЙ LIPTON 25ПАК") == "lipton"
    assert rule.brand("сок лавка 1л") is None  # "ла" only as a whole word


def test_first_noun_skips_adjectives_as_written():
    assert first_noun("свежий хлеб нарезной") == "хлеб"
    assert first_noun("123 abc") is None


def test_the_head_noun_goes_to_the_nominative_keeping_its_number_and_case():
    assert nominative_head("Колготок") == "Колготки"
    assert nominative_head("йогурта питьевого") == "йогурт питьевого"
    assert nominative_head("Мешков для мусора") == "Мешки для мусора"
    assert nominative_head("ЯБЛОК") == "ЯБЛОКИ"


def test_a_word_with_a_nominative_reading_or_not_russian_is_left_alone():
    for product in ("Батарейки", "Сок", "Паста зубная", "Lipton", "Молоко", "Т/бумага", ""):
        assert nominative_head(product) == product
