from __future__ import annotations

import numpy as np
import pytest

from edge_agent.engine.postprocess import Classification, build_postprocessor


def test_logits_become_probabilities_and_top_k_is_best_first(make_manifest):
    decode = build_postprocessor(make_manifest("logits", ["cat", "dog", "fox", "owl"]), top_k=2)
    logits = np.array([[1.0, 3.0, 2.0, -1.0]], np.float32)
    got = decode([logits], None)
    e = np.exp(logits[0] - logits[0].max())
    p = e / e.sum()
    assert [c.label for c in got] == ["dog", "fox"]
    assert [c.index for c in got] == [1, 2]
    assert got[0].score == pytest.approx(p[1], rel=1e-6) and got[1].score == pytest.approx(p[2], rel=1e-6)


def test_softmax_output_that_is_already_a_distribution_is_kept(make_manifest):
    decode = build_postprocessor(make_manifest("softmax", ["a", "b", "c"]), top_k=3)
    got = decode([np.array([[0.2, 0.7, 0.1]], np.float32)], None)
    assert got == (Classification("b", pytest.approx(0.7), 1), Classification("a", pytest.approx(0.2), 0),
                   Classification("c", pytest.approx(0.1), 2))


def test_softmax_package_that_emits_logits_still_gets_probabilities(make_manifest):
    decode = build_postprocessor(make_manifest("softmax", ["a", "b"]), top_k=1)
    (top,) = decode([np.array([[-2.0, 2.0]], np.float32)], None)
    assert top.label == "b" and 0.98 < top.score < 0.99


def test_score_threshold_drops_weak_classes(make_manifest):
    decode = build_postprocessor(make_manifest("softmax", ["a", "b", "c"]), top_k=3, score_threshold=0.15)
    assert [c.label for c in decode([np.array([0.2, 0.7, 0.1])], None)] == ["b", "a"]


def test_output_size_that_does_not_match_labels_is_an_error(make_manifest):
    decode = build_postprocessor(make_manifest("softmax", ["a", "b", "c"]))
    with pytest.raises(ValueError, match="4 scores for 3 labels"):
        decode([np.zeros((1, 4))], None)


@pytest.mark.parametrize("always_softmax", [True, False])
def test_short_outputs_decode_in_python_exactly_as_the_numpy_path(always_softmax):
    from edge_agent.engine.postprocess.classification import decode_small, is_distribution, softmax, top_k

    rng = np.random.default_rng(3)
    labels = [f"c{i}" for i in range(12)]
    cases = [rng.normal(0, 3, 12), np.full(12, 0.5), rng.dirichlet(np.ones(12)), np.r_[np.full(6, 2.0), np.zeros(6)]]
    for scores in cases:
        probs = softmax(scores) if always_softmax or not is_distribution(scores) else scores
        want = top_k(probs, labels, 5)
        got = decode_small(scores.tolist(), labels, 5, always_softmax, 0.0)
        assert [c.index for c in got] == [c.index for c in want]  # ties: lower index first on both
        np.testing.assert_allclose([c.score for c in got], [c.score for c in want], rtol=1e-12)
