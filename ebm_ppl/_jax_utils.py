"""Small JAX helpers shared across modules."""

from __future__ import annotations

import weakref

#: Inner MCMC loops up to this length are fully unrolled.
MAX_FULL_UNROLL = 64


def inner_unroll(num_steps: int, data_ndim: int = 3) -> int | bool:
    """``unroll`` for the ``lax.scan`` of a short inner MCMC loop (K Langevin/MALA steps).

    XLA:CPU runs convolutions inside a while loop on a slow path: 30 Langevin steps of the digits
    network (batch 64) took 2.9 s as a rolled scan and 0.25 s unrolled, measured on 2 CPU cores. Short
    loops over images (``data_ndim`` >= 3, H x W x C: the only data a network convolves) are
    unrolled fully; vectors (oracles, MLPs) and long loops stay rolled, which keeps compile time
    bounded (a 20-step MALA pilot on a 16-D oracle compiled in 12 s unrolled).
    """
    return True if int(num_steps) <= MAX_FULL_UNROLL and int(data_ndim) >= 3 else 1


def is_traced(*trees) -> bool:
    """True when any leaf of ``trees`` is a JAX tracer (we are inside jit/vmap/grad)."""
    import jax

    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


_JIT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached_jit(fn):
    """``jax.jit(fn)``, built once per function object (a module-level ``fn`` compiles once per
    shapes; a closure made anew on each call still recompiles, so pass data as arguments instead)."""
    import jax

    if hasattr(fn, "lower"):  # already a jitted function
        return fn
    try:
        return _JIT_CACHE[fn]
    except (KeyError, TypeError):
        pass
    jitted = jax.jit(fn)
    try:
        _JIT_CACHE[fn] = jitted
    except TypeError:  # not weak-referenceable (e.g. a functools.partial of a builtin)
        pass
    return jitted


def scan_or_loop(step, carry, xs):
    """``lax.scan(step, carry, xs)``, run as a Python loop over a jitted ``step`` when nothing is traced.

    Same results (same keys, same order). Outside a trace the loop avoids XLA:CPU's slow path for
    convolutions inside while loops (see :func:`inner_unroll`); ``step`` is compiled by
    :func:`cached_jit` (once per function object, so a module-level step or an already jitted one,
    e.g. ``functools.partial(jitted_fn, energy=..., config=...)`` keeps its compilation across
    calls) and dispatched per element of ``xs``. Inside jit/vmap it is the plain scan, so callers
    stay transformable.
    """
    import functools

    import jax
    import jax.numpy as jnp

    if is_traced(carry, xs):
        return jax.lax.scan(step, carry, xs)
    if isinstance(step, functools.partial) and hasattr(step.func, "lower"):
        step_jit = step  # a partial of a jitted function: its own cache applies
    else:
        step_jit = cached_jit(step)
    length = jax.tree_util.tree_leaves(xs)[0].shape[0]
    outputs = []
    for i in range(length):
        carry, y = step_jit(carry, jax.tree_util.tree_map(lambda a, i=i: a[i], xs))
        outputs.append(y)
    stacked = jax.tree_util.tree_map(lambda *ys: jnp.stack(ys), *outputs) if outputs else None
    return carry, stacked


def robbins_monro_increment(acceptance, target, gain: float = 2.0, iteration=None, decay: float = 0.6, clip=None):
    """The one step-size rule of the library's tuners: the change of log(step size) after a move
    with mean acceptance ``acceptance``, ``gain (acceptance - target) / (iteration + 1)^decay``
    (no decay when ``iteration`` is None), clipped to ``clip = (lo, hi)`` when given. Works on
    Python floats and on traced arrays alike."""
    inc = gain * (acceptance - target)
    if iteration is not None:
        inc = inc / (iteration + 1.0) ** decay
    if clip is not None:
        import jax.numpy as jnp

        inc = jnp.clip(inc, clip[0], clip[1])
    return inc


_PACKAGE_DIR = __import__("os").path.dirname(__import__("os").path.abspath(__file__))


