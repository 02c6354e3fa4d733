/* RWKV-7 in plain C for a CPU (built by backends/native_step.py): rwkv7_step, one recurrent step
 * for B rows (decoding), and wkv7_scan, the state update over a prompt's T tokens (the rest of a
 * prompt stays in torch's large matrix products).
 *
 * The same equations as models/rwkv7.py at T == 1 and the exported ONNX step
 * (backends/onnx_export.py), written out for a CPU: every matrix product reads its
 * weights once for all B rows (up to 4 rows per pass), with the weights of the next
 * iterations prefetched, so that 4 rows cost about what 1 row costs when the step is
 * bound by memory bandwidth. Everything is float32.
 *
 * Weights are read in the model's own layout (models/rwkv7.py), never copied: projections are
 * nn.Linear's (out, in) row-major matrices, y[n] = sum_k W[n][k] x[k] (matmul); the LoRA
 * matrices (w1, w2, a1, ...) are (in, out), y[n] = sum_k x[k] W[k][n] (matmul_in_out).
 * State layout (axis 0 the layer, axis 1 the row): att_x (L, B, C), kv (L, B, H, N, N)
 * in [value, key] order, ffn_x (L, B, C). Inputs are read, outputs written; they may
 * not overlap.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64), aligned(4))); /* 16 floats; unaligned loads are fine */

#define MAX_HEAD 256 /* the largest head size this step takes (native_step.py checks) */
#define PREFETCH 256 /* floats ahead (1 KiB) in each weight row */
#define LAYER_NORM_EPS 1e-5f
#define GROUP_NORM_EPS 64e-5f
#define NORMALIZE_EPS 1e-12f
#define DECAY_SCALE 0.60653065971263342f /* e^-0.5 */

/* Order of the per-layer weight pointers (backends/native_step.py writes them in this order). */
enum {
    LN1_W, LN1_B, LN2_W, LN2_B, X_R, X_W, X_K, X_V, X_A, X_G,
    W0, W1, W2, A0, A1, A2, V0, V1, V2, G1, G2, K_K, K_A, R_K,
    WR, WK, WV, WO, LNX_W, LNX_B, FFN_X_K, FFN_KEY, FFN_VALUE, PER_LAYER
};
enum { EMB, LN0_W, LN0_B, LN_OUT_W, LN_OUT_B, HEAD, GLOBALS };
/* sizes[]: n_layer, n_embd, head_size, vocab, d_decay, d_iclr, d_value, d_gate, d_ffn */
enum { S_LAYER, S_EMBD, S_HEAD, S_VOCAB, S_DECAY, S_ICLR, S_VALUE, S_GATE, S_FFN, SIZES };

static inline float hsum(v16 v) { /* a tree: 4 dependent adds, not 16 */
    float t[16];
    memcpy(t, &v, sizeof t);
    for (int width = 8; width > 0; width /= 2)
        for (int i = 0; i < width; i++) t[i] += t[i + width];
    return t[0];
}

static inline v16 load16(const float *p) { return *(const v16 *)p; }

/* y[m][n] = sum_k x[m][k] w[n][k] for MR rows and 4 columns n0..n0+3 (K % 16 == 0 part, then the tail). */
#define ROWS_KERNEL(MR)                                                                          \
    static void cols4_##MR(const float *x, const float *w, float *y, int n0, int N, int K) {     \
        v16 acc[MR][4];                                                                          \
        for (int m = 0; m < MR; m++)                                                             \
            for (int j = 0; j < 4; j++) acc[m][j] = (v16){0};                                    \
        const float *w0 = w + (size_t)n0 * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;          \
        int k = 0;                                                                               \
        for (; k + 16 <= K; k += 16) {                                                           \
            __builtin_prefetch(w0 + k + PREFETCH);                                               \
            __builtin_prefetch(w1 + k + PREFETCH);                                               \
            __builtin_prefetch(w2 + k + PREFETCH);                                               \
            __builtin_prefetch(w3 + k + PREFETCH);                                               \
            v16 a = load16(w0 + k), b = load16(w1 + k), c = load16(w2 + k), d = load16(w3 + k);  \
            for (int m = 0; m < MR; m++) {                                                       \
                v16 xv = load16(x + (size_t)m * K + k);                                          \
                acc[m][0] += xv * a;                                                             \
                acc[m][1] += xv * b;                                                             \
                acc[m][2] += xv * c;                                                             \
                acc[m][3] += xv * d;                                                             \
            }                                                                                    \
        }                                                                                        \
        for (int m = 0; m < MR; m++) {                                                           \
            const float *xm = x + (size_t)m * K;                                                 \
            float t0 = hsum(acc[m][0]), t1 = hsum(acc[m][1]), t2 = hsum(acc[m][2]), t3 = hsum(acc[m][3]); \
            for (int kk = k; kk < K; kk++) {                                                     \
                t0 += xm[kk] * w0[kk]; t1 += xm[kk] * w1[kk];                                    \
                t2 += xm[kk] * w2[kk]; t3 += xm[kk] * w3[kk];                                    \
            }                                                                                    \
            float *ym = y + (size_t)m * N + n0;                                                  \
            ym[0] = t0; ym[1] = t1; ym[2] = t2; ym[3] = t3;                                      \
        }                                                                                        \
    }
