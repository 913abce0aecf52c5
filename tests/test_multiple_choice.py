"""Chapter 10, multiple choice: distractors that give a frequency prior
nothing, the context-free baselines, and the intervals (Wilson for one
accuracy, Newcombe's paired one for a difference)."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter

import numpy as np
import pytest

from scratchllm.data.storyworld import StoryWorld
from scratchllm.eval.multiple_choice import (ChoiceResult, Question, Unigram,
                                             consistency_question,
                                             entity_weights, evaluate_scorer,
                                             paired_difference_interval,
                                             story_questions,
                                             wilson_interval,
                                             without_context)


def records(seed: int, count: int) -> list[dict]:
    return [{"text": s.text, "facts": s.facts}
            for s in itertools.islice(StoryWorld(seed=seed).stories(), count)]


def swapped_word(question: Question, index: int) -> str:
    """The word by which choice index differs from the other choices."""
    words = [set(re.findall(r"\w+", c)) for c in question.choices]
    (word,) = words[index] - set.intersection(*words)
    return word


def source(question: Question, stories: list[dict]) -> int:
    """The index of the story the question was cut from."""
    truth = question.context + question.choices[question.answer]
    return next(i for i, r in enumerate(stories)
                if r["text"].startswith(truth))


def most_frequent_accuracy(questions: list[Question],
                           frequency: Counter) -> float:
    """Accuracy of "pick the option whose name (or object) is the most
    frequent in the training stories" (the first of equals)."""
    right = 0
    for question in questions:
        counts = [frequency[swapped_word(question, i)]
                  for i in range(len(question.choices))]
        right += counts.index(max(counts)) == question.answer
    return right / len(questions)


def test_a_frequency_prior_is_at_chance_with_matched_distractors() -> None:
    training = records(seed=6, count=3000)
    frequency = Counter(r["facts"][role] for r in training
                        for role in ("who", "what"))
    stories = records(seed=5, count=3000)
    matched = story_questions(stories, len(stories), seed=0)
    n = len(matched)
    assert n > 2000
    # If the answer is exchangeable with the distractors, any rule that
    # sees only the options is right with probability 1/4 on each of n
    # independent questions: allow four binomial standard deviations.
    tolerance = 4 * math.sqrt(0.25 * 0.75 / n)
    accuracy = most_frequent_accuracy(matched, frequency)
    assert abs(accuracy - 0.25) < tolerance, (accuracy, tolerance)
    # Uniformly drawn distractors are the trap: the prior wins easily.
    uniform = story_questions(stories, len(stories), seed=0, matched=False)
    assert most_frequent_accuracy(uniform, frequency) > 0.25 + 10 * tolerance


def test_distractors_are_drawn_as_often_as_they_are_answers() -> None:
    stories = records(seed=7, count=400)
    names = entity_weights(stories, "who")
    assert set(names) == {"she", "he", "it"}
    for pronoun, weights in names.items():
        assert weights == dict(sorted(Counter(
            r["facts"]["who"] for r in stories
            if r["facts"]["pronoun"] == pronoun).items()))
    objects = entity_weights(stories, "what")
    assert objects == {"": dict(sorted(Counter(
        r["facts"]["what"] for r in stories).items()))}
    uniform = entity_weights(stories, "who", matched=False)
    assert {w for pool in uniform.values() for w in pool.values()} == {1.0}
    # Every swapped-in name is a hero's name of the story's pronoun (so
    # "she" in the sentence never points at a boy); objects are objects.
    for question in story_questions(stories, len(stories), seed=3):
        facts = stories[source(question, stories)]["facts"]
        words = {swapped_word(question, i)
                 for i in range(len(question.choices))}
        pool = (names[facts["pronoun"]] if facts["who"] in words
                else objects[""])
        assert words <= set(pool), (words, facts)


def test_the_answer_is_named_in_the_context() -> None:
    """A question about the sentence that first names the object could
    only be guessed: the context must already name the answer."""
    stories = records(seed=9, count=300)
    for question in story_questions(stories, len(stories), seed=4):
        entity = swapped_word(question, question.answer)
        assert re.search(rf"\b{entity}\b", question.context), question


def test_a_swap_touches_the_entity_only() -> None:
    """An object called "string" in "some tape and string": the sentence
    names it twice, once as a word of the template, and swapping both
    would break it; such a sentence is never asked about."""
    record = {"text": "Doris had a string. Doris loved the string. Doris "
                      "was sad. Tom fixed the string with some tape and "
                      "string.",
              "facts": {"who": "Doris", "pronoun": "she", "what": "string"}}
    pools = {"who": {"she": dict.fromkeys(["Ann", "Bea", "Eve"], 1.0)},
             "what": {"": dict.fromkeys(["ball", "kite", "cup", "hat"],
                                        1.0)}}
    asked = set()
    for seed in range(40):
        question = consistency_question(record, pools, random.Random(seed))
        if question is not None:
            asked.add(question.choices[question.answer].strip())
    assert asked == {"Doris was sad."}


