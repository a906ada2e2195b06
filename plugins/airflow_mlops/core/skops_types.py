"""The types airflow-mlops lets skops load, reviewed once and supplied by this package's code.

skops refuses to load any type outside its built-in safe set unless the caller trusts it.
The list below is ours: it is passed to ``skops.io.load`` by ``training.load_model`` and is
NEVER read from a model file (an MLmodel file's ``skops_trusted_types`` is attacker-writable;
trusting it would let a crafted model whitelist any callable).

How it was derived (skops 0.16, scikit-learn 1.9.1, numpy 2): every estimator family a
config can name (LogisticRegression, Ridge, LinearRegression, RandomForest*, ExtraTrees*,
GradientBoosting*, HistGradientBoosting* incl. early stopping, DecisionTree*) inside our
preprocessing Pipeline (ColumnTransformer, SimpleImputer, StandardScaler, OneHotEncoder),
fitted on binary (breast_cancer), multiclass (iris) and regression (diabetes) data, int
and string labels, then ``skops.io.get_untrusted_types(data=skops.io.dumps(model))``.
The union was exactly these three types; everything else is in skops' default safe set.
Re-derive (and review) when adding an estimator family or upgrading scikit-learn/skops.
"""

from __future__ import annotations

from airflow_mlops.core.errors import MlopsError

TRUSTED_TYPES: list[str] = [
    # a numpy dtype object (the ColumnTransformer records its input dtypes); plain data
    "numpy.dtype",
    # the fitted tree structure of HistGradientBoosting{Classifier,Regressor}
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # the fitted tree of DecisionTree*, RandomForest*, ExtraTrees*, GradientBoosting*
    "sklearn.tree._tree.Tree",
]


class UntrustedModelError(MlopsError):
    """A model file references types outside TRUSTED_TYPES (or is not a skops model): not loaded."""
