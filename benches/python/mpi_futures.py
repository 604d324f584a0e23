# mpi4py.futures on the same work as benches/mpi.rs, 2 workers: start-up, 20,000 tiny tasks (a + b),
# 200 tasks with a 1 MiB bytes argument, and map over 20,000 items in chunks of 100. Run by
# `cargo bench --features mpi --bench mpi`, launched (`mpirun -n 3 python3 -m mpi4py.futures
# mpi_futures.py`) and alone (`python3 mpi_futures.py --startup-only`: the executor spawns its
# workers). Prints `RESULT name value` lines: medians of 5 runs.
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor

RUNS = 5


def add(a, b):
    return a + b


def add_one(a):
    return a + 1


def length(b):
    return len(b)


def report(name, value):
    print(f"RESULT {name} {value}", flush=True)


def main():
    t = time.perf_counter()
    with MPIPoolExecutor(max_workers=2) as ex:
        assert ex.submit(add, 1, 1).result() == 2
        report("startup_ms", (time.perf_counter() - t) * 1e3)
        if "--startup-only" in sys.argv:
            return
        tiny = []
        for _ in range(RUNS):
            t = time.perf_counter()
            fs = [ex.submit(add, i, 1) for i in range(20000)]
            assert [f.result() for f in fs][-1] == 20000
            tiny.append((time.perf_counter() - t) / 20000 * 1e6)
        report("tiny_us_per_task", statistics.median(tiny))
        payload = bytes(1 << 20)
        rates = []
        for _ in range(RUNS):
            t = time.perf_counter()
            fs = [ex.submit(length, payload) for _ in range(200)]
            assert sum(f.result() for f in fs) == 200 << 20
            rates.append((200 << 20) / (time.perf_counter() - t) / 1e9)
        report("mib_gb_per_s", statistics.median(rates))
        maps = []
        for _ in range(RUNS):
            t = time.perf_counter()
            total = sum(ex.map(add_one, range(20000), chunksize=100))
            assert total == 20000 * 20001 // 2
            maps.append((time.perf_counter() - t) / 20000 * 1e6)
        report("map_us_per_item", statistics.median(maps))


if __name__ == "__main__":
    main()
