/* Fused selective-scan kernels for the CPU, compiled at first use by biomarker/nn/scan_native.py.
 *
 * Why C: the recurrence is sequential in time, so any tensor-library formulation pays one pass over memory
 * per step or per chunk. Here each (batch, channel) pair keeps its n-state in registers, the n-loop is one
 * SIMD vector (n = 16 fp32 is one AVX-512 register, exp included via glibc's libmvec under -ffast-math),
 * and nothing of size (L, n) per channel is ever written: the forward stores one state every SEGMENT steps;
 * the backward recomputes a segment's states and decays into an L1-sized buffer and walks it backwards.
 *
 * REAL is float, or double with -DSCAN_DOUBLE (the file is compiled once per dtype). Layouts (all contiguous):
 *   u, dt, y, grad_y, grad_u, grad_dt : [batch][dim][length]
 *   A                                 : [dim][n]
 *   Bt, Ct                            : [batch][length][n]   (time-major so B_t is one contiguous vector)
 *   checkpoints                       : [batch][dim][segments][n]  state before each segment
 *   grad_A_part                       : [batch][dim][n]       summed over batch by the caller
 *   grad_Bt_part, grad_Ct_part        : [batch][length][n]    one such buffer per worker, summed by the caller
 * Workers call a function on a disjoint range of channels [c0, c1) with c = b * dim + d; two workers never
 * write the same element of their own output buffers.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef SCAN_DOUBLE
#define REAL double
#define EXP exp
#define NAME(base) base##_f64
#else
#define REAL float
#define EXP expf
#define NAME(base) base##_f32
#endif
#define SEGMENT 64
#define MAX_STATE 256

static inline void forward_channel(int64_t length, int64_t n, const REAL *restrict u, const REAL *restrict dt,
                                   const REAL *restrict a, const REAL *restrict Bt, const REAL *restrict Ct,
                                   REAL *restrict y, REAL *restrict checkpoints) {
    REAL h[MAX_STATE];
    for (int64_t k = 0; k < n; k++) h[k] = 0;
    for (int64_t t = 0; t < length; t++) {
        if (checkpoints && t % SEGMENT == 0) memcpy(checkpoints + (t / SEGMENT) * n, h, n * sizeof(REAL));
        const REAL step = dt[t], drive = dt[t] * u[t];
        const REAL *restrict b = Bt + t * n, *restrict c = Ct + t * n;
        REAL acc = 0;
        for (int64_t k = 0; k < n; k++) {
            h[k] = EXP(step * a[k]) * h[k] + drive * b[k];
            acc += h[k] * c[k];
        }
        y[t] = acc;
    }
}

void NAME(scan_forward)(int64_t c0, int64_t c1, int64_t dim, int64_t length, int64_t n, const REAL *u,
                        const REAL *dt, const REAL *A, const REAL *Bt, const REAL *Ct, REAL *y, REAL *checkpoints) {
    const int64_t segments = (length + SEGMENT - 1) / SEGMENT;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t b = c / dim, d = c % dim;
        /* n is nearly always 16: a constant trip count lets the compiler keep the state in one register. */
        if (n == 16)
            forward_channel(length, 16, u + c * length, dt + c * length, A + d * 16, Bt + b * length * 16,
                            Ct + b * length * 16, y + c * length, checkpoints ? checkpoints + c * segments * 16 : 0);
        else
            forward_channel(length, n, u + c * length, dt + c * length, A + d * n, Bt + b * length * n,
                            Ct + b * length * n, y + c * length, checkpoints ? checkpoints + c * segments * n : 0);
    }
}

