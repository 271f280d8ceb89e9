"""Ask the processor to start loading an embedding row before the kernel reads it.

Why: a shuffled epoch reads the rows of random users and movies. A row that is not in cache
costs a trip to memory, and a loop that reads one row, computes, then reads the next, waits
for each trip in turn. Naming the rows a few ratings (or rows) ahead lets those trips overlap.
It matters where the tables outgrow the cache (the ML-25M-shaped set of bench_scale.py, with
the rows asked for ahead here and in ``numba_adam.adam_rows``); on the small MovieLens sets,
whose tables fit in the cache, it changes little. The figures: benchmarks/RESULTS.md
(bench_scale, and "History of measurements").

``prefetch(row)`` touches nothing and changes no number: it is LLVM's ``llvm.prefetch`` hint
(read, keep in all cache levels) for every 64-byte line of a 1-D array (a row view such as
``w[i]``). A processor may ignore it; it never faults, even on an address it cannot read.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import jit

LINE = 64  # bytes in a cache line on x86-64 and most ARM cores


@intrinsic
def prefetch_at(typingctx, row, index):
    """The hint for the cache line that holds row[index]."""
    def codegen(context, builder, signature, args):
        row_type = signature.args[0]
        array = context.make_array(row_type)(context, builder, args[0])
        address = cgutils.get_item_pointer(context, builder, row_type, array, [args[1]],
                                           wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        # (address, 0: for reading, 3: keep in every cache level, 1: data, not instructions)
        builder.call(hint, [builder.bitcast(address, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(row, types.intp), codegen


@jit(inline="always")
def prefetch(row):
    """The hint for every cache line of ``row`` (1-D, contiguous)."""
    step = max(1, LINE // row.itemsize)
    for e in range(0, row.shape[0], step):
        prefetch_at(row, e)
    if row.shape[0] > 0:
        prefetch_at(row, row.shape[0] - 1)  # a row that starts mid-line ends on one more