ROWS_KERNEL(1)
ROWS_KERNEL(2)
ROWS_KERNEL(3)
ROWS_KERNEL(4)

static void cols4(const float *x, const float *w, float *y, int rows, int n0, int N, int K) {
    switch (rows) {
    case 4: cols4_4(x, w, y, n0, N, K); break;
    case 3: cols4_3(x, w, y, n0, N, K); break;
    case 2: cols4_2(x, w, y, n0, N, K); break;
    default: cols4_1(x, w, y, n0, N, K); break;
    }
}

static void one_col(const float *x, const float *w, float *y, int rows, int n, int N, int K) {
    const float *wn = w + (size_t)n * K;
    for (int m = 0; m < rows; m++) {
        float t = 0.0f;
        for (int k = 0; k < K; k++) t += x[(size_t)m * K + k] * wn[k];
        y[(size_t)m * N + n] = t;
    }
}

/* y (M, N) = x (M, K) @ w (N, K)^T: the weights are read once per 4 rows. */
static void matmul(const float *x, const float *w, float *y, int M, int N, int K, int threads) {
    int blocks = N / 4;
    int parallel = (size_t)N * K >= 65536 && threads > 1;
    for (int m0 = 0; m0 < M; m0 += 4) {
        int rows = M - m0 < 4 ? M - m0 : 4;
        const float *xm = x + (size_t)m0 * K;
        float *ym = y + (size_t)m0 * N;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
        for (int blk = 0; blk < blocks; blk++) cols4(xm, w, ym, rows, blk * 4, N, K);
        for (int n = blocks * 4; n < N; n++) one_col(xm, w, ym, rows, n, N, K);
    }
}

/* y (M, N) = x (M, K) @ w (K, N), w row-major (in, out) as the LoRA matrices are stored: each row
 * of w is added into up to 4 rows of y at once, 64 columns at a time, so y stays in registers. */
static void matmul_in_out(const float *x, const float *w, float *y, int M, int N, int K, int threads) {
    int tiles = (N + 63) / 64;
    int parallel = (size_t)N * K >= 65536 && threads > 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
    for (int tile = 0; tile < tiles; tile++) {
        const int n0 = tile * 64, width = N - n0 < 64 ? N - n0 : 64;
        for (int m0 = 0; m0 < M; m0 += 4) {
            const int rows = M - m0 < 4 ? M - m0 : 4;
            const float *xm = x + (size_t)m0 * K;
            if (width == 64) {
                v16 acc[4][4];
                for (int m = 0; m < 4; m++)
                    for (int q = 0; q < 4; q++) acc[m][q] = (v16){0};
                for (int k = 0; k < K; k++) {
                    const float *wk = w + (size_t)k * N + n0;
                    v16 w0 = load16(wk), w1 = load16(wk + 16), w2 = load16(wk + 32), w3 = load16(wk + 48);
                    for (int m = 0; m < rows; m++) {
                        float xk = xm[(size_t)m * K + k];
                        acc[m][0] += xk * w0;
                        acc[m][1] += xk * w1;
                        acc[m][2] += xk * w2;
                        acc[m][3] += xk * w3;
                    }
                }
                for (int m = 0; m < rows; m++) memcpy(y + (size_t)(m0 + m) * N + n0, acc[m], sizeof acc[m]);
                continue;
            }
            for (int m = 0; m < rows; m++) { /* the last columns, fewer than 64 */
                float acc[64] = {0};
                for (int k = 0; k < K; k++) {
                    const float *wk = w + (size_t)k * N + n0;
                    float xk = xm[(size_t)m * K + k];
                    for (int j = 0; j < width; j++) acc[j] += xk * wk[j];
                }
                memcpy(y + (size_t)(m0 + m) * N + n0, acc, sizeof(float) * width);
            }
        }
    }
}