static inline void backward_channel(int64_t length, int64_t n, const REAL *restrict u, const REAL *restrict dt,
                                    const REAL *restrict a, const REAL *restrict Bt, const REAL *restrict Ct,
                                    const REAL *restrict checkpoints, const REAL *restrict grad_y,
                                    REAL *restrict grad_u, REAL *restrict grad_dt, REAL *restrict grad_a,
                                    REAL *restrict grad_Bt, REAL *restrict grad_Ct) {
    REAL states[(SEGMENT + 1) * MAX_STATE], decays[SEGMENT * MAX_STATE];
    REAL carry[MAX_STATE], ga[MAX_STATE]; /* carry = decay_{t+1} * dL/dh_{t+1} */
    for (int64_t k = 0; k < n; k++) carry[k] = 0, ga[k] = 0;
    const int64_t segments = (length + SEGMENT - 1) / SEGMENT;
    for (int64_t s = segments - 1; s >= 0; s--) {
        const int64_t start = s * SEGMENT, stop = start + SEGMENT < length ? start + SEGMENT : length;
        memcpy(states, checkpoints + s * n, n * sizeof(REAL));
        for (int64_t t = start; t < stop; t++) { /* recompute this segment's states and decays */
            const REAL step = dt[t], drive = dt[t] * u[t];
            const REAL *restrict b = Bt + t * n;
            const REAL *restrict prev = states + (t - start) * n;
            REAL *restrict next = states + (t - start + 1) * n, *restrict decay = decays + (t - start) * n;
            for (int64_t k = 0; k < n; k++) {
                decay[k] = EXP(step * a[k]);
                next[k] = decay[k] * prev[k] + drive * b[k];
            }
        }
        for (int64_t t = stop - 1; t >= start; t--) {
            const REAL step = dt[t], drive = dt[t] * u[t], g = grad_y[t];
            const REAL *restrict b = Bt + t * n, *restrict c = Ct + t * n;
            const REAL *restrict h = states + (t - start + 1) * n, *restrict prev = states + (t - start) * n;
            const REAL *restrict decay = decays + (t - start) * n;
            REAL *restrict gb = grad_Bt + t * n, *restrict gc = grad_Ct + t * n;
            REAL g_drive = 0, g_log_decay = 0;
            for (int64_t k = 0; k < n; k++) {
                const REAL gh = carry[k] + g * c[k];   /* dL/dh_t */
                const REAL w = gh * decay[k] * prev[k]; /* dL/d(dt_t * a_k) */
                gc[k] += g * h[k];
                gb[k] += gh * drive;
                g_drive += gh * b[k];
                ga[k] += w * step;
                g_log_decay += w * a[k];
                carry[k] = gh * decay[k];
            }
            grad_dt[t] = g_log_decay + g_drive * u[t];
            grad_u[t] = g_drive * step;
        }
    }
    for (int64_t k = 0; k < n; k++) grad_a[k] = ga[k];
}

void NAME(scan_backward)(int64_t c0, int64_t c1, int64_t dim, int64_t length, int64_t n, const REAL *u,
                         const REAL *dt, const REAL *A, const REAL *Bt, const REAL *Ct, const REAL *checkpoints,
                         const REAL *grad_y, REAL *grad_u, REAL *grad_dt, REAL *grad_A_part, REAL *grad_Bt_part,
                         REAL *grad_Ct_part) {
    const int64_t segments = (length + SEGMENT - 1) / SEGMENT;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t b = c / dim, d = c % dim;
        const int64_t off = c * length, bt = b * length * n;
        if (n == 16)
            backward_channel(length, 16, u + off, dt + off, A + d * 16, Bt + bt, Ct + bt, checkpoints + c * segments * 16,
                             grad_y + off, grad_u + off, grad_dt + off, grad_A_part + c * 16, grad_Bt_part + bt,
                             grad_Ct_part + bt);
        else
            backward_channel(length, n, u + off, dt + off, A + d * n, Bt + bt, Ct + bt, checkpoints + c * segments * n,
                             grad_y + off, grad_u + off, grad_dt + off, grad_A_part + c * n, grad_Bt_part + bt,
                             grad_Ct_part + bt);
    }
}
