/* Fused selective-scan kernels for the CPU, compiled at first use by biomarker/nn/scan_native.py.
 *
 * Why C: the recurrence is sequential in time, so any tensor-library formulation pays one pass over memory
 * per step or per chunk. Here each (batch, channel) pair keeps its n-state in registers, the n-loop is SIMD
 * (exp included, via glibc's libmvec under -ffast-math), and nothing of size (L, n) per channel is ever
 * written: the forward stores one state every SEGMENT steps; the backward recomputes a segment's states and
 * decays into an L1-sized buffer and walks it backwards. The elementwise parts around the scan (delta_bias,
 * softplus, D skip, silu(z) gate) are fused in too: as separate tensor ops they cost as much as the scan at
 * L = 512.
 *
 * Math (mamba-ssm's selective_scan_ref): dt = softplus(delta + bias); h_t = exp(dt_t a)·h_{t-1} + dt_t u_t B_t;
 * y_t = <C_t, h_t> + D u_t; out_t = y_t · silu(z_t).
 *
 * REAL is float, or double with -DSCAN_DOUBLE (the file is compiled once per dtype). Layouts (contiguous):
 *   u, delta, z, out, grad_out, grad_u, grad_delta, grad_z : [batch][dim][length]
 *   A : [dim][n];  D, bias : [dim] (NULL when absent; z may be NULL too)
 *   Bt, Ct                                                  : [batch][length][n]  (B_t is one contiguous vector)
 *   checkpoints                                             : [batch][dim][segments][n]  state before each segment
 *   grad_A_part [batch][dim][n], grad_D_part and grad_bias_part [batch][dim]: summed over batch by the caller
 *   grad_Bt_part, grad_Ct_part                              : [batch][length][n], one buffer per worker
 * Both entry points return 0, or 1 when their scratch rows cannot be allocated.
 * Workers call a function on a disjoint range of channels [c0, c1) with c = b * dim + d; two workers never
 * write the same element of their own output buffers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef SCAN_DOUBLE
#define REAL double
#define EXP exp
#define EXPM1 expm1
#define LOG1P log1p
#define NAME(base) base##_f64
#else
#define REAL float
#define EXP fast_expf
#define EXPM1 expm1f
#define LOG1P log1pf
#define NAME(base) base##_f32
#endif
/* exp for the decays exp(dt·a) ≤ 1, inlined so the state stays in registers: a call to libmvec's vector expf
 * clobbers every vector register, which forces the state through memory at each step. Cody-Waite reduction
 * to |r| ≤ ln2/2 and a degree-6 Taylor polynomial: relative error ≤ 2e-7 (about 1 ulp), far inside the
 * 1e-5 agreement the tests demand. Inputs below -87 are clamped (exp ≈ 1.6e-38 instead of 0). */
static inline float fast_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float k = __builtin_rintf(x * 1.44269504088896341f);
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#define SEGMENT 64
#define MAX_STATE 256
#define SOFTPLUS_LINEAR 20 /* softplus(x) = x above this, as in torch and mamba-ssm */

/* dt[t] = softplus(delta[t] + bias) (or without softplus), for one channel, vectorised over t. */
static void step_sizes(int64_t length, const REAL *restrict delta, REAL bias, int softplus, REAL *restrict dt) {
    for (int64_t t = 0; t < length; t++) {
        const REAL x = delta[t] + bias;
        dt[t] = softplus ? (x > SOFTPLUS_LINEAR ? x : LOG1P(EXP(x))) : x;
    }
}

static inline void forward_channel(int64_t length, int64_t n, const REAL *restrict u, const REAL *restrict dt,
                                   const REAL *restrict a, const REAL *restrict Bt, const REAL *restrict Ct,
                                   REAL skip, REAL *restrict out, REAL *restrict checkpoints) {
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
        out[t] = acc + skip * u[t];
    }
}

int64_t NAME(scan_forward)(int64_t c0, int64_t c1, int64_t dim, int64_t length, int64_t n, int64_t softplus,
                        const REAL *u, const REAL *delta, const REAL *A, const REAL *Bt, const REAL *Ct,
                        const REAL *D, const REAL *z, const REAL *bias, REAL *out, REAL *checkpoints) {
    const int64_t segments = (length + SEGMENT - 1) / SEGMENT;
    REAL *dt = malloc(length * sizeof(REAL));
    if (!dt) return 1;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t b = c / dim, d = c % dim, off = c * length, bt = b * length * n;
        step_sizes(length, delta + off, bias ? bias[d] : 0, (int)softplus, dt);
        REAL *ck = checkpoints ? checkpoints + c * segments * n : 0;
        const REAL skip = D ? D[d] : 0;
        /* n is nearly always 16: a constant trip count lets the compiler keep the state in registers. */
        if (n == 16)
            forward_channel(length, 16, u + off, dt, A + d * 16, Bt + bt, Ct + bt, skip, out + off, ck);
        else
            forward_channel(length, n, u + off, dt, A + d * n, Bt + bt, Ct + bt, skip, out + off, ck);
        if (z) {
            const REAL *restrict zc = z + off;
            REAL *restrict o = out + off;
            for (int64_t t = 0; t < length; t++) o[t] *= zc[t] / (1 + EXP(-zc[t]));
        }
    }
    free(dt);
    return 0;
}

