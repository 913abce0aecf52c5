"""Chapters 2 and 3 components, each pinned exactly: StoryWorld, the crawl,
cleaning, PII and deduplication (the pipeline is in test_data_pipeline)."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest

from scratchllm.data import lexicon
from scratchllm.data.clean import (FilterConfig, decode, language_reason,
                                   normalise, quality_reason, quality_stats,
                                   repeated_fraction)
from scratchllm.data.crawl import (Crawl, luhn_check_digit, pair_scores,
                                   pii_scores, true_clusters)
from scratchllm.data.dedup import (LSHConfig, Shingler, candidate_pairs,
                                   choose_bands, dedup_key,
                                   exact_duplicates, jaccard,
                                   near_duplicates, s_curve,
                                   shingle_strings, signatures)
from scratchllm.data.pii import find_pii, ipv4_valid, luhn_valid, redact
from scratchllm.data.storyworld import (ALL_TEMPLATES, NAMES, Derivation,
                                        Menu, StoryWorld, count_parses,
                                        derivations, is_grammatical,
                                        split_sentences, with_articles)


# --- StoryWorld -------------------------------------------------------

def test_menu_probabilities_are_exact_and_exclusion_renormalises():
    menu = Menu(["a", "b", "c"], [1.0, 1.0, 2.0])
    d = Derivation(random.Random(0))
    picks = [d.pick(menu, exclude="c") for _ in range(10)]
    assert set(picks) <= {"a", "b"}
    assert d.log2prob == pytest.approx(-10.0)  # p = 1/2 each, exactly
    d = Derivation(random.Random(1))
    heads = d.chance(0.25)
    assert d.log2prob == pytest.approx(math.log2(0.25 if heads else 0.75))
    zipf = Menu(["x", "y"])
    assert zipf.weights == (1 / 2, 1 / 3)


def test_menu_refuses_duplicates_and_name_lists_are_disjoint():
    with pytest.raises(ValueError, match="distinct"):
        Menu(["a", "a"])
    with pytest.raises(ValueError, match="only option"):
        Derivation(random.Random(0)).pick(Menu(["a"]), exclude="a")
    she, he, it = map(set, NAMES.values())
    assert not (she & he or she & it or he & it)


def test_stories_are_deterministic_and_random_access():
    world = StoryWorld(3)
    stream = world.stories()
    first = [next(stream) for _ in range(3)]
    assert first == [StoryWorld(3).story(i) for i in range(3)]
    assert StoryWorld(4).story(0).text != first[0].text
    assert first[0].id == "storyworld-3-0"


def test_story_shape_facts_and_log_probability():
    stories = [StoryWorld(0).story(i) for i in range(200)]
    for story in stories:
        size = len(story.text.encode("utf-8"))
        assert 300 <= size <= 1500
        assert story.text.count("\n\n") == 4  # five paragraphs
        assert story.log2prob < 0
        for key in ("who", "friend", "what"):
            assert story.facts[key] in story.text
        assert story.facts["outcome"] in ("success", "failure")
    assert len({s.text for s in stories}) == len(stories)
    assert {s.facts["pronoun"] for s in stories} == {"she", "he", "it"}


def test_every_sentence_has_exactly_one_derivation():
    for index in range(150):
        for sentence in split_sentences(StoryWorld(7).story(index).text):
            assert derivations(sentence) == 1, sentence


def test_validator_accepts_the_grammar_and_rejects_the_rest():
    sentence = "Once upon a time, there was a brave boy named Tom."
    assert is_grammatical(sentence)
    assert not is_grammatical(sentence.replace("Tom", "Zorblax"))
    assert not is_grammatical(sentence.replace("brave", "brave brave"))
    assert not is_grammatical("The boy named Tom was brave.")
    assert is_grammatical('"Oh no!" cried Mia, feeling sad.')
    assert count_parses("Tom felt very sad.", "{name} felt very {sad}.") == 1


def test_articles_and_sentence_splitting():
    assert with_articles("a owl and a unicorn saw A elephant") == \
        "an owl and a unicorn saw An elephant"
    text = 'Tom was sad. "Oh no!" cried Tom. Mia said, "Hi."\n\nThe end.'
    assert split_sentences(text) == [
        "Tom was sad.", '"Oh no!" cried Tom.', 'Mia said, "Hi."',
        "The end."]


def test_vocabulary_has_at_least_1500_words():
    words = set()
    for name, values in vars(lexicon).items():
        if name.isupper():
            for phrase in values:
                words.update(re.findall(r"[a-z]+", phrase.lower()))
    for template in ALL_TEMPLATES:
        words.update(re.findall(r"[a-z]+",
                                re.sub(r"\{\w+\}", " ", template).lower()))
    assert len(words) >= 1500


# --- the crawl ----------------------------------------------------------

@pytest.fixture(scope="module")
def crawl():
    return list(Crawl(0).documents(600))


def test_crawl_is_deterministic_and_labelled(crawl):
    again = list(Crawl(0).documents(600))
    assert [d.text for d in again] == [d.text for d in crawl]
    for doc in crawl:
        assert isinstance(doc.text, bytes)
        assert doc.meta["expect"] in ("keep", "drop")
        text = normalise(decode(doc.text).text)
        for kind, value in doc.meta["pii"]:
            assert value in text, (kind, value)


def test_crawl_copies_match_their_originals(crawl):
    by_id = {d.id: d for d in crawl}
    exact = [d for d in crawl if d.meta["exact_dup_of"]]
    near = [d for d in crawl if d.meta["near_dup_of"]]
    assert exact and near
    for doc in exact:
        original = by_id[doc.meta["exact_dup_of"]]
        assert doc.text != original.text
        assert dedup_key(doc.text.decode()) == dedup_key(
            original.text.decode())
    shingle = LSHConfig().shingle
    for doc in near:
        a = shingle_strings(doc.text.decode(), shingle)
        b = shingle_strings(by_id[doc.meta["near_dup_of"]].text.decode(),
                            shingle)
        assert 0.8 <= len(a & b) / len(a | b) < 1.0


def test_luhn_check_digit_makes_valid_numbers():
    for body in ("7992739871", "453914880343646", "400000000000000"):
        assert luhn_valid(body + luhn_check_digit(body)) == (
            len(body) + 1 >= 13)
    assert luhn_check_digit("7992739871") == "3"


def test_scores_on_toy_inputs():
    scores = pii_scores([([["email", "a@b.io"], ["card", "1"]],
                          [("email", "a@b.io"), ("phone", "2")])])
    assert scores["email"] == {"precision": 1.0, "recall": 1.0,
                               "true": 1, "found": 1}
    assert scores["card"]["recall"] == 0.0
    assert scores["phone"]["precision"] == 0.0
    # clusters {0,1,2} predicted as {0,1},{2}: 1 of 3 true pairs found
    assert pair_scores([0, 0, 2], ["a", "a", "a"]) == {
        "precision": 1.0, "recall": 1 / 3, "true_pairs": 3,
        "found_pairs": 1}


def test_true_clusters_follow_chains():
    from scratchllm.data.sources import Document

    docs = [Document("a", "", "s", "l", {}),
            Document("b", "", "s", "l", {"near_dup_of": "a"}),
            Document("c", "", "s", "l", {"exact_dup_of": "b"})]
    assert true_clusters(docs) == ["a", "a", "a"]


# --- cleaning -------------------------------------------------------------

def test_decode_counts_replacements_and_repairs_mojibake():
    assert decode(b"ab\xffcd\xfe").replaced == 2
    broken = "I’m at the café".encode("utf-8").decode("cp1252")
    fixed = decode(broken.encode("utf-8"))
    assert fixed.repaired and fixed.text == "I’m at the café"
    left = decode("Ã© next to 日本")  # not cp1252-encodable: left alone
    assert not left.repaired and left.text == "Ã© next to 日本"


def test_normalise_is_exact():
    assert normalise("  Cafe\u0301\t\tau   lait\x07\r\n\n\n\nbye ") == \
        "Caf\u00e9 au lait\n\nbye"
    assert normalise("a\ufffdb") == "ab"


def test_quality_rules():
    config = FilterConfig()
    story = StoryWorld(0).story(0).text
    assert quality_reason(quality_stats(story), config) is None
    assert quality_reason(quality_stats("the cat"), config) == \
        "too_few_words"
    spam = "\n".join(["buy cheap pills now the best and of deal"] * 20)
    assert quality_reason(quality_stats(spam), config) == "duplicate_lines"
    gibberish = " ".join(["xkcdq bvnrt"] * 40)
    assert quality_reason(quality_stats(gibberish), config) == \
        "few_stop_words"
    assert repeated_fraction("a b c d e a b c d e".split(), 5) == 1.0
    assert repeated_fraction("a b c d e f".split(), 5) == 0.0


def test_language_check():
    config = FilterConfig()
    french = "Le chien est très beau et nous allons à la plage. " * 5
    assert language_reason(french, config) == "language:fr"
    assert language_reason(StoryWorld(0).story(1).text, config) is None
    assert language_reason("xkq zzv", config) is None  # no evidence


# --- PII ------------------------------------------------------------------

def test_validators():
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("79927398713")  # valid Luhn, too short for a card
    assert ipv4_valid("192.168.1.1") and ipv4_valid("8.8.8.8")
    for address in ("256.1.1.1", "01.2.3.4", "0.1.2.3", "255.255.255.255",
                    "1.2.3"):
        assert not ipv4_valid(address), address


def test_redaction_is_exact_and_skips_decoys():
    text = ("Mail ann.lee7@example.com or call (555) 123-4567; card "
            "4539 1488 0343 6467, order 4539 1488 0343 6468, server "
            "10.0.0.12, version 1.2.300.4, home 12 Oak Street, "
            "Springfield, IL 62704.")
    redacted, counts = redact(text)
    assert redacted == ("Mail [EMAIL] or call [PHONE]; card [CARD], order "
                        "4539 1488 0343 6468, server [IPV4], version "
                        "1.2.300.4, home [ADDRESS].")
    assert counts == {"email": 1, "phone": 1, "card": 1, "ipv4": 1,
                      "address": 1}
    findings = find_pii(text)
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:]))


def test_pii_scores_on_the_crawl(crawl):
    kept = [d for d in crawl if d.meta["expect"] == "keep"]
    scores = pii_scores([
        (d.meta["pii"], [(f.kind, f.value) for f in
                         find_pii(normalise(decode(d.text).text))])
        for d in kept])
    assert set(scores) == {"email", "phone", "ipv4", "card", "address"}
    for kind, s in scores.items():
        assert s["precision"] >= 0.95 and s["recall"] >= 0.95, kind


# --- deduplication --------------------------------------------------------

def test_exact_duplicates_on_normalised_text():
    texts = ["Hello,  World!", "hello world", "Hello world?", "other",
             "ＨＥＬＬＯ world"]
    assert exact_duplicates(texts) == [None, 0, 0, None, 0]


def test_shingler_layout():
    hashes, offsets = Shingler(3)(["a b c d", "x y", "", "a b c d"])
    assert offsets.tolist() == [0, 2, 3, 3, 5]
    assert hashes.dtype == np.uint32
    assert hashes[0:2].tolist() == hashes[3:5].tolist()
    assert len(set(hashes[0:3].tolist())) == 3
    assert shingle_strings("A b, c d", 3) == {"a b c", "b c d"}


def texts_for_lsh(n: int = 120) -> list[str]:
    """Stories plus near copies of the first twenty."""
    stories = [StoryWorld(1).story(i).text for i in range(n)]
    rng = random.Random(0)
    copies = []
    for text in stories[:20]:
        words = text.split(" ")
        words[rng.randrange(len(words))] = "zebra"
        copies.append(" ".join(words))
    return stories + copies


def test_signatures_and_candidates_match_datasketch_exactly():
    from datasketch import MinHash, MinHashLSH

    texts = texts_for_lsh()
    config = LSHConfig()
    hashes, offsets = Shingler(config.shingle)(texts)
    sig = signatures(hashes, offsets, config.num_perm, config.seed,
                     chunk=500)
    index = MinHashLSH(num_perm=config.num_perm,
                       params=(config.bands, config.rows))
    minhashes = []
    for i in range(len(texts)):
        m = MinHash(num_perm=config.num_perm, seed=config.seed,
                    hashfunc=lambda x: x)
        m.update_batch(hashes[offsets[i]:offsets[i + 1]].tolist())
        assert (m.hashvalues == sig[i]).all()
        index.insert(i, m)
        minhashes.append(m)
    theirs = {(min(i, j), max(i, j)) for i, m in enumerate(minhashes)
              for j in index.query(m) if i != j}
    ours = set(map(tuple, candidate_pairs(sig, config.bands,
                                          config.rows).tolist()))
    assert ours == theirs
    assert {(i, 120 + i) for i in range(20)} <= ours


def test_signature_agreement_estimates_jaccard():
    texts = texts_for_lsh(40)
    hashes, offsets = Shingler(3)(texts)
    sig = signatures(hashes, offsets, 256)
    sets = [np.unique(hashes[offsets[i]:offsets[i + 1]])
            for i in range(len(texts))]
    for i, j in [(0, 40), (1, 41), (0, 1), (2, 3)]:
        true = jaccard(sets[i], sets[j])
        estimate = (sig[i] == sig[j]).mean()
        assert abs(estimate - true) < 4 * math.sqrt(
            max(true * (1 - true), 0.01) / 256)


def test_near_duplicates_cluster_and_keep_the_first():
    texts = texts_for_lsh(60)
    result = near_duplicates(texts, LSHConfig())
    for i in range(20):
        assert result.cluster[60 + i] == i
    assert result.keep == [True] * 60 + [False] * 20
    assert all(s >= 0.8 for _, _, s in result.pairs)


def test_empty_documents_never_become_candidates():
    hashes, offsets = Shingler(3)(["", "", "a b c"])
    sig = signatures(hashes, offsets, 16)
    assert candidate_pairs(sig, 4, 4).shape == (0, 2)
    with pytest.raises(ValueError, match="bands"):
        candidate_pairs(sig, 5, 4)


def test_s_curve_and_band_choice_match_datasketch():
    from datasketch.lsh import _optimal_param

    assert s_curve(np.array([0.5]), 2, 1)[0] == pytest.approx(0.75)
    assert s_curve(np.array([1.0]), 20, 6)[0] == 1.0
    for threshold, perms in ((0.8, 128), (0.5, 64)):
        assert choose_bands(threshold, perms) == _optimal_param(
            threshold, perms, 0.5, 0.5)
