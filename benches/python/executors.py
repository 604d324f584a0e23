# Python's concurrent.futures on the same work as the Rust benchmarks, 2 workers by default.
#
# Two modes:
#   python3 benches/python/executors.py [runs]
#       20,000 tiny tasks (a + b), 200 tasks with a 1 MiB bytes argument, and start-up of a pool with
#       two tasks (two workers); prints one line per figure: name, median, min, max over the runs. Run by
#       `cargo bench --bench process`.
#   python3 benches/python/executors.py --report WORKLOAD ARGS...
#       one measurement of each Python peer on one workload, printed as `peer seconds` lines (wall
#       time of the whole workload). Run by `cargo bench --bench report` once per run, so the Python
#       figures come from the same run as the Rust ones. Workloads:
#         tiny TASKS WORKERS                 TASKS calls of add(i, 1), results read in order
#         payload BYTES TASKS WORKERS        TASKS calls of len(b) on one prebuilt bytes object
#         cpu TASKS SECONDS WORKERS          TASKS calls of burn(n), n calibrated to SECONDS each;
#                                            `sequential` is the same calls in a plain loop
#         startup WORKERS                    open a pool, WORKERS tasks, shut down (after one
#                                            untimed warm-up pool in the same interpreter)
#         map ITEMS CHUNKSIZE WORKERS        list(ex.map(square, range(ITEMS), chunksize=...))
#       Except for `startup`, every figure excludes the pool's start-up: every worker is started by
#       untimed warm-up calls first.
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def add(a, b):
    return a + b


def length(b):
    return len(b)


def square(x):
    return x * x


def burn(n):
    x = 0
    for i in range(n):
        x = (x * 1103515245 + i) & 0xFFFFFFFF
    return x


def calibrate(seconds):
    n = 10000
    while True:
        t = time.perf_counter()
        burn(n)
        dt = time.perf_counter() - t
        if dt > 0.01:
            return max(1, int(n * seconds / dt))
        n *= 2


def warm(ex, workers):
    # Start every worker before the timing: a spawn-context pool (and a thread pool) starts one
    # worker per submit that finds none idle, so `workers` calls at once start them all.
    [f.result() for f in [ex.submit(add, i, 1) for i in range(workers)]]


def tiny(executor_type, n=20000, workers=2, **kw):
    with executor_type(max_workers=workers, **kw) as ex:
        warm(ex, workers)  # workers up: start-up is measured separately
        t = time.perf_counter()
        fs = [ex.submit(add, i, 1) for i in range(n)]
        r = [f.result() for f in fs]
        dt = time.perf_counter() - t
    assert r[-1] == n
    return dt


def payload(executor_type=ProcessPoolExecutor, size=1 << 20, tasks=200, workers=2, **kw):
    b = bytes(size)
    with executor_type(max_workers=workers, **kw) as ex:
        warm(ex, workers)
        t = time.perf_counter()
        fs = [ex.submit(length, b) for _ in range(tasks)]
        r = [f.result() for f in fs]
        dt = time.perf_counter() - t
    assert r[-1] == size
    return dt


def cpu(executor_type, n_iter, tasks, workers, **kw):
    with executor_type(max_workers=workers, **kw) as ex:
        warm(ex, workers)
        t = time.perf_counter()
        [f.result() for f in [ex.submit(burn, n_iter) for _ in range(tasks)]]
        return time.perf_counter() - t


def startup(executor_type=ProcessPoolExecutor, workers=2, **kw):
    t = time.perf_counter()
    with executor_type(max_workers=workers, **kw) as ex:
        fs = [ex.submit(add, i, 2) for i in range(workers)]
        [f.result() for f in fs]
    return time.perf_counter() - t


def mapping(executor_type, items, chunksize, workers, **kw):
    with executor_type(max_workers=workers, **kw) as ex:
        warm(ex, workers)
        t = time.perf_counter()
        r = list(ex.map(square, range(items), chunksize=chunksize))
        dt = time.perf_counter() - t
    assert len(r) == items and r[-1] == (items - 1) ** 2
    return dt


def report(name, unit, runs):
    print(f"{name} [{unit}]: median {statistics.median(runs):.3f} min {min(runs):.3f} max {max(runs):.3f}", flush=True)


def peers():
    return [
        ("thread", ThreadPoolExecutor, {}),
        ("fork", ProcessPoolExecutor, {"mp_context": mp.get_context("fork")}),
        ("spawn", ProcessPoolExecutor, {"mp_context": mp.get_context("spawn")}),
    ]


def one_report(workload, args):
    out = {}
    if workload == "tiny":
        tasks, workers = int(args[0]), int(args[1])
        for name, ex, kw in peers():
            out[name] = tiny(ex, tasks, workers, **kw)
    elif workload == "payload":
        size, tasks, workers = int(args[0]), int(args[1]), int(args[2])
        for name, ex, kw in peers():
            out[name] = payload(ex, size, tasks, workers, **kw)
    elif workload == "cpu":
        tasks, seconds, workers = int(args[0]), float(args[1]), int(args[2])
        n_iter = calibrate(seconds)
        t = time.perf_counter()
        for _ in range(tasks):
            burn(n_iter)
        out["sequential"] = time.perf_counter() - t
        for name, ex, kw in peers():
            out[name] = cpu(ex, n_iter, tasks, workers, **kw)
    elif workload == "startup":
        workers = int(args[0])
        for name, ex, kw in peers():
            startup(ex, workers, **kw)  # warm-up: first-use costs of the interpreter, not of a pool
            out[name] = startup(ex, workers, **kw)
    elif workload == "map":
        items, chunksize, workers = int(args[0]), int(args[1]), int(args[2])
        for name, ex, kw in peers():
            out[name] = mapping(ex, items, chunksize, workers, **kw)
    else:
        sys.exit(f"unknown workload {workload!r}")
    for name, seconds in out.items():
        print(f"{name} {seconds!r}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--report":
        one_report(sys.argv[2], sys.argv[3:])
        sys.exit(0)
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    fork = {"mp_context": mp.get_context("fork")}
    spawn = {"mp_context": mp.get_context("spawn")}
    per_task = lambda dt, n=20000: dt / n * 1e6  # µs per task
    per_second = lambda dt: 200 * (1 << 20) / dt / 1e9  # GB/s
    report("python ThreadPoolExecutor tiny", "us/task", [per_task(tiny(ThreadPoolExecutor)) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) tiny", "us/task", [per_task(tiny(ProcessPoolExecutor, **fork)) for _ in range(runs)])
    report("python ProcessPoolExecutor(spawn) tiny", "us/task", [per_task(tiny(ProcessPoolExecutor, n=5000, **spawn), 5000) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) 1MiB", "GB/s", [per_second(payload(**fork)) for _ in range(runs)])
    report("python ProcessPoolExecutor(spawn) 1MiB", "GB/s", [per_second(payload(**spawn)) for _ in range(runs)])
    report("python ProcessPoolExecutor(fork) start-up", "ms", [startup(workers=2, **fork) * 1e3 for _ in range(max(runs, 5))])
    report("python ProcessPoolExecutor(spawn) start-up", "ms", [startup(workers=2, **spawn) * 1e3 for _ in range(max(runs, 5))])
