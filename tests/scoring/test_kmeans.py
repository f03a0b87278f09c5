import numpy as np

from crm_api.scoring.plugins.kmeans import KMeansClusters, KMeansConfig
from crm_api.scoring.protocol import Features, Scores
from scoring.data import features_of


def clustered(features: Features, **config) -> tuple[Scores, dict]:
    scorer = KMeansClusters(KMeansConfig(**config))
    fitted = scorer.fit(features)
    return scorer.score(features), fitted.parameters


def three_groups(size: int = 100, seed: int = 3) -> Features:
    """Big spenders, regulars and lapsed one-timers, ``size`` each, far apart on every
    axis."""
    rng = np.random.default_rng(seed)
    n = 3 * size
    group = rng.permutation(np.repeat([0, 1, 2], size))
    since_last = np.array([1.0, 10.0, 200.0])[group] * rng.uniform(0.9, 1.1, n)
    purchases = np.array([40, 8, 1])[group]
    spend = np.array([5000.0, 400.0, 20.0])[group] * rng.uniform(0.9, 1.1, n)
    return features_of(
        frequency=purchases - 1,
        recency=300 - since_last,
        T=np.full(n, 300.0),
        total_spend=spend,
    )


def by_spend(features: Features) -> list[str]:
    return np.where(
        features.total_spend > 1000,
        "cluster-1",
        np.where(features.total_spend > 100, "cluster-2", "cluster-3"),
    ).tolist()


def test_labels_are_stable_across_runs_with_the_same_seed(cdnow: Features):
    first, first_parameters = clustered(cdnow, k=5, seed=11)
    second, second_parameters = clustered(cdnow, k=5, seed=11)

    assert first.labels == second.labels
    assert first_parameters == second_parameters
    assert set(first.labels) == {f"cluster-{n}" for n in range(1, 6)}


def test_clusters_are_numbered_by_descending_mean_spend(cdnow: Features):
    scores, parameters = clustered(cdnow, k=4)

    labels = np.array(scores.labels)
    means = [cdnow.total_spend[labels == f"cluster-{n}"].mean() for n in range(1, 5)]
    assert means == sorted(means, reverse=True)
    np.testing.assert_allclose([c["mean_total_spend"] for c in parameters["clusters"]], means)
    assert sum(c["customers"] for c in parameters["clusters"]) == len(cdnow)
    np.testing.assert_array_equal(
        scores.score, [int(label.removeprefix("cluster-")) for label in scores.labels]
    )


def test_clear_groups_get_the_same_labels_whatever_the_seed():
    features = three_groups()

    for seed in range(5):
        scores, _ = clustered(features, k=3, seed=seed, restarts=1)
        assert scores.labels == by_spend(features), seed


def test_large_sets_choose_among_restarts_on_a_sample_and_cluster_everyone():
    features = three_groups(size=25_000)  # more customers than the restarts' sample

    scores, parameters = clustered(features, k=3, seed=5)

    assert scores.labels == by_spend(features)
    assert [c["customers"] for c in parameters["clusters"]] == [25_000] * 3


def test_fewer_distinct_customers_than_clusters_makes_fewer_clusters():
    twins = features_of(frequency=[2, 2, 2, 0], recency=[5, 5, 5, 0], T=[9, 9, 9, 4])

    scores, parameters = clustered(twins, k=6)

    assert len(parameters["clusters"]) == 2
    assert scores.labels[:3] == ["cluster-1"] * 3
    assert scores.labels[3] == "cluster-2"


def test_customers_without_a_purchase_are_not_scored():
    features = features_of(
        frequency=[0, 3, 0, 1, 5],
        recency=[0, 10, 0, 2, 12],
        T=[0, 20, 0, 9, 13],
        purchases=[0, 4, 0, 2, 6],
    )

    scores, parameters = clustered(features, k=2)

    assert sum(c["customers"] for c in parameters["clusters"]) == 3
    assert [label is None for label in scores.labels] == [True, False, True, False, False]
    assert np.isnan(scores.score[[0, 2]]).all()
    assert scores.details[0] == {} and set(scores.details[1]) == {"distance"}
