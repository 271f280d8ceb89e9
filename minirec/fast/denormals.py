"""Flush denormal floats to zero inside a Numba kernel (x86-64's FTZ and DAZ bits).

Why: with dense Adam and the Keras L2, an embedding row that no batch touches is pulled
towards zero at every step; after a few epochs many such weights sit near 1e-32, their
squared gradients are *denormal* (below 1.2e-38 in float32), and each vector operation on a
denormal takes a microcode detour of ~100 cycles, which slows the dense Adam loop down
(benchmarks/RESULTS.md, "History of measurements"). Treating denormals as zero
changes results by less than 1e-38 in absolute terms — far below any tolerance — and gives
the speed back.

``flush_denormals()`` sets the two bits of the MXCSR register and returns its old value;
``restore_fp_mode(old)`` puts it back, so nothing outside the kernel is affected. On other
processors both are no-ops.
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in ("x86_64", "amd64")
FTZ_DAZ = 0x8040  # bit 15: flush-to-zero (results), bit 6: denormals-are-zero (inputs)


def _mxcsr(builder, name, slot):
    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(slot, ir.IntType(8).as_pointer())])


@intrinsic
def flush_denormals(typingctx):
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not X86:
            return i32(0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, i32(FTZ_DAZ)), slot)
        _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old
    return types.uint32(), codegen


@intrinsic
def restore_fp_mode(typingctx, old):
    def codegen(context, builder, signature, args):
        if X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(old), codegen