/* The backward of one channel. `gy` holds dL/dy (after the gate) and, when z is given, `gate_grad` holds
 * dsilu(z)·dL/dout so that dL/dz = y·gate_grad once y is recomputed. Writes grad_u and dL/d dt (into grad_dt). */
static inline void backward_channel(int64_t length, int64_t n, const REAL *restrict u, const REAL *restrict dt,
                                    const REAL *restrict a, const REAL *restrict Bt, const REAL *restrict Ct,
                                    REAL skip, const REAL *restrict checkpoints, const REAL *restrict gy,
                                    const REAL *restrict gate_grad, REAL *restrict grad_z, REAL *restrict grad_u,
                                    REAL *restrict grad_dt, REAL *restrict grad_a, REAL *restrict grad_Bt,
                                    REAL *restrict grad_Ct) {
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
            const REAL step = dt[t], drive = dt[t] * u[t], g = gy[t];
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
            if (grad_z) {
                REAL y = 0;
                for (int64_t k = 0; k < n; k++) y += h[k] * c[k];
                grad_z[t] = (y + skip * u[t]) * gate_grad[t];
            }
            grad_dt[t] = g_log_decay + g_drive * u[t];
            grad_u[t] = g_drive * step + skip * g;
        }
    }
    for (int64_t k = 0; k < n; k++) grad_a[k] = ga[k];
}

int64_t NAME(scan_backward)(int64_t c0, int64_t c1, int64_t dim, int64_t length, int64_t n, int64_t softplus,
                         const REAL *u, const REAL *delta, const REAL *A, const REAL *Bt, const REAL *Ct,
                         const REAL *D, const REAL *z, const REAL *bias, const REAL *checkpoints,
                         const REAL *grad_out, REAL *grad_u, REAL *grad_delta, REAL *grad_z, REAL *grad_A_part,
                         REAL *grad_D_part, REAL *grad_bias_part, REAL *grad_Bt_part, REAL *grad_Ct_part) {
    const int64_t segments = (length + SEGMENT - 1) / SEGMENT;
    REAL *dt = malloc(3 * length * sizeof(REAL));
    if (!dt) return 1;
    REAL *gy = dt + length, *gate_grad = dt + 2 * length;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t b = c / dim, d = c % dim, off = c * length, bt = b * length * n;
        step_sizes(length, delta + off, bias ? bias[d] : 0, (int)softplus, dt);
        const REAL *go = grad_out + off;
        if (z) { /* out = y·silu(z): dL/dy = g·silu(z), dL/dz = g·y·silu'(z) with silu' = s(1 + z(1 - s)) */
            const REAL *restrict zc = z + off;
            for (int64_t t = 0; t < length; t++) {
                const REAL sig = 1 / (1 + EXP(-zc[t]));
                gy[t] = go[t] * zc[t] * sig;
                gate_grad[t] = go[t] * sig * (1 + zc[t] * (1 - sig));
            }
        } else {
            memcpy(gy, go, length * sizeof(REAL));
        }
        const REAL skip = D ? D[d] : 0;
        REAL *gz = z ? grad_z + off : 0;
        if (n == 16)
            backward_channel(length, 16, u + off, dt, A + d * 16, Bt + bt, Ct + bt, skip, checkpoints + c * segments * 16,
                             gy, gate_grad, gz, grad_u + off, grad_delta + off, grad_A_part + c * 16,
                             grad_Bt_part + bt, grad_Ct_part + bt);
        else
            backward_channel(length, n, u + off, dt, A + d * n, Bt + bt, Ct + bt, skip, checkpoints + c * segments * n,
                             gy, gate_grad, gz, grad_u + off, grad_delta + off, grad_A_part + c * n,
                             grad_Bt_part + bt, grad_Ct_part + bt);
        REAL *restrict gd = grad_delta + off;
        if (softplus) /* d softplus(x)/dx = sigmoid(x) = 1 - exp(-softplus(x)) */
            for (int64_t t = 0; t < length; t++) gd[t] *= -EXPM1(-dt[t]);
        if (grad_bias_part) {
            REAL sum = 0;
            for (int64_t t = 0; t < length; t++) sum += gd[t];
            grad_bias_part[c] = sum;
        }
        if (grad_D_part) {
            REAL sum = 0;
            const REAL *restrict uc = u + off;
            for (int64_t t = 0; t < length; t++) sum += gy[t] * uc[t];
            grad_D_part[c] = sum;
        }
    }
    free(dt);
    return 0;
}