static void layer_norm(const float *x, const float *weight, const float *bias, float *out, int B, int C) {
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * C;
        float *ob = out + (size_t)b * C;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < C; i++) mean += xb[i];
        mean /= C;
        for (int i = 0; i < C; i++) var += (xb[i] - mean) * (xb[i] - mean);
        float inv = 1.0f / sqrtf((float)(var / C) + LAYER_NORM_EPS);
        for (int i = 0; i < C; i++) ob[i] = ((float)(xb[i] - mean)) * inv * weight[i] + bias[i];
    }
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* out (B, C) = bias + f(x @ first) @ second, f = tanh (decay), sigmoid (gate) or none; first (C, D)
 * and second (D, C) as the model stores them */
enum { LORA_PLAIN, LORA_TANH, LORA_SIGMOID };
static void lora(const float *x, const float *first, const float *second, const float *bias, float *hidden,
                 float *out, int B, int C, int D, int kind, int threads) {
    matmul_in_out(x, first, hidden, B, D, C, threads);
    for (int i = 0; i < B * D; i++)
        hidden[i] = kind == LORA_TANH ? tanhf(hidden[i]) : kind == LORA_SIGMOID ? sigmoid(hidden[i]) : hidden[i];
    matmul_in_out(hidden, second, out, B, C, D, threads);
    if (bias)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) out[(size_t)b * C + i] += bias[i];
}

/* One head's state update for one token: S = S diag(w) + (S a) b^T + v k^T, then o = S r.
 * S_in and S_out (N x N, [value, key]) may be the same matrix. */
static void head_update(const float *S_in, float *S_out, const float *r, const float *w, const float *k,
                        const float *v, const float *a, const float *b, float *o, int N) {
    if (N % 16 == 0) { /* whole vectors: the usual head size 64 */
        for (int i = 0; i < N; i++) {
            const float *si = S_in + (size_t)i * N;
            float *so = S_out + (size_t)i * N;
            v16 dot = (v16){0};
            for (int j = 0; j < N; j += 16) dot += load16(si + j) * load16(a + j);
            v16 sa = (v16){0} + hsum(dot), vi = (v16){0} + v[i], out = (v16){0};
            for (int j = 0; j < N; j += 16) {
                v16 s = load16(si + j) * load16(w + j) + sa * load16(b + j) + vi * load16(k + j);
                *(v16 *)(so + j) = s;
                out += s * load16(r + j);
            }
            o[i] = hsum(out);
        }
        return;
    }
    for (int i = 0; i < N; i++) {
        const float *si = S_in + (size_t)i * N;
        float *so = S_out + (size_t)i * N;
        float sa = 0.0f;
#pragma omp simd reduction(+ : sa)
        for (int j = 0; j < N; j++) sa += si[j] * a[j];
        float vi = v[i], out = 0.0f;
#pragma omp simd reduction(+ : out)
        for (int j = 0; j < N; j++) {
            float s = si[j] * w[j] + sa * b[j] + vi * k[j];
            so[j] = s;
            out += s * r[j];
        }
        o[i] = out;
    }
}

/* The state update over T tokens, token by token, for each of B x H heads (a prompt's, in
 * models/rwkv7_fused.py's sequence form: FusedRWKV7.use_sequence_wkv): r, w, k, v, a, b and out
 * are (B, T, H, N); state_in and state_out (B, H, N, N). Each head's state stays in the core's
 * cache for all T tokens. */
