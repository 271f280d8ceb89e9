"""Two threads only while they pay.

A lazy batch split by table (``numba_mf.train_batches_split``) joins its two threads twice per
batch. On an idle machine the second core's share of the waiting on memory is worth it
(benchmarks/RESULTS.md, "ML-25M scale on the CPU"); with the other core busy, every join waits
for a thread the system has not scheduled yet, and the split costs more than it saves. Both
kernels give the same numbers, bit for bit (tests/test_backends.py), so which one runs a batch
is a question of time alone. ``Chooser`` times them while the epoch runs, a chunk of batches at
a time, runs the faster, and tries the other one again now and then — less and less often
while the answer stays the same — so a core that becomes busy, or free, mid-epoch is noticed.
"""
import time


class Chooser:
    """Which kernel runs the next chunk of batches: "split" (two threads) or "single" (one).

    ``per_batch[name]``: the seconds per batch of that kernel's last chunk. While one is not
    measured yet, it runs (the split first). Then the faster runs, and after ``every`` chunks
    the slower runs a quarter of a chunk, to see whether the machine has changed: ``every``
    doubles (up to ``MOST``) each time the answer stays, and goes back to ``FIRST`` when it
    changes. The
    faster one's figure is renewed by every chunk it runs, so a kernel that slows down (the other
    core became busy) loses its place at once. A chunk is sized to take about ``CHUNK_S``
    seconds: long enough that the timing is not noise, short enough to notice a change.
    """
    FIRST, MOST, CHUNK_S = 4, 128, 0.05

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.per_batch = {"split": None, "single": None}
        self.every = self.left = self.FIRST
        self.size = 4                       # batches in the first chunk, before any timing
        self.chunks = {"split": 0, "single": 0}  # how many chunks each ran (for summary, tests)

    def measured(self):
        return None not in self.per_batch.values()

    def faster(self):
        return min(self.per_batch, key=self.per_batch.get)

    def next(self):
        """The kernel to run next and the most batches to give it."""
        for name, seconds in self.per_batch.items():
            if seconds is None:
                return name, self.size
        fast = self.faster()
        slow = "single" if fast == "split" else "split"
        if self.left <= 0:
            return slow, max(1, self.size // 4)
        return fast, self.size

    def took(self, name, batches, seconds):
        """Record that ``name`` ran ``batches`` batches in ``seconds``."""
        trying_the_slower = self.measured() and name != self.faster()
        self.per_batch[name] = seconds / batches
        self.chunks[name] += 1
        self.size = int(min(4096, max(1, self.CHUNK_S * batches / max(seconds, 1e-9))))
        if not self.measured():
            return
        if trying_the_slower:
            self.every = self.FIRST if self.faster() == name else min(self.MOST, 2 * self.every)
            self.left = self.every
        else:
            self.left -= 1

    def run(self, kernels, first, last):
        """Batches first..last-1, chunk by chunk: ``kernels[name](a, b)`` runs batches a..b-1
        and returns the first batch whose loss was not finite, or -1. Returns the same."""
        a = first
        while a < last:
            name, size = self.next()
            b = min(last, a + size)
            start = self.clock()
            bad = kernels[name](a, b)
            if bad >= 0:
                return bad
            self.took(name, b - a, self.clock() - start)
            a = b
        return -1