def _skipped_prefixes() -> tuple[str, ...]:
    """ebm_ppl's folder, and NumPyro's distributions (an EBMPrior is built through its metaclass)."""
    import os

    import numpyro.distributions

    return (_PACKAGE_DIR, os.path.dirname(os.path.abspath(numpyro.distributions.__file__)))


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first stack frame outside the ebm_ppl package (the
    user's line), however deep in the library it is raised and whatever wrappers lie between."""
    import warnings

    warnings.warn(message, category, skip_file_prefixes=_skipped_prefixes())


def alias_moved_module(old: str, new: str, submodules: dict[str, str] | None = None):
    """The body of a deprecated module ``old`` whose code moved to ``new``: warns once (a
    DeprecationWarning naming ``new``) and registers ``old.<name>`` as the module ``new.<target>``
    for each ``name: target`` of ``submodules``, so ``import old.name`` keeps working for one
    release. Returns the module ``new`` (the shim re-exports its public names)."""
    import importlib
    import sys

    warn(f"{old} moved to {new}; import from {new} (the old name goes in the next release)", DeprecationWarning)
    for name, target in (submodules or {}).items():
        sys.modules[f"{old}.{name}"] = importlib.import_module(f"{new}.{target}")
    return importlib.import_module(new)


#: old keyword -> BlackJAX's spelling (the old ones work for one release, with a DeprecationWarning)
RENAMED_KEYWORDS = {"target_accept": "target_acceptance", "num_leapfrog": "num_integration_steps"}


def renamed_keywords(where: str, given: dict, renames: dict | None = None) -> dict:
    """``{new_name: value}`` for the deprecated keywords in ``given`` (the function's ``**deprecated``),
    each with a DeprecationWarning; any other name raises the TypeError Python would have raised.
    ``renames``: this function's own old -> new names (default :data:`RENAMED_KEYWORDS`)."""

    renames = RENAMED_KEYWORDS if renames is None else renames
    out = {}
    for old, value in given.items():
        if old not in renames:
            raise TypeError(f"{where}() got an unexpected keyword argument {old!r}")
        new = renames[old]
        warn(f"{where}: {old}= is deprecated; use {new}=", DeprecationWarning)
        out[new] = value
    return out


def resolve_options(where: str, config_type, config, options: dict, renames: dict | None = None):
    """``config`` (an instance of the NamedTuple ``config_type``, or None for its defaults) with the
    keyword ``options`` applied: each a field name, or an old name in ``renames`` (old -> new, which
    warns); any other keyword raises the TypeError Python would have raised."""
    return resolve_option_groups(where, [(config_type, config)], options, renames)[0]


def resolve_option_groups(where: str, groups, options: dict, renames: dict | None = None) -> tuple:
    """:func:`resolve_options` for a function with several config NamedTuples: ``groups`` is a
    sequence of ``(config_type, config or None)`` or ``(config_type, config, argument name)`` (the
    name in error messages, default ``config``); each keyword of ``options`` goes to every group
    that has a field of its name. Returns the resolved configs, in order."""
    resolved = []
    for config_type, config, *name in groups:
        if config is None:
            config = config_type()
        elif not isinstance(config, config_type):
            article = "an" if config_type.__name__[0] in "AEIOU" else "a"
            raise TypeError(
                f"{where}: {(name or ['config'])[0]} must be {article} {config_type.__name__}, got {type(config).__name__}"
            )
        resolved.append(config)
    options = dict(options)
    old = {name: options.pop(name) for name in list(options) if name in (renames or {})}
    fields = {name for config in resolved for name in config._fields}
    unknown = [name for name in options if name not in fields]
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    for new, value in renamed_keywords(where, old, renames).items():
        options.setdefault(new, value)
    return tuple(config._replace(**{k: v for k, v in options.items() if k in config._fields}) for config in resolved)


class ArgumentOrderWarning(DeprecationWarning):
    """A call used the old argument order (the PRNG key moved to the first parameter, ``rng_key``)."""


def is_prng_key(value) -> bool:
    """True for a PRNG key: a typed key array (``jax.random.key``) or a raw ``uint32[2]`` one
    (``jax.random.PRNGKey``), concrete or traced."""
    import jax
    import numpy as np

    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return False
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return True
    return dtype == np.uint32 and tuple(getattr(value, "shape", ())) == (2,)


def rng_key_first(old_position: int):
    """Decorator of a function whose PRNG key is now its first parameter, ``rng_key`` (BlackJAX's
    convention). A call in the old order, with the key at positional index ``old_position``, or with
    the key given as ``key=``, still works for one release with an :class:`ArgumentOrderWarning`
    (a DeprecationWarning) naming the new call."""
    import functools

    def wrap(fn):
        where = f"{fn.__module__}.{fn.__qualname__}"

        def old_form(how: str) -> None:
            warn(
                f"{where}: {how}; the PRNG key is now the first argument, {fn.__name__}(rng_key, ...). "
                f"The old form goes in the next release.",
                ArgumentOrderWarning,
            )

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if "key" in kwargs:
                if "rng_key" in kwargs:
                    raise TypeError(f"{where}() got both rng_key= and its old name key=")
                old_form("key= is deprecated, use rng_key=")
                kwargs["rng_key"] = kwargs.pop("key")
            if "rng_key" in kwargs and args and not is_prng_key(args[0]):
                args = (kwargs.pop("rng_key"),) + args
            elif args and not is_prng_key(args[0]) and len(args) > old_position and is_prng_key(args[old_position]):
                old_form("the key was passed in its old position")
                args = (args[old_position],) + args[:old_position] + args[old_position + 1 :]
            return fn(*args, **kwargs)

        return wrapper

    return wrap
