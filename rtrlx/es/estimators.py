"""Gradient estimators of evolution strategies, as values: ``init`` and ``estimate``.

Every estimator estimates the gradient of a loss ``f(params)`` (to be minimised) from
antithetic pairs of evaluations ``f(x + sigma d)``, ``f(x - sigma d)``, whose slope
``s(d) = (f(x + sigma d) - f(x - sigma d)) / (2 sigma)`` is the directional derivative
``grad . d`` up to ``O(sigma^2)`` (exactly, for a quadratic). The state holds the PRNG key
and the previous estimate, so an estimator is a pure function that jits once:

    state = est.init(params, key=key)
    grad, state, info = est.estimate(f, params, state)

- :func:`antithetic`: plain ES (Salimans et al. 2017), unbiased for the gradient of the
  Gaussian-smoothed loss; its cosine with the true gradient is about ``sqrt(n / P)`` for
  ``n`` pairs and ``P`` parameters.
- :func:`past_descent`: the estimator of arXiv 1910.05268: one pair along the previous
  estimate (the surrogate) and the rest random and orthogonal to it, combined by
  projecting the gradient onto the directions measured. No knob for the surrogate's
  quality, and always at least as good a descent direction as the surrogate; for a linear
  function it converges to the true gradient.
- :func:`guided`: Guided ES (Maheswaranathan et al. 2019) with the previous estimate as its
  surrogate subspace, the paper's baseline; ``alpha`` weighs the full space against the
  surrogate.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.flatten_util import ravel_pytree


class ESState(NamedTuple):
    """An estimator's state: its PRNG key, the previous estimate and the call count."""

    key: Array
    previous: Array  # (P,) the previous estimate, flat (zeros before the first call)
    step: Array  # int32, estimates made


class Estimator(NamedTuple):
    """An ES gradient estimator.

    ``estimate`` is ``directions``, the slopes along them, then ``combine``; a learner that
    measures the slopes itself over a stream (:func:`rtrlx.learners.es`) calls the two
    halves.

    Attributes:
        init: ``init(params, *, key) -> ESState``.
        estimate: ``estimate(f, params, state) -> (grad, state, info)``: ``grad`` has the
            structure of ``params``; ``info`` holds ``cos_surrogate`` (the cosine of the
            surrogate with the estimate, 0 when there is none) and ``evaluations``.
        directions: ``directions(x, state) -> (rows, scales)``: the ``(pairs, P)``
            perturbation directions of the next estimate at the flat parameters ``x``, and
            each row's slope scale (the slope along row ``d`` is divided by it).
        combine: ``combine(slopes, rows, state) -> (flat grad, state, info)``: the estimate
            from the slopes ``(f(x + sigma d) - f(x - sigma d)) / (2 sigma)`` along ``rows``.
        name: the estimator as ``rtrlx`` names it, e.g. ``"es-pd:10"``.
        pairs: antithetic pairs per estimate (``2 * pairs`` evaluations of ``f``).
        sigma: the perturbation scale.
    """

    init: Callable[..., ESState]
    estimate: Callable[..., tuple[Any, ESState, dict]]
    directions: Callable[[Array, ESState], Array]
    combine: Callable[[Array, Array, ESState], tuple[Array, ESState, dict]]
    name: str
    pairs: int
    sigma: float


def _check(pairs: int, sigma: float, name: str) -> None:
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"{name}: pairs must be a positive integer, got {pairs!r}.")
    if not sigma > 0:
        raise ValueError(f"{name}: sigma must be > 0, got {sigma!r}.")


def _init(params: Any, *, key: Array) -> ESState:
    flat, _ = ravel_pytree(params)
    return ESState(key, jnp.zeros_like(flat), jnp.zeros((), jnp.int32))


def _slopes(f: Callable, x: Array, unravel: Callable, directions: Array, sigma: float) -> Array:
    """``(f(x + sigma d) - f(x - sigma d)) / (2 sigma)`` for each row ``d`` of ``directions``."""

    def slope(d):
        plus, minus = f(unravel(x + sigma * d)), f(unravel(x - sigma * d))
        return (plus - minus) / (2 * sigma)

    return lax.map(slope, directions)


