"""``ebm-ppl bpd CKPT --data NAME --split test``: bits per dimension with uniform dequantisation."""

from __future__ import annotations

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import (
    add_devices_arguments,
    add_energy_arguments,
    non_negative_int,
    one_line_warnings,
    positive_int,
    resolve_energy,
    resolve_mesh,
)

HELP = "bits/dim of a data split under a checkpoint (uses the log Z stored by `ebm-ppl logz --write`)"


def add_arguments(parser):
    add_energy_arguments(parser)
    parser.add_argument("--data", default=None, help="data set name or path (default: the checkpoint's)")
    parser.add_argument("--split", default="test", help="train | validation | test (default test)")
    parser.add_argument(
        "--level", type=non_negative_int, default=0, help="noise level the density is taken at (default 0)"
    )
    parser.add_argument("--dequantizations", type=positive_int, default=1, help="dequantisation draws per example")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--method",
        choices=("ais", "elbo", "ode"),
        default="ais",
        help="ais: EBMPrior with the stored log Z; elbo / ode: log Z-free bound / probability-flow "
        "ODE of the diffusion that uses the model's score (docs/likelihood.md)",
    )
    parser.add_argument("--samples", type=int, default=256, help="elbo: Monte Carlo draws per example")
    parser.add_argument("--probes", type=int, default=4, help="ode: Hutchinson probes per example")
    parser.add_argument("--rtol", type=float, default=1e-5, help="ode: solver tolerance (rtol = atol)")
    parser.add_argument(
        "--reference",
        choices=("train", "standard"),
        default="train",
        help="elbo / ode with a network: Gaussian reference of the score interpolated between "
        "levels: the training split's moments (default) or N(0, I) (docs/likelihood.md)",
    )
    add_devices_arguments(parser)


def run(args):
    import jax

    from ebm_ppl import data as data_mod
    from ebm_ppl.distribution import EBMPrior, MissingLogZError
    from ebm_ppl.likelihood import bits_per_dim

    energy = resolve_energy(args)
    name = args.data
    if name is None and args.ckpt:
        from ebm_ppl import checkpoint

        name = (checkpoint.read_config(args.ckpt).get("data") or {}).get("name")
    if name is None:
        raise UsageError("give --data NAME (the data set to score)")
    try:
        x = data_mod.load(name, args.split)
        facts = data_mod.info(name)
    except (data_mod.DataError, ValueError) as err:
        raise UsageError(str(err)) from None
    if tuple(x.shape[1:]) != tuple(energy.data_shape):
        raise UsageError(f"data {name!r} has shape {x.shape[1:]}, the model expects {tuple(energy.data_shape)}")
    mesh, n_dev = resolve_mesh(args)
    if args.method != "ais":
        out = _run_without_log_z(args, energy, x, name, facts)
        out["devices"] = 1  # the log Z-free estimators run unsharded
        return out
    from ebm_ppl.logz import UnreliableLogZWarning

    # EBMPrior and bits_per_dim may both judge the same log Z: one line per level
    with one_line_warnings("bpd", UnreliableLogZWarning, same=lambda m: m.split(": ", 1)[-1]) as caught:
        prior = EBMPrior(args.ckpt if args.ckpt else energy, noise_level=args.level)
        try:
            r = bits_per_dim(
                prior,
                x,
                jax.random.key(args.seed),
                levels=facts.get("levels"),
                num_dequantizations=args.dequantizations,
                mesh=mesh,
                progress=_bar(args),
            )
        except MissingLogZError as err:
            raise UsageError(str(err)) from None
    where = f"{x.shape[0]} examples, levels {r.levels}, level t={args.level}"
    if r.log_z_reliable is False:
        print(
            f"{name}/{args.split}: {r.bpd:.4f} bits/dim, UNRELIABLE: the log Z of level {args.level} is unreliable, "
            f"so the figure is optimistic (log Z is a stochastic lower bound) and its error is at least "
            f"± {r.stderr:.4f} (data {r.stderr_data:.4f}, log Z {r.stderr_log_z:.4f}; {where})"
        )
    else:
        print(
            f"{name}/{args.split}: {r.bpd:.4f} ± {r.stderr:.4f} bits/dim (data {r.stderr_data:.4f}, "
            f"log Z {r.stderr_log_z:.4f}; {where})"
        )
    out = r.to_json()
    out.update({"data": name, "split": args.split, "level": args.level, "devices": n_dev, "warnings": caught.messages})
    return out


def _bar(args):
    """A tqdm progress callback ``progress(done, total)`` over the batches (None under --json)."""
    from ebm_ppl.cli.common import progress_bar

    update, close = progress_bar(not getattr(args, "json", False), "bits/dim")

    def progress(done, total):
        update("", done, total)
        if done >= total:
            close()

    return None if update is None else progress


def _run_without_log_z(args, energy, x, name, facts):
    import jax

    from ebm_ppl.likelihood import bits_per_dim_without_log_z

    if args.level != 0:
        raise UsageError(f"--method {args.method} gives the density of the data level only (--level 0)")
    if args.samples < 2 or args.probes < 2 or not args.rtol > 0:
        raise UsageError("--samples and --probes must be >= 2 and --rtol positive")
    budget = (
        {"num_samples": args.samples}
        if args.method == "elbo"
        else {"num_probes": args.probes, "rtol": args.rtol, "atol": args.rtol}
    )
    if args.reference == "train" and not args.target:
        from ebm_ppl.likelihood import training_reference

        budget["reference"] = training_reference(name)
    r = bits_per_dim_without_log_z(
        jax.random.key(args.seed),
        energy,
        x,
        method=args.method,
        levels=facts.get("levels"),
        bin_width=facts.get("bin_width"),
        **budget,
    )
    print(
        f"{name}/{args.split}: {r['bpd']:.4f} ± {r['stderr']:.4f} bits/dim by {r['method']} "
        f"(Monte Carlo {r['stderr_mc']:.4f}; {x.shape[0]} examples, {r['num_grad_evals']} score evaluations, "
        f"{r['wall_time']:.1f} s)"
    )
    out = {k: v for k, v in r.items() if k != "per_example"}
    out.update({"data": name, "split": args.split, "level": 0})
    return out
