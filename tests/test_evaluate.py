import numpy as np

from qsearch.evaluate import choose_threshold, classification_metrics, duplicate_retrieval, known_duplicates, known_for, metrics_by_kind, nearest, retrieval_metrics, roc_auc, roc_auc_covariance, roc_auc_difference, roc_auc_interval


def test_metrics_on_a_hand_checked_example():
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.7])
    labels = np.array([1, 0, 1, 0, 0])
    m = classification_metrics(scores, labels, 0.5)
    assert m["confusion_matrix"] == [[1, 2], [1, 1]]
    assert m["accuracy"] == 0.4 and m["precision"] == 1 / 3 and m["recall"] == 0.5
    assert abs(m["roc_auc"] - 4 / 6) < 1e-9


def test_each_kind_is_scored_against_the_pairs_of_the_other_label():
    scores = np.array([0.9, 0.5, 0.8, 0.6, 0.7, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    kinds = ["typo", "other-words", "other-words", "near-miss", "near-miss", ""]
    m = metrics_by_kind(scores, labels, kinds, 0.65)
    assert list(m) == ["typo", "other-words", "near-miss", "(none)"]
    assert m["other-words"]["pairs"] == 2 and m["other-words"]["duplicates"] == 2
    assert m["other-words"]["mean_score"] == (0.5 + 0.8) / 2 and m["other-words"]["accuracy"] == 0.5
    assert m["other-words"]["roc_auc"] == roc_auc(np.array([0.5, 0.8, 0.6, 0.7, 0.2]), np.array([1, 1, 0, 0, 0]))
    assert m["near-miss"]["accuracy"] == 0.5 and m["near-miss"]["roc_auc"] == roc_auc(np.r_[scores[:3], 0.6, 0.7], np.array([1, 1, 1, 0, 0]))
    assert metrics_by_kind(scores[:2], np.array([1, 0]), ["both", "both"], 0.65)["both"]["roc_auc"] == 1.0


def test_roc_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 0.3 + rng.random(300), 2)
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert abs(roc_auc(scores, labels) - brute) < 1e-9


def test_roc_auc_variance_on_a_hand_checked_example():
    """Duplicates 0.9, 0.6 against non-duplicates 0.7, 0.1, 0.6: per duplicate the share of
    non-duplicates it beats is 1 and 0.5 (a tie counts half); per non-duplicate the share of
    duplicates above it 0.5, 1, 0.75. DeLong's variance: 0.125 / 2 + 0.0625 / 3."""
    scores, labels = np.array([0.9, 0.6, 0.7, 0.1, 0.6]), np.array([1, 1, 0, 0, 0])
    auc, cov = roc_auc_covariance([scores], labels)
    assert auc[0] == roc_auc(scores, labels) == 0.75
    assert abs(cov[0, 0] - (0.125 / 2 + 0.0625 / 3)) < 1e-12
    low, high = roc_auc_interval(scores, labels)
    assert abs(low - (0.75 - 1.959964 * cov[0, 0] ** 0.5)) < 1e-5 and high == 1.0  # clipped


def test_roc_auc_interval_agrees_with_a_bootstrap():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    first = labels * 0.8 + rng.normal(size=400)
    second = first + rng.normal(scale=0.8, size=400)
    d = roc_auc_difference(first, second, labels)
    assert abs(d["difference"] - (roc_auc(first, labels) - roc_auc(second, labels))) < 1e-12
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    draws = [np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))] for _ in range(2000)]
    boot = np.std([roc_auc(first[i], labels[i]) - roc_auc(second[i], labels[i]) for i in draws])
    half = (d["interval"][1] - d["interval"][0]) / 2
    assert abs(half / 1.959964 - boot) < 0.1 * boot
    alone = roc_auc_interval(second, labels)
    assert half < (alone[1] - alone[0]) / 2  # the pairs are shared, so the difference is known better than either ROC-AUC


def test_a_model_against_itself_differs_by_nothing():
    scores, labels = np.array([0.9, 0.6, 0.7, 0.1, 0.6]), np.array([1, 1, 0, 0, 0])
    assert roc_auc_difference(scores, scores, labels) == {"difference": 0.0, "interval": (0.0, 0.0), "p_value": 1.0}


def test_chosen_threshold_is_the_accuracy_best_one():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = labels * 0.4 + rng.random(500)
    t = choose_threshold(scores, labels)["accuracy"]
    best = max(((scores > c) == labels).mean() for c in np.r_[scores, -1.0])
    assert classification_metrics(scores, labels, t)["accuracy"] == best