def _estimator(
    name: str,
    pairs: int,
    sigma: float,
    directions: Callable[[Array, ESState], Array],
    combine: Callable[[Array, Array, ESState], tuple[Array, ESState, dict]],
) -> Estimator:
    """An :class:`Estimator` whose ``estimate`` measures the slopes by calling ``f``."""

    def estimate(f, params, state: ESState):
        x, unravel = ravel_pytree(params)
        rows = directions(x, state)
        g, state, info = combine(_slopes(f, x, unravel, rows, sigma), rows, state)
        return unravel(g), state, info

    return Estimator(_init, estimate, directions, combine, name, pairs, sigma)


def _surrogate(state: ESState) -> tuple[Array, Array]:
    """The previous estimate normalised, and whether there is one."""
    norm = jnp.linalg.norm(state.previous)
    has = norm > 0
    return jnp.where(has, state.previous / jnp.where(has, norm, 1.0), 0.0), has


def _cos_surrogate(g: Array, u: Array, has: Array) -> Array:
    g_norm = jnp.linalg.norm(g)
    return jnp.where(has & (g_norm > 0), (g @ u) / jnp.where(g_norm > 0, g_norm, 1.0), 0.0)


def _next(state: ESState, g: Array, pairs: int, cos_u: Array) -> tuple[Array, ESState, dict]:
    key = jax.random.split(state.key)[0]
    info = {"cos_surrogate": cos_u, "evaluations": 2 * pairs}
    return g, ESState(key, g, state.step + 1), info


def _normals(state: ESState, shape: tuple[int, ...], dtype: Any) -> Array:
    """The estimate's random draws (from the key ``_next`` does not keep)."""
    return jax.random.normal(jax.random.split(state.key)[1], shape, dtype)


def antithetic(pairs: int, sigma: float = 0.01) -> Estimator:
    """Plain antithetic ES: ``g = (1/n) sum_i s(eps_i) eps_i``, ``eps_i ~ N(0, I)``.

    Unbiased for the gradient of ``f_sigma(x) = E f(x + sigma eps)`` (Stein's lemma), which
    is the gradient itself for a quadratic.

    Args:
        pairs: antithetic pairs ``n`` per estimate.
        sigma: the perturbation scale.

    Returns:
        An :class:`Estimator`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> est = antithetic(4)
        >>> x = jnp.ones(3)
        >>> state = est.init(x, key=jax.random.key(0))
        >>> g, state, info = est.estimate(lambda p: jnp.sum(p**2), x, state)
        >>> g.shape, int(state.step), info["evaluations"]
        ((3,), 1, 8)

    References:
        Salimans, Ho, Chen, Sidor, Sutskever. Evolution Strategies as a Scalable
        Alternative to Reinforcement Learning. 2017. https://arxiv.org/abs/1703.03864
    """
    _check(pairs, sigma, "antithetic")

    def directions(x, state):
        return _normals(state, (pairs, x.shape[0]), x.dtype)

    def combine(s, rows, state):
        return _next(state, s @ rows / pairs, pairs, jnp.zeros((), rows.dtype))

    return _estimator(f"es:{pairs}", pairs, sigma, directions, combine)


