"""fast/split.py: two threads only while they pay. The Chooser is driven here by stand-in
kernels on a stand-in clock (no Numba, no timing of this machine): each kernel "takes" a set
number of seconds per batch, which the test changes mid-run. tests/test_backends.py holds the
real kernels, switched chunk by chunk, to the one-thread numbers bit for bit."""
from minirec.fast.split import Chooser


class Machine:
    """Stand-in kernels on a stand-in clock: kernel ``name`` takes ``cost[name](batch)`` seconds
    per batch; every range run is logged."""

    def __init__(self, cost, bad=None):
        self.now, self.cost, self.bad, self.log = 0.0, cost, bad, []

    def clock(self):
        return self.now

    def kernels(self):
        def kernel(name):
            def run(a, b):
                self.log.append((name, a, b))
                for batch in range(a, b):
                    if batch == self.bad:
                        return batch
                    self.now += self.cost[name](batch)
                return -1
            return run
        return {"split": kernel("split"), "single": kernel("single")}

    def batches_on(self, name):
        return sum(b - a for n, a, b in self.log if n == name)


def run(machine, first, last, chooser=None):
    chooser = chooser or Chooser(machine.clock)
    return chooser.run(machine.kernels(), first, last), chooser


def test_every_batch_runs_once_in_order_and_a_bad_batch_stops_the_run():
    m = Machine({"split": lambda b: 1e-3, "single": lambda b: 2e-3})
    bad, _ = run(m, 10, 5000)
    assert bad == -1
    ranges = [(a, b) for _, a, b in m.log]
    assert ranges[0][0] == 10 and ranges[-1][1] == 5000
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(ranges, ranges[1:]))  # no gap, no repeat
    m = Machine({"split": lambda b: 1e-3, "single": lambda b: 2e-3}, bad=777)
    assert run(m, 0, 5000)[0] == 777 and m.log[-1][2] > 777 and m.log[-1][1] <= 777


def test_a_split_slower_than_one_thread_runs_on_one_and_is_tried_less_and_less_often():
    """The other core busy: the split takes twice as long. After both are measured, one thread
    runs; the split is tried again, for a quarter of a chunk, after 4, 8, 16, ... chunks (at
    most every 128), so it costs well under a per cent of the batches, not half."""
    m = Machine({"split": lambda b: 2e-3, "single": lambda b: 1e-3})
    run(m, 0, 200_000)
    split_share = m.batches_on("split") / 200_000
    assert split_share < 0.01, split_share
    runs = [name for name, _, _ in m.log]
    tries = [i for i, name in enumerate(runs) if name == "split"][1:]  # after the first timing
    gaps = [b - a - 1 for a, b in zip(tries, tries[1:])]
    assert gaps[:5] == [8, 16, 32, 64, 128] and set(gaps[5:]) == {128}
    sizes = [b - a for name, a, b in m.log[2:-1]]
    probe, chunk = min(sizes), max(sizes)
    assert probe == chunk // 4  # a try of the slower one: a quarter of a chunk


def test_a_kernel_that_slows_down_loses_its_place_at_once_and_one_that_speeds_up_is_noticed():
    """The split is faster until batch 50,000 (the other core becomes busy), then slower; one
    thread takes the place at the chunk after. From batch 120,000 the core is free again: the
    next try of the split finds it faster, and it runs again."""
    busy = lambda b: 50_000 <= b < 120_000  # noqa: E731
    m = Machine({"split": lambda b: 3e-3 if busy(b) else 0.6e-3, "single": lambda b: 1e-3})
    run(m, 0, 200_000)
    on = {name: [b for n, a, b_end in m.log if n == name for b in range(a, b_end)]
          for name in ("split", "single")}
    late_split = [b for b in on["split"] if 50_000 <= b < 120_000]
    assert len(late_split) < 0.05 * 70_000  # mostly one thread while the core is busy
    assert min(b for b in on["single"] if b >= 50_000) < 50_000 + 200  # at once: a chunk or so
    assert sum(b >= 120_000 for b in on["split"]) > 0.9 * 80_000  # back to the split


def test_chunks_take_about_a_twentieth_of_a_second_and_the_chooser_lasts_between_calls():
    m = Machine({"split": lambda b: 1e-4, "single": lambda b: 3e-4})
    _, chooser = run(m, 0, 10_000)
    name, size = chooser.next()
    assert name == "split" and abs(size * 1e-4 - Chooser.CHUNK_S) <= 1e-4
    logged = len(m.log)
    run(m, 10_000, 20_000, chooser)  # the next call starts from what was measured: no new
    assert m.log[logged][0] == "split"  # timing of the slower one first
