"""Maximum likelihood for the probabilistic scorers: SLSQP over log-parameters.

Optimising the logs keeps every parameter positive. The objective is
the mean negative log-likelihood, so tolerances mean the same for 100 and 10^6 customers,
plus ``penalizer * sum(parameters ** 2)`` (an L2 penalty on the natural parameters, as
lifetimes applies it).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

# (log-likelihood summed over customers, its gradient in the natural parameters)
LogLikelihood = Callable[[np.ndarray], tuple[float, np.ndarray]]

# exp(+-20) spans any plausible shape or scale; bounds keep a flat likelihood from
# sending a parameter to overflow.
_LOG_BOUND = 20.0


@dataclass(frozen=True)
class Estimate:
    parameters: np.ndarray  # natural scale
    log_likelihood: float  # unpenalised, summed over the customers
    converged: bool
    iterations: int
    customers: int
    message: str

    def diagnostics(self) -> dict[str, Any]:
        return {
            "log_likelihood": self.log_likelihood,
            "converged": self.converged,
            "iterations": self.iterations,
            "customers": self.customers,
            "message": self.message,
        }


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: its multithreaded dot product stalls for milliseconds
    whenever the other core is busy, ten times a whole likelihood evaluation."""
    return float(np.einsum("i,i->", a, b))


def maximise(
    log_likelihood: LogLikelihood, start: np.ndarray, *, customers: int, penalizer: float
) -> Estimate:
    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, gradient = log_likelihood(params)
        value = -ll / customers + penalizer * np.sum(params**2)
        # d/d(log p) = p * d/dp
        return value, params * (-gradient / customers + 2 * penalizer * params)

    result = minimize(
        objective,
        np.log(start),
        jac=True,
        # Not L-BFGS-B: under a multithreaded OpenBLAS each of its steps costs milliseconds
        # of thread hand-offs, more than a likelihood over a million customers.
        method="SLSQP",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
        options={"ftol": 1e-13, "maxiter": 1000},
    )
    params = np.exp(result.x)
    return Estimate(
        parameters=params,
        log_likelihood=float(log_likelihood(params)[0]),
        converged=bool(result.success),
        iterations=int(result.nit),
        customers=customers,
        message=str(result.message),
    )
