"""cleanlab.count 2.9 over relabel: thresholds, the confident joint, noise matrices, the number of issues.

Provides get_confident_thresholds, compute_confident_joint, calibrate_confident_joint, estimate_joint,
estimate_latent, estimate_py_and_noise_matrices_from_probabilities and num_label_issues
(relabel.scoring.confident.counting), and the four functions that first cross-validate a classifier:
estimate_cv_predicted_probabilities, estimate_confident_joint_and_cv_pred_proba,
estimate_py_noise_matrices_and_cv_pred_proba and estimate_noise_matrices (out-of-fold pred_probs from
relabel.models.fit.cross_val_pred_probs, then the counting functions). That is all of cleanlab 2.9's public names.

Where relabel differs on purpose: equal rounding residuals in the calibrated joint are resolved by a stable
sort; py_method="eqn" with a singular noise matrix raises InputError; multi_label=True (thresholds, confident
joint, calibration, joint and issue count, one-vs-rest) runs relabel.scoring.multilabel_confident; the cross-validation
folds are relabel's seeded stratified folds (seed=None means seed 0, so results are reproducible), so
out-of-fold pred_probs are not bit-identical to cleanlab's; validation_func is not supported.
"""
from relabel.errors import ConfigError
from relabel.models.fit import cross_val_pred_probs
from relabel.scoring import multilabel_confident as _ml
from relabel.scoring.confident import counting as _single
from relabel.scoring.confident.counting import estimate_latent, estimate_py_and_noise_matrices_from_probabilities


def get_confident_thresholds(labels, pred_probs, multi_label: bool = False):
    """Per-class thresholds (K,); with multi_label, K x 2 one-vs-rest thresholds."""
    if multi_label:
        return _ml.get_multilabel_confident_thresholds(labels, pred_probs)
    return _single.get_confident_thresholds(labels, pred_probs)


def compute_confident_joint(labels, pred_probs, *, thresholds=None, calibrate: bool = True,
                            return_indices_of_off_diagonals: bool = False, multi_label: bool = False):
    """The K x K confident joint; with multi_label, K x 2 x 2 one-vs-rest joints."""
    fn = _ml.compute_multilabel_confident_joint if multi_label else _single.compute_confident_joint
    return fn(labels, pred_probs, thresholds=thresholds, calibrate=calibrate,
              return_indices_of_off_diagonals=return_indices_of_off_diagonals)


def calibrate_confident_joint(confident_joint, labels, *, multi_label: bool = False):
    if multi_label:
        return _ml.calibrate_multilabel_confident_joint(confident_joint, labels)
    return _single.calibrate_confident_joint(confident_joint, labels)


def estimate_joint(labels, pred_probs, *, confident_joint=None, multi_label: bool = False):
    fn = _ml.estimate_multilabel_joint if multi_label else _single.estimate_joint
    return fn(labels, pred_probs, confident_joint=confident_joint)


def num_label_issues(labels, pred_probs, *, confident_joint=None, estimation_method: str = "off_diagonal",
                     multi_label: bool = False) -> int:
    """Estimated number of label issues; with multi_label, items with some class off its confident joint's
    diagonal (cleanlab counts them with filter_by='confident_learning' whatever the estimation_method)."""
    if multi_label:
        return _ml.num_multilabel_label_issues(labels, pred_probs, confident_joint=confident_joint)
    return _single.num_label_issues(labels, pred_probs, confident_joint=confident_joint,
                                    estimation_method=estimation_method)



def estimate_cv_predicted_probabilities(X, labels, clf=None, *, cv_n_folds: int = 5, seed=None,
                                        clf_kwargs: dict | None = None, validation_func=None):
    """Out-of-fold pred_probs (N x K) of ``clf`` (default logistic regression) over ``cv_n_folds`` folds."""
    if validation_func is not None:
        raise ConfigError("validation_func is not supported; fit with a validation set outside relabel and pass "
                          "the out-of-sample pred_probs instead.")
    if clf_kwargs:
        raise ConfigError("clf_kwargs is not supported; set the options on the classifier you pass as clf.")
    return cross_val_pred_probs(X, labels, n_folds=cv_n_folds, classifier=clf, seed=0 if seed is None else seed)


def estimate_confident_joint_and_cv_pred_proba(X, labels, clf=None, *, cv_n_folds: int = 5, thresholds=None,
                                               seed=None, calibrate: bool = True, clf_kwargs: dict | None = None,
                                               validation_func=None):
    """(confident_joint, pred_probs): out-of-fold pred_probs and the confident joint computed from them."""
    pred_probs = estimate_cv_predicted_probabilities(X, labels, clf, cv_n_folds=cv_n_folds, seed=seed,
                                                     clf_kwargs=clf_kwargs, validation_func=validation_func)
    joint = compute_confident_joint(labels, pred_probs, thresholds=thresholds, calibrate=calibrate)
    return joint, pred_probs


def estimate_py_noise_matrices_and_cv_pred_proba(X, labels, clf=None, *, cv_n_folds: int = 5, thresholds=None,
                                                 converge_latent_estimates: bool = False, py_method: str = "cnt",
                                                 seed=None, clf_kwargs: dict | None = None, validation_func=None):
    """(py, noise_matrix, inverse_noise_matrix, confident_joint, pred_probs) from out-of-fold pred_probs."""
    pred_probs = estimate_cv_predicted_probabilities(X, labels, clf, cv_n_folds=cv_n_folds, seed=seed,
                                                     clf_kwargs=clf_kwargs, validation_func=validation_func)
    py, noise, inverse, joint = estimate_py_and_noise_matrices_from_probabilities(
        labels, pred_probs, thresholds=thresholds, converge_latent_estimates=converge_latent_estimates,
        py_method=py_method)
    return py, noise, inverse, joint, pred_probs


def estimate_noise_matrices(X, labels, clf=None, *, cv_n_folds: int = 5, thresholds=None,
                            converge_latent_estimates: bool = True, seed=None, clf_kwargs: dict | None = None,
                            validation_func=None):
    """(noise_matrix, inverse_noise_matrix) from out-of-fold pred_probs."""
    _, noise, inverse, _, _ = estimate_py_noise_matrices_and_cv_pred_proba(
        X, labels, clf, cv_n_folds=cv_n_folds, thresholds=thresholds,
        converge_latent_estimates=converge_latent_estimates, seed=seed, clf_kwargs=clf_kwargs,
        validation_func=validation_func)
    return noise, inverse


__all__ = ["calibrate_confident_joint", "compute_confident_joint", "estimate_confident_joint_and_cv_pred_proba",
           "estimate_cv_predicted_probabilities", "estimate_joint", "estimate_latent", "estimate_noise_matrices",
           "estimate_py_and_noise_matrices_from_probabilities", "estimate_py_noise_matrices_and_cv_pred_proba",
           "get_confident_thresholds", "num_label_issues"]