def test_one_question_per_story() -> None:
    stories = records(seed=8, count=200)
    questions = story_questions(stories, len(stories), seed=1)
    assert len(questions) > 100
    sources = [source(question, stories) for question in questions]
    assert len(set(sources)) == len(questions)


def test_wilson_interval_exact_coverage() -> None:
    def coverage(n: int, p: float) -> float:
        return sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k)
                   for k in range(n + 1)
                   if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1])

    # n = 10, p = 1/2: the interval misses only for k <= 1 and k >= 9.
    assert math.isclose(coverage(10, 0.5), 1 - 2 * 11 / 1024)
    assert 0.93 < coverage(20, 0.25) < 0.97


def paired(a: int, b: int, c: int, d: int) -> tuple[list[bool], list[bool]]:
    """Answers to a + b + c + d questions: a right in both, b only in the
    first, c only in the second, d in neither."""
    first = [True] * (a + b) + [False] * (c + d)
    second = [True] * a + [False] * b + [True] * c + [False] * d
    return first, second


def test_paired_interval_known_values() -> None:
    # The Cavo et al. (2012) table, 59/6/16/80, worked in chapter 9 ("The
    # paired 2x2 table") of Fagerland, Lydersen & Laake, Statistical
    # Analysis of Contingency Tables (2017): -0.0621 (-0.1186 to -0.0046).
    low, high = paired_difference_interval(*paired(59, 6, 16, 80),
                                           z=1.959964)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)
    # Two identical sets of 5/10: phi = (25 - 5) / 25 = 0.8, so each
    # side is (Wilson half-width) * sqrt(2 - 2 * 0.8).
    low, high = paired_difference_interval(*paired(5, 0, 0, 5))
    w_low, w_high = wilson_interval(5, 10)
    half = (w_high - 0.5) * math.sqrt(2 - 2 * 0.8)
    assert math.isclose(high, half) and math.isclose(low, -half)
    # All right against all wrong: an empty margin makes phi 0, and the
    # two Wilson half-widths (equal, by symmetry) add in quadrature.
    low, high = paired_difference_interval([True] * 8, [False] * 8)
    w_low, _ = wilson_interval(8, 8)
    assert math.isclose(low, 1 - math.sqrt(2) * (1 - w_low))
    assert high == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_difference_interval([True], [True, False])
    with pytest.raises(ValueError, match="non-empty"):
        paired_difference_interval([], [])


def test_paired_interval_exact_coverage() -> None:
    """Coverage summed over every possible 2x2 table of n = 20 paired
    answers: near 95%, where the Wald interval (too narrow) and two
    Wilson intervals combined as if independent (too wide) are not."""
    n = 20

    def coverage(probabilities: tuple[float, ...]) -> float:
        pa, pb, pc, pd = probabilities
        total = 0.0
        for a, b, c in itertools.product(range(n + 1), repeat=3):
            d = n - a - b - c
            if d < 0:
                continue
            tables = math.factorial(n) // (
                math.factorial(a) * math.factorial(b) * math.factorial(c)
                * math.factorial(d))
            low, high = paired_difference_interval(*paired(a, b, c, d))
            if low <= pb - pc <= high:
                total += tables * pa ** a * pb ** b * pc ** c * pd ** d
        return total

    for probabilities in [(0.3, 0.2, 0.1, 0.4), (0.5, 0.1, 0.3, 0.1)]:
        assert 0.945 < coverage(probabilities) < 0.975, probabilities


def test_unigram_scores_by_frequency_alone() -> None:
    unigram = Unigram.fit([np.array([0, 0, 1], dtype=np.uint16),
                           np.array([0], dtype=np.uint16)], 3)
    assert np.allclose(np.exp(unigram.log_probs), [4 / 7, 2 / 7, 1 / 7])

    class Letters:
        def encode_ordinary(self, text: str) -> list[int]:
            return [ord(ch) - ord("a") for ch in text]

    question = Question("ignored context", ("ab", "c", "aa"), 0)
    scores = unigram.choice_scores(Letters(), question)
    assert scores[0] == pytest.approx((math.log(8 / 49), 2))
    assert scores[1] == pytest.approx((math.log(1 / 7), 1))
    result = evaluate_scorer(lambda q: unigram.choice_scores(Letters(), q),
                             [question, Question("x", ("c", "aa"), 1)])
    assert result.hits == (False, True)   # picks "aa" both times
    assert result.hits_norm == (False, True)
    with pytest.raises(ValueError, match="outside a vocabulary"):
        Unigram.fit([np.array([3])], 3)
    assert without_context(question) == Question("", question.choices, 0)


def test_choice_result_difference_is_paired() -> None:
    model = ChoiceResult((True, True, False, True), (True,) * 4, 0.25)
    baseline = ChoiceResult((True, False, False, False), (False,) * 4, 0.25)
    assert (model.questions, model.correct, model.correct_norm) == (4, 3, 4)
    gain, interval = model.minus(baseline)
    assert gain == 0.5
    assert interval == paired_difference_interval(model.hits, baseline.hits)
    assert "3/4 right" in str(model)
