"""Forecasting: whether and when a run will generalise, from what training alone shows.

Modules: ``view`` (`TrainingView`: the information a forecast may read), ``estimators`` (the
pure estimators, formulas and papers), ``signals`` (their values per checkpoint),
``calibration`` (the fitted constants), ``forecaster`` (`forecast`), ``fitting``
(`fit_calibration`), ``evaluation`` (scoring on held-out runs).
"""

from __future__ import annotations

from workbench.forecasting.calibration import SHIPPED as SHIPPED_CALIBRATION
from workbench.forecasting.calibration import Calibration, load_calibration, save_calibration, shipped_calibration
from workbench.forecasting.evaluation import Evaluation, auroc, evaluate_forecasts
from workbench.forecasting.fitting import fit_calibration, known_outcome
from workbench.forecasting.forecaster import STATES, Forecast, forecast, forecast_history, forecast_view
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import TrainingView, training_view

__all__ = ["Calibration", "Evaluation", "SHIPPED_CALIBRATION", "auroc", "evaluate_forecasts", "Forecast", "STATES", "SignalCache", "TrainingView", "fit_calibration", "forecast",
           "forecast_history", "forecast_view", "known_outcome", "load_calibration", "save_calibration", "shipped_calibration",
           "training_view"]
