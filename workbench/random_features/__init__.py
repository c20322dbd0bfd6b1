"""Random-feature least squares: the textbook double descent beside the transformer's.

Belkin et al. 2019's model family, not a transformer: random Fourier features of the inputs and
a (minimum-norm) least-squares readout, swept over the number of features N across the number of
training points n. It runs in seconds on the workbench's own tasks (one-hot operands) and on
scikit-learn's bundled digits, and it is where Curth et al. 2023's effective parameters
(`probes.effective`) are exact. ``python -m workbench rff --dataset modular|digits --out DIR``
writes ``DIR/rff.csv`` and its figures (`workbench.report.build_rff_report`).

Modules: ``features`` (the random Fourier feature map), ``datasets`` (modular and digits as
classification tasks), ``experiment`` (the sweep over N into a tidy table).

Example:
    >>> from workbench.random_features import double_descent, modular_task
    >>> table = double_descent(modular_task(p=11, frac_train=0.5), counts=[30, 60, 120])
    >>> int(table.test_loss.idxmax())          # the peak is at N = n = 60
    1
"""

from workbench.random_features.datasets import DATASETS, ClassificationTask, digits_task, modular_task
from workbench.random_features.experiment import COLUMNS, MAX_FEATURES, double_descent, feature_counts
from workbench.random_features.features import RandomFourierFeatures, draw_features

__all__ = ["COLUMNS", "MAX_FEATURES", "DATASETS", "ClassificationTask", "RandomFourierFeatures", "digits_task", "double_descent",
           "draw_features", "feature_counts", "modular_task"]