void wkv7_scan(int B, int T, int H, int N, const float *r, const float *w, const float *k, const float *v,
               const float *a, const float *b, const float *state_in, float *state_out, float *out, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int row = bh / H, h = bh % H;
        const float *S_in = state_in + (size_t)bh * N * N;
        float *S_out = state_out + (size_t)bh * N * N;
        /* St = S^T ([key j][value i]): every sum over j becomes whole vectors over i, no horizontal sums:
         * sa = sum_j St[j] a_j;  St[j] = St[j] w_j + sa b_j + v k_j;  o = sum_j St[j] r_j */
        float *St = N % 16 == 0 && N <= MAX_HEAD ? malloc(sizeof(float) * N * N) : NULL;
        if (!St) { /* odd head sizes (or no memory): row by row, in place */
            memcpy(S_out, S_in, sizeof(float) * N * N);
            for (int t = 0; t < T; t++) {
                const size_t at = (((size_t)row * T + t) * H + h) * N;
                head_update(S_out, S_out, r + at, w + at, k + at, v + at, a + at, b + at, out + at, N);
            }
            continue;
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) St[j * N + i] = S_in[(size_t)i * N + j];
        const int V = N / 16;
        for (int t = 0; t < T; t++) {
            const size_t at = (((size_t)row * T + t) * H + h) * N;
            const float *rt = r + at, *wt = w + at, *kt = k + at, *vt = v + at, *a_t = a + at, *bt = b + at;
            v16 sa[MAX_HEAD / 16], vv[MAX_HEAD / 16], o[MAX_HEAD / 16];
            for (int q = 0; q < V; q++) sa[q] = (v16){0}, o[q] = (v16){0}, vv[q] = load16(vt + 16 * q);
            for (int j = 0; j < N; j++)
                for (int q = 0; q < V; q++) sa[q] += load16(St + j * N + 16 * q) * a_t[j];
            for (int j = 0; j < N; j++) {
                float *row_j = St + j * N;
                for (int q = 0; q < V; q++) {
                    v16 s = load16(row_j + 16 * q) * wt[j] + sa[q] * bt[j] + vv[q] * kt[j];
                    *(v16 *)(row_j + 16 * q) = s;
                    o[q] += s * rt[j];
                }
            }
            for (int q = 0; q < V; q++) *(v16 *)(out + at + 16 * q) = o[q];
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) S_out[(size_t)i * N + j] = St[j * N + i];
        free(St);
    }
}

