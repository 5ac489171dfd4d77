"""
A Pipeline in a grid search
===========================

:class:`cysoftmax.Classifier` is a scikit-learn estimator: it goes into a
:class:`~sklearn.pipeline.Pipeline`, is cloned and refitted by
:class:`~sklearn.model_selection.GridSearchCV`, and its float32 input stays
float32 through the pipeline's steps. Here a PCA projection of the
Fashion-MNIST sample feeds a one-hidden-layer network, and the grid search
picks the number of components, the hidden width and the L2 penalty.
"""

# %%
# The pipeline
# ------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline

from cysoftmax import Classifier
from cysoftmax.datasets import load_fashion_mnist_sample

X, y = load_fashion_mnist_sample("train")            # 3,000 images, float32
X_test, y_test = load_fashion_mnist_sample("test")   # 1,000 images

pipe = Pipeline([
    ("pca", PCA(random_state=0)),
    ("clf", Classifier(max_iter=40, batch_size=64, random_state=0)),
])
grid = {
    "pca__n_components": [30, 100],
    "clf__hidden_layer_sizes": [(32,), (128,)],
    "clf__alpha": [1e-4, 1e-2],
}

# %%
# The search
# ----------
# Three stratified folds over eight combinations: 24 fits and one refit on
# the whole training sample. The ``ConvergenceWarning`` of ``max_iter`` is
# silenced: 40 epochs is a budget here, not a failure.
import warnings

from sklearn.exceptions import ConvergenceWarning

search = GridSearchCV(pipe, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0))
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X, y)
print(f"{len(search.cv_results_['params'])} combinations x 3 folds in "
      f"{time.perf_counter() - t0:.1f} s")
print("best:", search.best_params_, f"CV accuracy {search.best_score_:.4f}")
print(f"test accuracy of the refitted pipeline: {search.score(X_test, y_test):.4f}")
print("dtype seen by the classifier's first layer:",
      search.best_estimator_.named_steps["clf"].coefs_[0].dtype)

# %%
# The scores
# ----------
# Mean cross-validated accuracy of every combination, with the spread over
# the folds.
res = search.cv_results_
labels = [f"pca {p['pca__n_components']}, h {p['clf__hidden_layer_sizes'][0]}, "
          f"alpha {p['clf__alpha']:g}" for p in res["params"]]
order = np.argsort(res["mean_test_score"])
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.barh(np.arange(len(order)), res["mean_test_score"][order],
        xerr=res["std_test_score"][order], color="C0", alpha=0.8)
ax.set_yticks(np.arange(len(order)), [labels[i] for i in order], fontsize=8)
ax.set_xlim(0.7, 0.9)
ax.set_xlabel("mean CV accuracy (3 folds)")
ax.set_title("GridSearchCV over PCA + cysoftmax.Classifier", fontsize=10)
fig.tight_layout()
plt.show()
