from training.scoring import (
    Gold,
    Prediction,
    benchmark_scores,
    brand_points,
    exact_scores,
    macro_f1,
    product_points,
    worst_confusions,
)


def test_product_scores_right_partly_right_and_wrong():
    assert product_points("Сок", "сок") == 1.0
    assert product_points("Сок яблочный", "сок") == 1.0  # the head noun decides
    assert product_points("Молоко сгущенное", "молоко сгущенное") == 1.0
    assert product_points("Рулет", "рулет бисквитный") == 1.0
    assert product_points("Йогурт", "йог") == 0.5
    assert product_points("Хлеб", "батон") == 0.0
    assert product_points(None, "батон") == 0.0


def test_brand_scores_fold_case_quotes_and_script():
    assert brand_points(None, None) == 1.0
    assert brand_points("Nescafe", "nescafe") == 1.0
    assert brand_points("Campina", "КАМПИНА") == 1.0
    assert brand_points('"Фрекен Бок"', "фрекен бок") == 1.0
    assert brand_points("Семейка Озби", "озби") == 0.5
    assert brand_points("Lipton", None) == 0.0
    assert brand_points(None, "Lipton") == 0.0


def test_macro_f1_weights_every_category_equally():
    assert macro_f1(["a", "a", "b"], ["a", "a", "b"]) == 1.0
    # 'b' is never predicted: its F1 is 0, 'a' gets 2*2/(2*2+1) = 0.8
    assert abs(macro_f1(["a", "a", "a"], ["a", "a", "b"]) - 0.4) < 1e-9


def test_exact_and_benchmark_scores_count_fields_independently():
    predictions = [
        Prediction("Сок Добрый яблочный 1 л", "Сок", "Добрый", "beverages", True),
        Prediction("Хлеб", "Хлеб", None, "bakery", False),
    ]
    golds = [Gold("Сок Добрый яблочный 1 л", "Сок", "Добрый", "beverages"), Gold("Батон нарезной", "Батон", None, "bakery")]
    exact = exact_scores(predictions, golds)
    assert exact["parsed"] == 0.5 and exact["product"] == 0.5 and exact["brand"] == 1.0 and exact["category"] == 1.0
    assert 0.5 < exact["name_similarity"] < 1.0
    bench = benchmark_scores(predictions, golds)
    assert bench["product"] == 0.5


def test_worst_confusions_are_counted_gold_to_predicted():
    assert worst_confusions(["a", "b", "b"], ["a", "a", "a"]) == [("a", "b", 2)]
