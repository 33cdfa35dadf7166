"""NeighborRegressor: sklearn-like API on real data, bank inference, bad inputs."""

import functools

import numpy as np
import pytest
from sklearn.metrics import r2_score

from softstep import NeighborRegressor, load_diabetes, load_digits_rotation, predict_dense

DATA = load_diabetes()
X, Y = DATA.x[:300], DATA.y[:300]
XT, YT = DATA.x[300:], DATA.y[300:]
SMALL = dict(hidden=(32,), embed_dim=8, epochs=15, patience=5, batch_size=64)


@functools.cache
def fitted():
    return NeighborRegressor("softstep", **SMALL).fit(X, Y)


def test_fit_predict_score():
    model = fitted()
    pred = model.predict(XT)
    assert pred.shape == (len(XT),) and np.all(np.isfinite(pred))
    assert model.score(XT, YT) == pytest.approx(r2_score(YT, pred), rel=1e-5)
    assert model.score(XT, YT) > 0.0  # better than predicting the mean on real data
    assert model.embed(XT).shape == (len(XT), 8)
    assert 1 <= model.best_epoch_ <= model.epochs_run_ <= 15


def test_predict_uses_the_training_bank():
    # Independent path: dense head over the stored training rows, then unscale.
    model = fitted()
    rng = np.random.default_rng(model.seed)
    perm = rng.permutation(len(X))
    tr = perm[int(round(0.2 * len(X))):]
    xs = lambda a: (a - model.x_mean_) / model.x_std_
    ys = ((Y[tr] - model.y_mean_) / model.y_std_)[:, None]
    dense = np.asarray(predict_dense(model.graphdef_, model.params_, xs(XT), xs(X[tr]), ys))
    np.testing.assert_allclose(model.predict(XT), dense[:, 0] * model.y_std_ + model.y_mean_,
                               rtol=1e-4, atol=1e-3)


def test_cnn_backbone_on_rotated_digits():
    data = load_digits_rotation()
    model = NeighborRegressor("nw", backbone="cnn", hidden=(8, 8), embed_dim=8, epochs=2,
                              batch_size=64).fit(data.x[:200], data.y[:200])
    assert model.predict(data.x[200:230]).shape == (30,)
    with pytest.raises(ValueError, match="make_backbone: cnn needs image inputs"):
        NeighborRegressor("nw", backbone="cnn").fit(X, Y)


def test_bad_inputs():
    with pytest.raises(ValueError, match="NeighborRegressor.predict: call fit before predict"):
        NeighborRegressor().predict(X)
    model = fitted()
    with pytest.raises(ValueError, match=r"x has per-example shape \(9,\) but fit saw \(10,\)"):
        model.predict(XT[:, :9])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NeighborRegressor.fit: x contains NaN or inf"):
        NeighborRegressor().fit(bad, Y)
    with pytest.raises(ValueError, match="NeighborRegressor.fit: y contains NaN or inf"):
        NeighborRegressor().fit(X, np.where(Y > 100, np.inf, Y))
    with pytest.raises(ValueError, match=r"y must be \[n\] or \[n, o\] with n = 300 rows"):
        NeighborRegressor().fit(X, Y[:299])
    with pytest.raises(ValueError, match="predict: x contains NaN or inf"):
        model.predict(bad)
    with pytest.raises(ValueError, match="batch_size must be >= 2 .*got 1"):
        NeighborRegressor(batch_size=1)
    with pytest.raises(ValueError, match="need >= 2 training rows"):
        NeighborRegressor().fit(X[:2], Y[:2])
    with pytest.raises(ValueError, match=r"head must be one of \['linear', 'nw'"):
        NeighborRegressor("transformer")
    with pytest.raises(ValueError, match="similarity must be one of"):
        NeighborRegressor(similarity="mahalanobis")
    with pytest.raises(ValueError, match=r"kind must be one of \['s1', 's2'\]"):
        NeighborRegressor(step="s3")
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        NeighborRegressor(validation_fraction=1.0)


def test_knn_head_predicts_like_sklearn_on_the_learned_embedding():
    from sklearn.neighbors import KNeighborsRegressor

    model = NeighborRegressor("knn", knn_k=4, **{**SMALL, "epochs": 2}).fit(X, Y)
    bank_emb, bank_y = np.asarray(model.bank_.embeddings), np.asarray(model.bank_.targets)
    ref = KNeighborsRegressor(n_neighbors=4).fit(bank_emb, bank_y[:, 0]).predict(model.embed(XT))
    np.testing.assert_allclose(model.predict(XT), ref * model.y_std_[0] + model.y_mean_[0],
                               rtol=1e-4, atol=1e-3)
