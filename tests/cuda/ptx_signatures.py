"""Explicit kernel signatures for ``compile_ptx`` (one list per kernel)."""
from numba import types as t


def signatures(dtype):
    d = t.float32 if dtype.itemsize == 4 else t.float64
    a2, a1 = d[:, ::1], d[::1]
    f2, f1 = t.float64[:, ::1], t.float64[::1]
    i32, i64 = t.int32[::1], t.int64[::1]
    i2 = t.int32[:, ::1]
    f, b = t.float64, t.boolean
    return {
        "matmul_rows": [(a2, a2, a2, i32)],
        "update_scaling": [(a2, a2, a2, f, i32)],
        "row_errors": [(a2, a2, a2, f, b, f1, t.int64, f, b, i32, i64, f1, i64, i64),
                       (a2, f2, f2, f, b, f1, t.int64, f, b, i32, i64, f1, i64, i64)],
        "log_lse": [(f2, f2, f, f2, i32)],
        "log_update": [(a2, f2, f2, f, i32)],
        "logs_of_scalings": [(a2, a2, a2, a2, a2, i32, f2, f2, f2, f2, f1)],
        "log_cost": [(f2, f2, f2, f, i32, f1)],
        "prepare_rows": [(a2, a2, b, f, a2, f1, i32, f2, f2, f2, f2, f1, i64, f1, i64, i32)],
        "flag_failures": [(a2, a2, f2, f2, f2, f2, f1, i64, i32, i32)],
        "init_log_scalings": [(a2, a2, f2, f2, f2, b, i32)],
        "balanced_outputs": [(a2, a2, f2, f2, f2, f, a1, a2)],
        "relaxed_outputs": [(a2, a2, f2, f2, f2, f2, f, f, f, a1, a2)],
        "exp_scalings": [(f2, f2, a2, a2)],
        "check_rows": [(a2, a2, i64, f1, f1)],
        "zero_off_support": [(a2, a2)],
        "support_gather": [(a2, a2, i32, i2, i32, a2, a2)],
        "support_combine": [(a2, i2, i32, a2, a2, i32)],
        "support_dots": [(a2, i2, i32, a2, a2, i32)],
        "support_scatter": [(i2, i32, a2, a2, a2, a2, i32)],
        "row_results": [(f1, f1, i64, a1, a1, t.boolean[::1])],
        "fill": [(a2, f)],
        "scale_rows": [(a2, a1, a2)],
    }