def past_descent(pairs: int, sigma: float = 0.01) -> Estimator:
    """ES with the past descent direction (arXiv 1910.05268), optimally combined.

    With ``u`` the previous estimate normalised, one pair measures the slope ``s_u`` along
    ``u`` (perturbed by ``sigma sqrt(P) u``, as long as a random direction); the other
    ``n - 1`` pairs measure slopes ``s_i`` along random ``eps_i`` made orthogonal to ``u``.
    With ``v = sum_i s_i eps_i``, the estimate is

        g = s_u u + (sum_i s_i^2 / |v|^2) v,

    the orthogonal projection of the gradient onto ``span(u, v)`` when the slopes are exact
    (``grad . v = sum_i s_i^2``). So ``g . grad = |g|^2 >= 0`` (a descent direction for
    ``-g``) and ``cos(g, grad) = |g| / |grad| >= |cos(u, grad)|``: never worse than the
    surrogate, with nothing to tune. On a linear function the error left after each call
    is orthogonal to the next surrogate, and the estimate converges to the gradient. The
    first call, with no surrogate, projects onto the ``n`` random directions' estimate.

    This is rtrlx's reading of the paper's abstract (its full text was not available here):
    the pair budget (1 along ``u``, ``n - 1`` random), the orthogonalisation and the scale
    of the surrogate's perturbation are rtrlx's choices (docs/notes/issue18-evolution.md).

    Args:
        pairs: antithetic pairs ``n`` per estimate (>= 2 after the first call: one along the
            surrogate, the rest random).
        sigma: the perturbation scale of a random direction.

    Returns:
        An :class:`Estimator`.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> est = past_descent(3)
        >>> w = jnp.arange(1.0, 21.0)
        >>> f = lambda x: w @ x  # linear: the slopes are exact
        >>> state = est.init(jnp.zeros(20), key=jax.random.key(0))
        >>> for _ in range(60):
        ...     g, state, _ = est.estimate(f, jnp.zeros(20), state)
        >>> float(g @ w / jnp.linalg.norm(g) / jnp.linalg.norm(w)) > 0.99
        True

    References:
        Meier, Mujika, Gauy, Steger. Improving Gradient Estimation in Evolutionary
        Strategies With Past Descent Directions. 2019. https://arxiv.org/abs/1910.05268
    """
    _check(pairs, sigma, "past_descent")
    if pairs < 2:
        raise ValueError(
            "past_descent: needs pairs >= 2 (one along the surrogate, at least one random); "
            f"got {pairs}. Use antithetic(1) for a single random pair."
        )

    def directions(x, state):
        u, has = _surrogate(state)
        eps = _normals(state, (pairs, x.shape[0]), x.dtype)
        eps = eps - jnp.outer(eps @ u, u)  # orthogonal to the surrogate (no-op without one)
        # Row 0 measures the surrogate when there is one; otherwise one more random pair.
        scale = jnp.sqrt(jnp.asarray(x.shape[0], x.dtype))
        return eps.at[0].set(jnp.where(has, scale * u, eps[0]))

    def combine(s, rows, state):
        u, has = _surrogate(state)
        scale = jnp.sqrt(jnp.asarray(rows.shape[1], rows.dtype))
        random = jnp.where(has, jnp.arange(pairs) > 0, True).astype(rows.dtype)
        s_rand = s * random
        v = s_rand @ rows
        v_weight = jnp.sum(s_rand**2) / jnp.maximum(v @ v, jnp.finfo(rows.dtype).tiny)
        g = jnp.where(has, s[0] / scale, 0.0) * u + v_weight * v
        return _next(state, g, pairs, _cos_surrogate(g, u, has))

    return _estimator(f"es-pd:{pairs}", pairs, sigma, directions, combine)


def guided(pairs: int, sigma: float = 0.01, alpha: float = 0.5, beta: float = 1.0) -> Estimator:
    """Guided ES with the previous estimate as its one-dimensional surrogate subspace.

    Perturbations ``eps_i = sigma (sqrt(alpha / P) z_i + sqrt(1 - alpha) w_i u)``, ``z_i ~
    N(0, I_P)``, ``w_i ~ N(0, 1)``, and ``g = beta / (2 sigma^2 n) sum_i eps_i (f(x + eps_i)
    - f(x - eps_i))``. ``alpha`` is the knob the past-descent estimator removes; the first
    call (no surrogate) uses ``alpha = 1``.

    Args:
        pairs: antithetic pairs per estimate.
        sigma: the perturbation scale.
        alpha: the weight of the full space against the surrogate, in [0, 1].
        beta: the estimate's scale.

    Returns:
        An :class:`Estimator`.

    References:
        Maheswaranathan, Metz, Tucker, Choi, Sohl-Dickstein. Guided evolutionary strategies:
        augmenting random search with surrogate gradients. ICML 2019.
        https://arxiv.org/abs/1806.10230
    """
    _check(pairs, sigma, "guided")
    if not 0 <= alpha <= 1:
        raise ValueError(f"guided: alpha must be in [0, 1], got {alpha!r}.")

    def directions(x, state):
        u, has = _surrogate(state)
        a = jnp.where(has, alpha, 1.0)
        z = _normals(state, (pairs, x.shape[0] + 1), x.dtype)
        return jnp.sqrt(a / x.shape[0]) * z[:, :-1] + jnp.sqrt(1 - a) * jnp.outer(z[:, -1], u)

    def combine(s, rows, state):
        u, has = _surrogate(state)
        g = beta * (s @ rows) / pairs
        return _next(state, g, pairs, _cos_surrogate(g, u, has))

    return _estimator(f"es-guided:{pairs}", pairs, sigma, directions, combine)
