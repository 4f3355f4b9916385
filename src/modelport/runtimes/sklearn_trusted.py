"""Types that ModelPort trusts inside a skops file, beyond skops' own defaults.

This list is owned by the project and reviewed by hand: each entry is a scikit-learn
internal that holds fitted state (trees, neighbour indexes, losses, links) and whose
reconstruction runs no user code. A file that needs any other non-default type is refused.
"""

from __future__ import annotations

_DISTANCE_METRICS = (
    "Euclidean",
    "SEuclidean",
    "Manhattan",
    "Chebyshev",
    "Minkowski",
    "Mahalanobis",
    "Hamming",
    "Canberra",
    "BrayCurtis",
    "Jaccard",
    "Matching",
    "Dice",
    "Kulsinski",
    "RogersTanimoto",
    "RussellRao",
    "SokalMichener",
    "SokalSneath",
    "Haversine",
)

_LOSSES = (
    "HalfSquaredError",
    "AbsoluteError",
    "PinballLoss",
    "HuberLoss",
    "HalfPoissonLoss",
    "HalfGammaLoss",
    "HalfTweedieLoss",
    "HalfTweedieLossIdentity",
    "HalfBinomialLoss",
    "ExponentialLoss",
    "HalfMultinomialLoss",
)

_LINKS = ("IdentityLink", "LogLink", "LogitLink", "HalfLogitLink", "MultinomialLogit")

TRUSTED_SKOPS_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.utils._bunch.Bunch",
        "collections.OrderedDict",
        "collections.defaultdict",
        # A dtype is rebuilt from an empty array saved with it (numpy's own format, no
        # pickle); SimpleImputer keeps the dtype it was fitted on.
        "numpy.dtype",
        *(f"sklearn.metrics._dist_metrics.{name}Distance64" for name in _DISTANCE_METRICS),
        *(f"sklearn.metrics._dist_metrics.{name}Distance32" for name in _DISTANCE_METRICS),
        *(f"sklearn._loss.loss.{name}" for name in _LOSSES),
        *(f"sklearn._loss.link.{name}" for name in _LINKS),
        # XGBoost's and LightGBM's scikit-learn wrappers (in pipelines ModelPort trains,
        # for example): their boosters are rebuilt from the framework's own model bytes
        # (XGBoost's serialized buffer, LightGBM's text model), no pickle.
        *(f"xgboost.sklearn.XGB{kind}" for kind in ("Regressor", "Classifier", "Ranker")),
        "xgboost.core.Booster",
        *(f"lightgbm.sklearn.LGBM{kind}" for kind in ("Regressor", "Classifier", "Ranker")),
        "lightgbm.basic.Booster",
    }
)
