import shutil
import socket
import subprocess
import time
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.stages.cache import AnswerCache, LruStore, cache_key, decode_answer, encode_answer
from model.item_key import item_key
from model.parser import parse_answer
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()


def _answer(text: str, status: ItemStatus = ItemStatus.OK):
    return replace(parse_answer(f"{text}##Сок##-##Напитки", text, TAXONOMY), status=status)


def test_item_key_ignores_case_spacing_article_code_and_quantity_tail_but_keeps_numbers():
    same = ["СОК ЯБЛ 1Л", " сок  ябл 1л ", "36572156371 СОК ЯБЛ 1Л", "СОК ЯБЛ 1Л 1.000 x 469.90", "СОК ЯБЛ 1Л 2 х 99,90"]
    assert len({item_key(s) for s in same}) == 1
    assert item_key("МОЛОКО 3,2%") != item_key("МОЛОКО 2,5%")
    assert item_key("ёж") == item_key("ЕЖ")


def test_a_name_that_is_only_a_quantity_tail_keeps_a_key_of_its_own():
    assert item_key(" 2 x 99") == "2 x 99"
    assert item_key("СОК 2 x 99") == "сок"


@pytest.mark.timeout(60)  # a completion guard, not a speed check: a quadratic key would take hours here
def test_item_keys_of_hostile_strings_are_computed_and_distinct_where_the_product_differs():
    hostile = {
        "space run": " " * 1_000_000 + "СОК 1 x 2",
        "digit and space runs": ("1 " * 300_000) + "x",
        "tail repeated": " 1 x 1" * 100_000,
        "long digit run": "1" * 1_000_000 + " x 2",
        "nul and controls": "СОК\x00\x1b[31m ЯБЛ",
        "lone surrogate": "СОК \ud800 ЯБЛ",
        "combining marks": "СОК" + "\u0301" * 10_000,
        "right-to-left override": "\u202eКОС",
    }
    keys = {name: cache_key("v1", text) for name, text in hostile.items()}
    assert all(len(key) == len("enr:v1:") + 32 for key in keys.values())
    assert len(set(keys.values())) == len(keys)
    assert item_key(hostile["space run"]) == "сок"


def test_equivalent_spellings_share_one_cache_entry():
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    cache.store({"36572156371 СОК ЯБЛ 1Л 1.000 x 469.90": _answer("СОК ЯБЛ 1Л")})
    assert set(cache.lookup(["сок  ябл 1л", "СОК ЯБЛ 1Л 2 х 99,90", "СОК ЯБЛ 2Л"])) == {"сок  ябл 1л", "СОК ЯБЛ 1Л 2 х 99,90"}


def test_lookup_recent_finds_answers_stored_after_a_miss_and_keeps_the_counts_consistent():
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    assert cache.lookup(["СОК", "ХЛЕБ"]) == {}
    cache.store({"СОК": _answer("СОК")})  # the take before, finishing while this one waited for the model
    assert set(cache.lookup_recent(["СОК", "ХЛЕБ"])) == {"СОК"}
    assert (cache.hits_local, cache.hits_shared, cache.misses) == (1, 0, 1)


def test_the_lru_stays_bounded_and_consistent_under_concurrent_readers_and_writers():
    import threading

    store = LruStore(500)
    errors = []

    def work(offset: int) -> None:
        try:
            for i in range(3000):
                store.put_many({f"k{offset}-{i}": b"v"})
                store.get_many([f"k{offset}-{i // 2}", f"k{1 - offset}-{i}"])
        except Exception as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(store) == 500


@given(st.text(max_size=5000))
def test_cache_keys_are_bounded_and_safe_for_any_input(text):
    key = cache_key("v1", text)
    assert key.startswith("enr:v1:") and len(key) == len("enr:v1:") + 32
    assert key.isascii() and "\n" not in key


def test_repeats_are_answered_from_the_cache_and_model_errors_are_not_cached():
    cache = AnswerCache("v1", TAXONOMY, LruStore(100))
    assert cache.lookup(["СОК ЯБЛ 1Л"]) == {}
    cache.store({"СОК ЯБЛ 1Л": _answer("СОК ЯБЛ 1Л"), "СЛОМАНО": _answer("СЛОМАНО", ItemStatus.MODEL_ERROR)})
    found = cache.lookup(["сок ябл 1л", "СЛОМАНО"])
    assert set(found) == {"сок ябл 1л"}
    assert found["сок ябл 1л"].product == "Сок"
    assert (cache.hits_local, cache.misses) == (1, 2)


def test_a_new_model_version_never_sees_old_answers():
    store = LruStore(100)
    old = AnswerCache("v1", TAXONOMY, store)
    old.store({"СОК": _answer("СОК")})
    assert AnswerCache("v2", TAXONOMY, store).lookup(["СОК"]) == {}
    assert set(AnswerCache("v1", TAXONOMY, store).lookup(["СОК"])) == {"СОК"}


def test_the_lru_evicts_the_least_recently_used_entry():
    store = LruStore(2)
    store.put_many({"a": b"1", "b": b"2"})
    store.get_many(["a"])
    store.put_many({"c": b"3"})
    assert set(store.get_many(["a", "b", "c"])) == {"a", "c"}
    assert len(store) == 2


def test_a_cached_answer_costs_hundreds_of_bytes_not_kilobytes():
    import tracemalloc

    cache = AnswerCache("default-s1234-0939155f", TAXONOMY, LruStore(10_000))
    answers = {f"МОЛОКО ПАСТ 3,2% 930МЛ {i}": _answer(f"МОЛОКО ПАСТ 3,2% 930МЛ {i}") for i in range(2000)}
    tracemalloc.start()
    try:
        cache.store(answers)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / len(answers) < 1000, f"{held / len(answers):.0f} bytes per cached answer"


def test_an_entry_that_no_longer_decodes_is_a_miss_not_an_error():
    assert decode_answer(b"not json", TAXONOMY) is None
    assert decode_answer(b'{"n":"x","p":"x","b":null,"c":"gone","s":"ok"}', TAXONOMY) is None
    assert decode_answer(encode_answer(_answer("СОК")), TAXONOMY) == _answer("СОК")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.mark.integration
def test_the_shared_store_survives_a_worker_restart_and_is_shared_between_workers(redis_url):
    from app.kafka.redis_store import RedisAnswerStore

    first_worker = AnswerCache("v1", TAXONOMY, LruStore(10), RedisAnswerStore(redis_url, ttl_s=60))
    first_worker.store({"СОК ЯБЛ 1Л": _answer("СОК ЯБЛ 1Л")})
    second_worker = AnswerCache("v1", TAXONOMY, LruStore(10), RedisAnswerStore(redis_url, ttl_s=60))
    assert set(second_worker.lookup(["сок ябл 1л"])) == {"сок ябл 1л"}
    assert second_worker.hits_shared == 1
    assert set(second_worker.lookup(["сок ябл 1л"])) == {"сок ябл 1л"}
    assert second_worker.hits_local == 1  # promoted into the local LRU


@pytest.mark.integration
def test_an_unreachable_redis_degrades_to_misses_and_counts_failures():
    from app.kafka.redis_store import RedisAnswerStore

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    store = RedisAnswerStore(f"redis://127.0.0.1:{dead_port}/0", ttl_s=60)
    cache = AnswerCache("v1", TAXONOMY, LruStore(10), store)
    cache.store({"СОК": _answer("СОК")})
    assert set(cache.lookup(["СОК"])) == {"СОК"}  # still served from the local level
    assert cache.lookup(["ДРУГОЕ"]) == {}
    assert store.failures == 2