/* One step. Returns 0, or 1 when scratch memory cannot be had. */
int rwkv7_step(const int64_t *sizes, const float *const *globals, const float *const *layers, int B,
               const int64_t *tokens, const float *att_x_in, const float *kv_in, const float *ffn_x_in,
               float *att_x_out, float *kv_out, float *ffn_x_out, float *logits, int threads) {
    const int L = (int)sizes[S_LAYER], C = (int)sizes[S_EMBD], N = (int)sizes[S_HEAD], H = C / N;
    const int V = (int)sizes[S_VOCAB], F = (int)sizes[S_FFN];
    int D = (int)sizes[S_DECAY];
    if (sizes[S_ICLR] > D) D = (int)sizes[S_ICLR];
    if (sizes[S_VALUE] > D) D = (int)sizes[S_VALUE];
    if (sizes[S_GATE] > D) D = (int)sizes[S_GATE];
    const size_t BC = (size_t)B * C;

    float *mem = malloc(sizeof(float) * (BC * 19 + (size_t)B * D + (size_t)B * F));
    if (!mem) return 1;
    /* xn: a layer norm's output; xr .. xg: the token-shift mixes, named as in models/rwkv7.py */
    float *x = mem, *xn = x + BC, *xr = xn + BC, *xw = xr + BC, *xk = xw + BC, *xv = xk + BC;
    float *xa = xv + BC, *xg = xa + BC, *r = xg + BC, *w = r + BC, *k = w + BC, *v = k + BC, *iclr = v + BC;
    float *gate = iclr + BC, *kk = gate + BC, *v_first = kk + BC, *o = v_first + BC, *mix = o + BC;
    float *tmp = mix + BC, *hidden = tmp + BC, *ffn = hidden + (size_t)B * D;

    for (int b = 0; b < B; b++) memcpy(x + (size_t)b * C, globals[EMB] + (size_t)tokens[b] * C, sizeof(float) * C);
    layer_norm(x, globals[LN0_W], globals[LN0_B], x, B, C);

    for (int l = 0; l < L; l++) {
        const float *const *p = layers + (size_t)l * PER_LAYER;
        const float *att_prev = att_x_in + (size_t)l * BC, *ffn_prev = ffn_x_in + (size_t)l * BC;
        const size_t kv_layer = (size_t)l * B * H * N * N;

        /* -- time mixing */
        layer_norm(x, p[LN1_W], p[LN1_B], xn, B, C);
        memcpy(att_x_out + (size_t)l * BC, xn, sizeof(float) * BC);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (size_t i = 0; i < BC; i++) {
            int c = (int)(i % C);
            float d = att_prev[i] - xn[i];
            xr[i] = xn[i] + d * p[X_R][c];
            xw[i] = xn[i] + d * p[X_W][c];
            xk[i] = xn[i] + d * p[X_K][c];
            xv[i] = xn[i] + d * p[X_V][c];
            xa[i] = xn[i] + d * p[X_A][c];
            xg[i] = xn[i] + d * p[X_G][c];
        }
        matmul(xr, p[WR], r, B, C, C, threads);
        matmul(xk, p[WK], k, B, C, C, threads);
        matmul(xv, p[WV], v, B, C, C, threads);
        lora(xw, p[W1], p[W2], p[W0], hidden, w, B, C, (int)sizes[S_DECAY], LORA_TANH, threads);
        lora(xa, p[A1], p[A2], p[A0], hidden, iclr, B, C, (int)sizes[S_ICLR], LORA_PLAIN, threads);
        lora(xg, p[G1], p[G2], NULL, hidden, gate, B, C, (int)sizes[S_GATE], LORA_SIGMOID, threads);
        if (l > 0) lora(xv, p[V1], p[V2], p[V0], hidden, mix, B, C, (int)sizes[S_VALUE], LORA_PLAIN, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (size_t i = 0; i < BC; i++) {
            int c = (int)(i % C);
            w[i] = expf(-DECAY_SCALE * sigmoid(w[i]));
            iclr[i] = sigmoid(iclr[i]);
            kk[i] = k[i] * p[K_K][c];
            k[i] = k[i] * (1.0f + (iclr[i] - 1.0f) * p[K_A][c]);
            if (l == 0)
                v_first[i] = v[i];
            else
                v[i] = v[i] + (v_first[i] - v[i]) * sigmoid(mix[i]);
        }

        /* -- the state update, per row and head: S = S diag(w) + (S a) b^T + v k^T, o = S r */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (int bh = 0; bh < B * H; bh++) {
            const size_t at = (size_t)bh * N; /* (b, h) in the (B, C) vectors */
            float *kkh = kk + at;
            double norm = 0.0;
            for (int j = 0; j < N; j++) norm += (double)kkh[j] * kkh[j];
            float scale = 1.0f / fmaxf((float)sqrt(norm), NORMALIZE_EPS);
            float a[MAX_HEAD], bb[MAX_HEAD];
            for (int j = 0; j < N; j++) {
                float unit = kkh[j] * scale;
                a[j] = -unit;
                bb[j] = unit * iclr[at + j];
            }
            const float *rh = r + at, *kh = k + at, *vh = v + at, *wh = w + at;
            float *oh = o + at;
            head_update(kv_in + kv_layer + (size_t)bh * N * N, kv_out + kv_layer + (size_t)bh * N * N,
                        rh, wh, kh, vh, a, bb, oh, N);
            /* GroupNorm over the head, then the bonus (r . (k * r_k)) v */
            float mean = 0.0f, var = 0.0f, bonus = 0.0f;
            for (int i = 0; i < N; i++) mean += oh[i];
            mean /= N;
            for (int i = 0; i < N; i++) var += (oh[i] - mean) * (oh[i] - mean);
            float inv = 1.0f / sqrtf(var / N + GROUP_NORM_EPS);
            int c0 = (int)(at % C);
            for (int j = 0; j < N; j++) bonus += rh[j] * kh[j] * p[R_K][c0 + j];
            for (int i = 0; i < N; i++)
                oh[i] = ((oh[i] - mean) * inv * p[LNX_W][c0 + i] + p[LNX_B][c0 + i] + bonus * vh[i]) * gate[at + i];
        }
        matmul(o, p[WO], tmp, B, C, C, threads);
        for (size_t i = 0; i < BC; i++) x[i] += tmp[i];

        /* -- channel mixing */
        layer_norm(x, p[LN2_W], p[LN2_B], xn, B, C);
        memcpy(ffn_x_out + (size_t)l * BC, xn, sizeof(float) * BC);
        for (size_t i = 0; i < BC; i++) xk[i] = xn[i] + (ffn_prev[i] - xn[i]) * p[FFN_X_K][i % C];
        matmul(xk, p[FFN_KEY], ffn, B, F, C, threads);
        for (size_t i = 0; i < (size_t)B * F; i++) {
            float h = ffn[i] > 0.0f ? ffn[i] : 0.0f;
            ffn[i] = h * h;
        }
        matmul(ffn, p[FFN_VALUE], tmp, B, C, F, threads);
        for (size_t i = 0; i < BC; i++) x[i] += tmp[i];
    }
    layer_norm(x, globals[LN_OUT_W], globals[LN_OUT_B], xn, B, C);
    matmul(xn, globals[HEAD], logits, B, V, C, threads);
    free(mem);
    return 0;
}
