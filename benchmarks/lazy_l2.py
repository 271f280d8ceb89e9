"""Does lazy Adam keep the notebook's accuracy? The bias model under the notebook's schedule.

Run:  python benchmarks/lazy_l2.py [--data DIR] [--no-torch] [--write]

Trains the bias model with the notebook's schedule (1, 3, 6, 10, 5 epochs at 1e-3, 1e-2, 1e-3,
1e-3, 1e-3; batch 64; L2 1e-4) three ways with minirec — dense Adam (Keras), lazy Adam with
the penalty on the looked-up rows only (``lazy_l2="seen"``, what SparseAdam users write), lazy
Adam with the balanced penalty (``lazy_l2="balanced"``, the default) — and, when PyTorch is
installed, with SparseAdam. Prints the validation MSE after the last stage and the seconds.
"""
import argparse
import time

import minirec
from minirec.tools import lesson4
from bench_epoch import TorchRun, default_data
from results import table


def minirec_run(ds, train, valid, lazy, lazy_l2="balanced"):
    model = lesson4.build("bias", ds, seed=42, backend="numba")
    model.compile(minirec.Adam(1e-3, lazy=lazy, lazy_l2=lazy_l2))
    start = time.perf_counter()
    for epochs, lr in lesson4.NOTEBOOK["bias"]:
        model.optimizer.lr = lr
        model.fit(train.x, train.y, batch_size=64, epochs=epochs, verbose=0)
    return model.evaluate(valid.x, valid.y), time.perf_counter() - start


def torch_run(ds, train, valid):
    run = TorchRun("bias", True, ds, train, valid)
    start = time.perf_counter()
    for epochs, lr in lesson4.NOTEBOOK["bias"]:
        for opt in run.opts:
            for group in opt.param_groups:
                group["lr"] = lr
        for _ in range(epochs):
            run.epoch()
    return run.val_mse(), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    ds = minirec.load_movielens(args.data)
    train, valid = ds.split(0.8, seed=42)
    rows = []
    for label, kwargs in (("minirec, dense Adam (Keras)", dict(lazy=False)),
                          ("minirec, lazy Adam, L2 on the rows seen", dict(lazy=True, lazy_l2="seen")),
                          ("minirec, lazy Adam, balanced L2", dict(lazy=True, lazy_l2="balanced"))):
        mse, seconds = minirec_run(ds, train, valid, **kwargs)
        rows.append((label, f"{mse:.4f}", f"{seconds:.1f}"))
        print(" | ".join(rows[-1]), flush=True)
    if not args.no_torch:
        mse, seconds = torch_run(ds, train, valid)
        rows.append(("PyTorch, SparseAdam, L2 on the rows seen", f"{mse:.4f}", f"{seconds:.1f}"))
        print(" | ".join(rows[-1]), flush=True)
    text = "\n\n".join([
        "## Lazy updates and L2 (lazy_l2.py)",
        f"The bias model on {ds.name} (seed 42) with the notebook's 25-epoch schedule, batch 64, "
        "L2 1e-4: validation MSE after the last stage, and seconds of training.",
        table(("training", "val MSE", "seconds"), rows)])
    print("\n" + text)
    if args.write:
        from results import write_section
        write_section("lazy_l2", text)


if __name__ == "__main__":
    main()
