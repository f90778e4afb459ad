"""Trust-window classification and diverse, de-duplicated selection."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.explore.classify import (
    adaptive_lower,
    classify,
    classify_frames,
    statistics,
    stress_statistics,
)
from aloop.explore.select import farthest_point, select
from aloop.vocabulary import RejectionKind, Verdict


def test_classification_boundaries():
    dev = np.array([0.0499, 0.05, 0.2999, 0.3, 7.0, np.nan])
    assert classify(dev, 0.05, 0.3).tolist() == [
        Verdict.ACCURATE,
        Verdict.CANDIDATE,
        Verdict.CANDIDATE,
        Verdict.FAILED,
        Verdict.FAILED,
        Verdict.FAILED,
    ]
    with pytest.raises(ValueError, match="lo < hi"):
        classify(dev, 0.3, 0.3)


def test_a_frame_is_as_uncertain_as_the_worse_of_its_force_and_stress():
    force = np.array([0.01, 0.01, 0.01, 0.10, 0.10, 0.50, 0.01])
    stress = np.array([0.05, 0.50, 2.00, 0.05, 2.00, 0.05, np.nan])  # GPa; NaN: none
    before = np.zeros(force.size, bool)
    got = classify_frames(force, before, 0.05, 0.3, stress, stress_lo=0.1, stress_hi=1.0)
    A, C, F = Verdict.ACCURATE, Verdict.CANDIDATE, Verdict.FAILED
    assert got.tolist() == [A, C, F, C, F, F, A]
    # without a stress the verdicts are the force's alone
    assert classify_frames(force, before, 0.05, 0.3).tolist() == [A, A, A, C, C, F, A]
    stats = stress_statistics(stress, 0.1, 1.0)
    assert stats["stress_candidate"] == 1 and stats["stress_failed"] == 2
    assert stats["stress_dev_max_gpa"] == 2.0
    assert stress_statistics(None, 0.1, 1.0) == {}


def test_statistics_counts_ratios_and_histogram():
    dev = np.array([0.01, 0.02, 0.1, 0.2, 0.9])
    stats = statistics(classify(dev, 0.05, 0.3), dev, edges=np.array([0, 0.05, 0.3, 1.0]))
    assert (stats["sampled"], stats["accurate"], stats["candidate"], stats["failed"]) == (
        5,
        2,
        2,
        1,
    )
    assert stats["accurate_ratio"] == pytest.approx(0.4)
    assert stats["histogram"]["counts"] == [2, 2, 1]


def test_adaptive_lower_only_lowers():
    dev = np.linspace(0.0, 0.1, 101)  # all accurate under lo = 0.2
    lo = adaptive_lower(dev, hi=0.5, lo=0.2, candidate_fraction=0.1)
    assert lo == pytest.approx(0.09)
    assert (classify(dev, lo, 0.5) == Verdict.CANDIDATE).mean() == pytest.approx(0.11, abs=0.01)
    assert adaptive_lower(np.array([0.4]), hi=0.5, lo=0.01) == 0.01


def clustered(n_clusters=5, per=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_clusters, 4))
    x = np.concatenate([c + rng.normal(scale=0.05, size=(per, 4)) for c in centres])
    labels = np.repeat(np.arange(n_clusters), per)
    return x, labels


def test_farthest_point_covers_every_cluster_random_does_not():
    x, labels = clustered()
    fps = farthest_point(x, 5)
    assert len(set(labels[fps])) == 5
    covered = []
    for seed in range(50):
        pick = np.random.default_rng(seed).choice(len(x), size=5, replace=False)
        covered.append(len(set(labels[pick])))
    assert np.mean(covered) < 4.5  # random picks repeat clusters: ~3.4 of 5 on average


def test_weighted_fps_prefers_uncertain_frames_over_far_certain_ones():
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    dev = np.array([1.0, 1.0, 1.0, 0.05])
    hashes = ["a", "b", "c", "d"]
    # plain FPS goes to the far frame the committee agrees on; weighted FPS does not
    assert select(x, hashes, dev, 2, method="fps").selected == [0, 3]
    assert select(x, hashes, dev, 2, method="weighted_fps").selected == [0, 2]
    # with equal uncertainties it is plain FPS
    flat = np.full(4, 0.3)
    assert (
        select(x, hashes, flat, 3, method="weighted_fps").selected
        == select(x, hashes, flat, 3, method="fps").selected
    )


def test_seeded_fps_fills_the_gaps_of_the_training_set():
    """Plain FPS spreads the batch over the candidates, wherever the training set is;
    seeded FPS counts distances to what is labelled, so it goes where nothing is."""
    x = np.array([[0.0], [0.5], [1.0], [6.0], [9.0]])
    dev = np.array([0.9, 0.8, 0.7, 0.2, 0.1])  # most uncertain near the labelled frames
    hashes = list("abcde")
    known = np.array([[0.2], [1.1]])  # the training set covers 0-1
    plain = select(x, hashes, dev, 2, method="fps", training_descriptors=known)
    seeded = select(x, hashes, dev, 2, method="seeded_fps", training_descriptors=known)
    assert plain.selected == [0, 4]
    assert seeded.selected == [3, 4]
    # a hold-out frame is known (no duplicate of it is picked) but not learnt from: it
    # does not push the batch away from where it measures the error
    held = np.array([[6.1]])
    both = np.vstack([known, held])
    near_holdout = select(
        x, hashes, dev, 2, method="seeded_fps", known_descriptors=both, training_descriptors=known
    )
    assert near_holdout.selected == [3, 4]
    # nothing known: it is plain FPS from the most uncertain frame
    assert select(x, hashes, dev, 3, method="seeded_fps").selected == (
        select(x, hashes, dev, 3, method="fps").selected
    )


def test_distances_to_the_training_set_are_exact_in_any_chunk_size():
    from aloop.explore.select import _distance_to_set

    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(300, 7)), rng.normal(size=(50, 7))
    brute = np.linalg.norm(x[:, None] - ref[None], axis=2).min(axis=1)
    for max_pairs in (1, 120, 10**6):
        np.testing.assert_allclose(_distance_to_set(x, ref, max_pairs), brute, atol=1e-12)


def test_weighted_kmeans_gives_uncertain_regions_more_picks():
    """Two equal clusters, one uncertain: weighted k-means spends more picks there."""
    x, labels = clustered(n_clusters=2, per=40)
    dev = np.where(labels == 0, 1.0, 0.01)
    hashes = [f"h{i}" for i in range(len(x))]
    plain = select(x, hashes, dev, 6, method="kmeans", seed=1).selected
    weighted = select(x, hashes, dev, 6, method="weighted_kmeans", seed=1).selected
    assert sum(labels[plain] == 0) <= 4
    assert sum(labels[weighted] == 0) >= 5


@pytest.mark.parametrize(
    "method", ["fps", "weighted_fps", "seeded_fps", "kmeans", "weighted_kmeans", "random"]
)
def test_selection_respects_cap_and_is_deterministic(method):
    x, _ = clustered()
    hashes = [f"h{i}" for i in range(len(x))]
    dev = np.linspace(0.1, 0.2, len(x))
    a = select(x, hashes, dev, 7, method=method, seed=3)
    b = select(x, hashes, dev, 7, method=method, seed=3)
    assert a.selected == b.selected
    assert len(a.selected) == 7
    assert len(a.selected) + len(a.rejected) == len(x)
    assert all("most diverse" in why.detail for why in a.rejected.values())
    assert {why.kind for why in a.rejected.values()} == {RejectionKind.NOT_DIVERSE}
    # passed over, not a duplicate: it stays a candidate
    assert {why.verdict for why in a.rejected.values()} == {Verdict.CANDIDATE}


def test_duplicates_against_stored_structures_and_within_the_batch():
    x, _ = clustered(n_clusters=2, per=3)
    x[1] = x[0] + 1e-5  # near-identical descriptor
    hashes = ["a", "b", "c", "d", "e", "a"]  # 5 repeats 0's content hash
    known = {"c"}
    known_desc = x[3:4] + 1e-6  # 3 matches something labelled earlier
    dev = np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    sel = select(
        x, hashes, dev, 10, known_hashes=known, known_descriptors=known_desc, dedupe_distance=1e-3
    )
    assert sel.selected == [0, 4]
    assert "same content hash" in sel.rejected[2].detail
    assert "same content hash" in sel.rejected[5].detail
    assert "descriptor within" in sel.rejected[1].detail
    assert "descriptor within" in sel.rejected[3].detail
    assert {sel.rejected[i].kind for i in (2, 5)} == {RejectionKind.SAME_HASH}
    assert {sel.rejected[i].kind for i in (1, 3)} == {RejectionKind.NEAR_DESCRIPTOR}
    assert {r.verdict for r in sel.rejected.values()} == {Verdict.DUPLICATE}


def test_walker_plan_is_seeded_and_spreads_starts():
    from ase.build import molecule

    from aloop.explore.walkers import plan_walkers

    starts = [molecule("H2O") for _ in range(3)]
    for i, a in enumerate(starts):
        a.positions[0, 0] += 0.01 * i
    plan = plan_walkers("water", starts, [300, 600], 3, seed=5)
    again = plan_walkers("water", starts, [300, 600], 3, seed=5)
    assert [s.temperature for s in plan] == [300.0] * 3 + [600.0] * 3
    assert [s.seed for s in plan] == [s.seed for s in again]
    first_three = {round(s.atoms.positions[0, 0], 3) for s in plan[:3]}
    assert len(first_three) == 3  # without replacement while enough starts exist
    assert [s.walker for s in plan] == list(range(6))
    with pytest.raises(ValueError, match="no labelled structure"):
        plan_walkers("water", [], [300], 2)


def test_md_settings_from_the_campaign_config():
    from aloop.config import parse_config
    from aloop.explore.walkers import MDSettings

    cfg = parse_config(
        {
            "campaign": "x",
            "systems": [{"name": "w", "molecule": "H2O"}],
            "explore": {"steps": 50, "sample_interval": 5, "stop": {"force_dev_factor": 3.0}},
        }
    )
    md = MDSettings.from_config(cfg.explore, cfg.trust_window("w").hi)
    assert (md.steps, md.sample_interval) == (50, 5)
    assert md.stop_force_dev == pytest.approx(3.0 * cfg.select.trust.hi)