def test_retrieval_metrics():
    ranked = np.array([[5, 1, 2], [3, 4, 9], [7, 8, 6]])
    m = retrieval_metrics(ranked, [{5}, {9}, {0}])
    assert m["recall@1"] == 1 / 3 and m["recall@10"] == 2 / 3
    assert abs(m["mrr@10"] - (1 + 1 / 3) / 3) < 1e-9


def test_a_known_duplicate_first_counts_for_known_at_1_but_not_for_recall_at_1():
    ranked = np.array([[7, 5, 2], [3, 4, 9]])
    m = retrieval_metrics(ranked, [{5}, {9}], known=[{5, 7}, {9}])
    assert m["recall@1"] == 0 and m["known@1"] == 1 / 2 and m["known@10"] == 1


def test_known_duplicates_follow_the_labelled_pairs_through_each_other_and_leave_the_question_out():
    ids = {"a": 0, "b": 1, "c": 2, "d": 3}
    known = known_duplicates(["a ", "b", "d", "e"], ["b", "c", "d", "f"], ids)
    assert known["a"] == {1, 2} and known["c"] == {0, 1}
    assert "d" not in known  # a question paired with itself says nothing
    assert known["e"] == set()  # neither question of that pair is indexed
    assert known_for(["a"], {"a": {1}}, known) == [{1, 2}]


def test_cluster_threshold_is_the_lowest_with_precision_0_8():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 2000)
    scores = labels * 0.5 + rng.random(2000)
    t = choose_threshold(scores, labels)
    assert classification_metrics(scores, labels, t["cluster"])["precision"] >= 0.8
    assert classification_metrics(scores, labels, t["cluster"] - 0.02)["precision"] < 0.8


class UnitBagOfWords:
    """Stands in for an encoder: unit bag-of-words vectors, so word overlap decides the ranking."""

    def encode(self, texts):
        from conftest import HashTeacher

        v = HashTeacher().encode(list(texts))
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def test_duplicate_retrieval_searches_the_pool_and_leaves_the_query_itself_out():
    pool = ["how do i cook rice", "what is the capital of peru", "how old is the universe"]
    first = ["how to cook rice well", "capital of peru", "is the sun a star"]
    second = ["how do i cook rice", "peru capital city facts", "sun star"]
    found = duplicate_retrieval(UnitBagOfWords(), pool, first, second, k=2)
    assert found["queries"] == 3
    # rice and sun find their partners first; "capital of peru" finds the pool's Peru question
    # (three shared words) before its partner (two), which is still in the top 2
    assert found["recall@1"] == 2 / 3 and found["recall@10"] == 1.0


def test_duplicate_retrieval_counts_a_duplicate_labelled_in_another_pair_as_known():
    pool = ["how do i cook rice at home"]
    first, second = ["how to cook rice at home"], ["rice cooking tips"]
    labelled = (first + ["how do i cook rice at home"], second + ["rice cooking tips"])
    found = duplicate_retrieval(UnitBagOfWords(), pool, first, second, k=2, labelled=labelled)
    # the pool's rice question shares the most words and comes first: not the labelled partner,
    # but another pair makes it a duplicate of the partner, so of the query
    assert found["recall@1"] == 0 and found["known@1"] == 1
    assert "known@1" not in duplicate_retrieval(UnitBagOfWords(), pool, first, second, k=2)


def test_duplicate_retrieval_ignores_pairs_of_a_question_with_itself():
    found = duplicate_retrieval(UnitBagOfWords(), ["a b c"], ["same words", "x y"], ["same words", "x z"])
    assert found["queries"] == 1


def test_exact_search_holds_at_most_its_memory_budget_of_scores_and_finds_the_same_neighbours():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    own = np.arange(300)
    whole = [(start, top.copy()) for start, top, _ in nearest(vectors, vectors, own, 3, chunk=300)]
    budget = 4 * 300 * 7  # seven rows of scores against 300 vectors
    parts = [(start, top.copy(), scores.nbytes) for start, top, scores in nearest(vectors, vectors, own, 3, chunk=300, max_bytes=budget)]
    assert len(whole) == 1 and len(parts) == 43 and max(size for _, _, size in parts) <= budget
    assert np.array_equal(np.concatenate([top for _, top, _ in parts]), whole[0][1])
    assert [start for start, _, _ in parts] == list(range(0, 300, 7))
