"""The binary copy task of KF-RTRL and OK, as one continuous stream of episodes."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

#: Input channels: bit 0, bit 1, the recall marker.
INPUT_SIZE = 3
#: Output classes: the two bits.
OUTPUT_SIZE = 2


def copy_stream(
    key: PRNGKeyArray, steps: int, *, min_length: int = 1, max_length: int = 10
) -> tuple[Float[Array, "T 3"], Float[Array, "T 2"]]:
    """``steps`` time steps of back-to-back copy episodes.

    An episode of length ``L`` (uniform in ``[min_length, max_length]``) shows ``L`` random
    bits (one-hot on channels 0 and 1), then the recall marker (channel 2), then ``L``
    blank steps during which the target is the string, bit by bit. Targets are one-hot
    during recall and zero elsewhere, for :func:`rtrlx.losses.soft_cross_entropy`. The
    stream ends where ``steps`` does, possibly mid-episode.

    Args:
        key: PRNG key.
        steps: the number of time steps ``T``.
        min_length: shortest string.
        max_length: longest string.

    Returns:
        ``(xs (T, 3), ys (T, 2))`` in the default float dtype.

    Examples:
        >>> import jax
        >>> xs, ys = copy_stream(jax.random.key(0), 50, max_length=4)
        >>> xs.shape, ys.shape
        ((50, 3), (50, 2))
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"copy_stream: need 1 <= min_length <= max_length, got {min_length}, {max_length}."
        )
    k_len, k_bits = jax.random.split(key)
    episodes = steps // (2 * min_length + 1) + 1
    lengths = jax.random.randint(k_len, (episodes,), min_length, max_length + 1)
    bits = jax.random.bernoulli(k_bits, 0.5, (episodes, max_length)).astype(jnp.int32)
    ends = jnp.cumsum(2 * lengths + 1)
    t = jnp.arange(steps)
    episode = jnp.searchsorted(ends, t, side="right")
    start = ends[episode] - (2 * lengths[episode] + 1)
    pos = t - start
    length = lengths[episode]
    shown = jnp.take_along_axis(bits[episode], jnp.clip(pos, 0, max_length - 1)[:, None], 1)[:, 0]
    recalled_pos = jnp.clip(pos - length - 1, 0, max_length - 1)
    recalled = jnp.take_along_axis(bits[episode], recalled_pos[:, None], 1)[:, 0]
    eye = jnp.eye(INPUT_SIZE)
    xs = jnp.where(
        (pos < length)[:, None],
        eye[shown],
        jnp.where((pos == length)[:, None], eye[2], jnp.zeros(INPUT_SIZE)),
    )
    ys = jnp.where((pos > length)[:, None], jnp.eye(OUTPUT_SIZE)[recalled], 0.0)
    return xs, ys
