"""Forecasting: what kind of run this is, whether and when it will generalise, from what training alone shows.

Modules: ``view`` (`TrainingView`: the information a forecast may read), ``estimators`` (the
pure estimators, formulas and papers), ``signals`` (their values per checkpoint), ``features``
(the `Evidence` at a step and the four delay estimates), ``regression`` (ridge and logistic
fits), ``calibration`` (the fitted constants and their file), ``forecaster`` (`forecast`: regime,
p_generalise, grok step, interval), ``fitting`` (`fit_calibration`, across families),
``evaluation`` (leave one family out, the seed floor).
"""

from __future__ import annotations

from workbench.forecasting.calibration import SHIPPED as SHIPPED_CALIBRATION
from workbench.forecasting.calibration import (
    Calibration,
    check_calibration,
    load_calibration,
    save_calibration,
    shipped_calibration,
)
from workbench.forecasting.evaluation import Evaluation, auroc, evaluate, forecast_rows, leave_one_family_out
from workbench.forecasting.features import Evidence, evidence, implied_delays
from workbench.forecasting.fitting import family_of, fit_calibration, fit_from_samples, known_outcome, run_samples
from workbench.forecasting.forecaster import REGIMES, STATES, Forecast, forecast, forecast_history, forecast_view
from workbench.forecasting.signals import SignalCache
from workbench.forecasting.view import TrainingView, training_view, training_views

__all__ = ["Calibration", "Evaluation", "Evidence", "REGIMES", "SHIPPED_CALIBRATION", "STATES", "Forecast", "SignalCache",
           "TrainingView", "auroc", "check_calibration", "evaluate", "evidence", "family_of", "fit_calibration",
           "fit_from_samples", "forecast", "forecast_history", "forecast_rows", "forecast_view", "implied_delays",
           "known_outcome", "leave_one_family_out", "load_calibration", "run_samples",
           "save_calibration", "shipped_calibration", "training_view", "training_views"]
