/* RWKV-7 in plain C for a CPU (built by backends/native_step.py): rwkv7_forward, T tokens for each
 * of B rows (T == 1: one decoding step; a narrow-typed step's prompts), and wkv7_scan, the state
 * update over a prompt's T tokens whose other parts stay in torch's large matrix products (float32).
 *
 * The same equations as models/rwkv7.py at T == 1 and the exported ONNX step
 * (backends/onnx_export.py), written out for a CPU: every matrix product (rwkv7_matrix.c)
 * reads its weights once for all B rows (up to 4 rows per pass), with the weights of the
 * next iterations prefetched, so that 4 rows cost about what 1 row costs when the step is
 * bound by memory bandwidth. The weight matrices and the embedding are float32, float16, bfloat16
 * or int8 (matrix_t); the state, the state update, the norms and every vector are float32.
 *
 * float32 weights are read in place, in the model's own layout (models/rwkv7.py): projections are
 * nn.Linear's (out, in) row-major matrices, y[n] = sum_k W[n][k] x[k]; the LoRA matrices (w1, w2,
 * a1, ...) are (in, out), y[n] = sum_k x[k] W[k][n]. The other types are converted once at load
 * into 4-row blocks (rwkv7_convert, rwkv7_matrix.h).
 * State layout (axis 0 the layer, axis 1 the row): att_x (L, B, C), kv (L, B, H, N, N)
 * in [value, key] order, ffn_x (L, B, C). Inputs are read, outputs written; they may
 * not overlap.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rwkv7_matrix.h"

#define MAX_HEAD 256 /* the largest head size this step takes (native_step.py checks) */
#define LAYER_NORM_EPS 1e-5f
#define GROUP_NORM_EPS 64e-5f
#define NORMALIZE_EPS 1e-12f
#define DECAY_SCALE 0.60653065971263342f /* e^-0.5 */

/* Order of the per-layer float32 vectors and of the per-layer matrices, the head and then the embedding (a token's
 * row) after the last layer's (backends/native_step.py writes them in these orders). */
enum {
    LN1_W, LN1_B, LN2_W, LN2_B, X_R, X_W, X_K, X_V, X_A, X_G,
    W0, A0, V0, K_K, K_A, R_K, LNX_W, LNX_B, FFN_X_K, PER_LAYER
};
enum { M_WR, M_WK, M_WV, M_WO, M_W1, M_W2, M_A1, M_A2, M_V1, M_V2, M_G1, M_G2, M_FFN_KEY, M_FFN_VALUE, MATRICES };
enum { LN0_W, LN0_B, LN_OUT_W, LN_OUT_B, GLOBALS };
/* sizes[]: n_layer, n_embd, head_size, vocab, d_decay, d_iclr, d_value, d_gate, d_ffn */
enum { S_LAYER, S_EMBD, S_HEAD, S_VOCAB, S_DECAY, S_ICLR, S_VALUE, S_GATE, S_FFN, SIZES };

/* Loops over many tokens' vectors (a prompt) run on every thread; a step's few rows on one */
#define MANY(count) ((count) >= (size_t)1 << 16)

static void layer_norm(const float *x, const float *weight, const float *bias, float *out, int B, int C, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY((size_t)B * C))
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

/* out (B, C) = bias + f(x @ first) @ second, f = tanh (decay), sigmoid (gate) or none; first (C -> D)
 * and second (D -> C) */
enum { LORA_PLAIN, LORA_TANH, LORA_SIGMOID };
static void lora(const float *x, const matrix_t *first, const matrix_t *second, const float *bias, float *hidden,
                 float *out, int B, int C, int kind, int threads) {
    const int D = first->n_out;
    rwkv7_matmul(x, first, hidden, B, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY((size_t)B * D * 8))
    for (int i = 0; i < B * D; i++)
        hidden[i] = kind == LORA_TANH ? tanhf(hidden[i]) : kind == LORA_SIGMOID ? sigmoid(hidden[i]) : hidden[i];
    rwkv7_matmul(hidden, second, out, B, threads);
    if (bias)
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY((size_t)B * C))
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

/* The same update on the transposed state St = S^T ([key j][value i]), N a multiple of 16: every sum over j
 * becomes whole vectors over i, no horizontal sums (faster over many tokens):
 * sa = sum_j St[j] a_j;  St[j] = St[j] w_j + sa b_j + v k_j;  o = sum_j St[j] r_j */
static void head_update_transposed(float *St, const float *r, const float *w, const float *k, const float *v,
                                   const float *a, const float *b, float *o_out, int N) {
    const int V = N / 16;
    v16 sa[MAX_HEAD / 16], vv[MAX_HEAD / 16], o[MAX_HEAD / 16];
    for (int q = 0; q < V; q++) sa[q] = (v16){0}, o[q] = (v16){0}, vv[q] = load16(v + 16 * q);
    for (int j = 0; j < N; j++)
        for (int q = 0; q < V; q++) sa[q] += load16(St + j * N + 16 * q) * a[j];
    for (int j = 0; j < N; j++) {
        float *row_j = St + j * N;
        for (int q = 0; q < V; q++) {
            v16 s = load16(row_j + 16 * q) * w[j] + sa[q] * b[j] + vv[q] * k[j];
            *(v16 *)(row_j + 16 * q) = s;
            o[q] += s * r[j];
        }
    }
    for (int q = 0; q < V; q++) *(v16 *)(o_out + 16 * q) = o[q];
}

static void transpose(const float *in, float *out, int N) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) out[(size_t)j * N + i] = in[(size_t)i * N + j];
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
        float *St = N % 16 == 0 && N <= MAX_HEAD ? malloc(sizeof(float) * N * N) : NULL;
        if (!St) { /* odd head sizes (or no memory): row by row, in place */
            memcpy(S_out, S_in, sizeof(float) * N * N);
            for (int t = 0; t < T; t++) {
                const size_t at = (((size_t)row * T + t) * H + h) * N;
                head_update(S_out, S_out, r + at, w + at, k + at, v + at, a + at, b + at, out + at, N);
            }
            continue;
        }
        transpose(S_in, St, N);
        for (int t = 0; t < T; t++) {
            const size_t at = (((size_t)row * T + t) * H + h) * N;
            head_update_transposed(St, r + at, w + at, k + at, v + at, a + at, b + at, out + at, N);
        }
        transpose(St, S_out, N);
        free(St);
    }
}

/* The time mixing's state update for every row b and head h over its T tokens (rows b*T .. b*T+T-1 of the (M, C)
 * vectors), then the GroupNorm over the head and the bonus (r . (k * r_k)) v, times the gate, into o:
 * S = S diag(w) + (S a) b^T + v k^T, o = S r, with a = -kk/|kk| and b = kk/|kk| * iclr per token. */
static void time_mix_heads(const float *const *p, int B, int T, int H, int N, int C, const float *kv_in, float *kv_out,
                           const float *r, const float *w, const float *k, const float *v, const float *kk,
                           const float *iclr, const float *gate, float *o, int threads) {
    const int transposed = T > 1 && N % 16 == 0; /* one token (decoding): in place, no transposes */
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int bh = 0; bh < B * H; bh++) {
        const int row = bh / H, h = bh % H;
        const float *S_in = kv_in + (size_t)bh * N * N;
        float *S = kv_out + (size_t)bh * N * N;
        float St[transposed ? N * N : 1];
        const float *from = S_in; /* the state before each token (untransposed) */
        if (transposed) transpose(S_in, St, N);
        for (int t = 0; t < T; t++) {
            const size_t at = ((size_t)row * T + t) * C + (size_t)h * N; /* (row, t, h) in the (M, C) vectors */
            const float *kkh = kk + at;
            double norm = 0.0;
            for (int j = 0; j < N; j++) norm += (double)kkh[j] * kkh[j];
            const float scale = 1.0f / fmaxf((float)sqrt(norm), NORMALIZE_EPS);
            float a[MAX_HEAD], bb[MAX_HEAD];
            for (int j = 0; j < N; j++) {
                const float unit = kkh[j] * scale;
                a[j] = -unit;
                bb[j] = unit * iclr[at + j];
            }
            const float *rh = r + at, *kh = k + at, *vh = v + at;
            float *oh = o + at;
            if (transposed)
                head_update_transposed(St, rh, w + at, kh, vh, a, bb, oh, N);
            else
                head_update(from, S, rh, w + at, kh, vh, a, bb, oh, N), from = S;
            float mean = 0.0f, var = 0.0f, bonus = 0.0f;
            for (int i = 0; i < N; i++) mean += oh[i];
            mean /= N;
            for (int i = 0; i < N; i++) var += (oh[i] - mean) * (oh[i] - mean);
            const float inv = 1.0f / sqrtf(var / N + GROUP_NORM_EPS);
            const int c0 = h * N;
            for (int j = 0; j < N; j++) bonus += rh[j] * kh[j] * p[R_K][c0 + j];
            for (int i = 0; i < N; i++)
                oh[i] = ((oh[i] - mean) * inv * p[LNX_W][c0 + i] + p[LNX_B][c0 + i] + bonus * vh[i]) * gate[at + i];
        }
        if (transposed) transpose(St, S, N);
    }
}

/* The token shift: prev[b, t] = xn[b, t - 1], or shift_in[b] at t == 0; shift_out[b] = xn[b, T - 1]. */
static void shift_rows(const float *xn, const float *shift_in, float *shift_out, float *prev, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        const float *xb = xn + (size_t)b * T * C;
        float *pb = prev + (size_t)b * T * C;
        memcpy(pb, shift_in + (size_t)b * C, sizeof(float) * C);
        memcpy(pb + C, xb, sizeof(float) * (size_t)(T - 1) * C);
        memcpy(shift_out + (size_t)b * C, xb + (size_t)(T - 1) * C, sizeof(float) * C);
    }
}

/* T tokens for each of B rows: the recurrent step T times over, with every matrix product taken for all B x T
 * tokens at once (a prompt: T up to a few hundred, each weight read once per 64 tokens, rwkv7_matrix.c).
 * tokens (B, T); logits (B, V) of each row's last token, or (B, T, V) of every token with every_logit.
 * Returns 0, or 1 when scratch memory cannot be had. */
int rwkv7_forward(const int64_t *sizes, const float *const *globals, const float *const *layers,
                  const matrix_t *matrices, int B, int T, int every_logit,
                  const int64_t *tokens, const float *att_x_in, const float *kv_in, const float *ffn_x_in,
                  float *att_x_out, float *kv_out, float *ffn_x_out, float *logits, int threads) {
    const int L = (int)sizes[S_LAYER], C = (int)sizes[S_EMBD], N = (int)sizes[S_HEAD], H = C / N;
    const int F = (int)sizes[S_FFN];
    int D = (int)sizes[S_DECAY];
    if (sizes[S_ICLR] > D) D = (int)sizes[S_ICLR];
    if (sizes[S_VALUE] > D) D = (int)sizes[S_VALUE];
    if (sizes[S_GATE] > D) D = (int)sizes[S_GATE];
    const int M = B * T; /* token rows, b-major */
    const size_t MC = (size_t)M * C, BC = (size_t)B * C;

    float *mem = malloc(sizeof(float) * (MC * 20 + (size_t)M * D + (size_t)M * F));
    if (!mem) return 1;
    /* xn: a layer norm's output; prev: the token before each (the shift); xr .. xg: the token-shift mixes, named as
     * in models/rwkv7.py */
    float *x = mem, *xn = x + MC, *prev = xn + MC, *xr = prev + MC, *xw = xr + MC, *xk = xw + MC, *xv = xk + MC;
    float *xa = xv + MC, *xg = xa + MC, *r = xg + MC, *w = r + MC, *k = w + MC, *v = k + MC, *iclr = v + MC;
    float *gate = iclr + MC, *kk = gate + MC, *v_first = kk + MC, *o = v_first + MC, *mix = o + MC;
    float *tmp = mix + MC, *hidden = tmp + MC, *ffn = hidden + (size_t)M * D;

    const matrix_t *embedding = &matrices[(size_t)L * MATRICES + 1];
    for (int m = 0; m < M; m++) rwkv7_matrix_row(embedding, (int)tokens[m], x + (size_t)m * C);
    layer_norm(x, globals[LN0_W], globals[LN0_B], x, M, C, threads);

    for (int l = 0; l < L; l++) {
        const float *const *p = layers + (size_t)l * PER_LAYER;
        const matrix_t *mt = matrices + (size_t)l * MATRICES;
        const size_t kv_layer = (size_t)l * B * H * N * N;

        /* -- time mixing */
        layer_norm(x, p[LN1_W], p[LN1_B], xn, M, C, threads);
        shift_rows(xn, att_x_in + (size_t)l * BC, att_x_out + (size_t)l * BC, prev, B, T, C);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (size_t i = 0; i < MC; i++) {
            int c = (int)(i % C);
            float d = prev[i] - xn[i];
            xr[i] = xn[i] + d * p[X_R][c];
            xw[i] = xn[i] + d * p[X_W][c];
            xk[i] = xn[i] + d * p[X_K][c];
            xv[i] = xn[i] + d * p[X_V][c];
            xa[i] = xn[i] + d * p[X_A][c];
            xg[i] = xn[i] + d * p[X_G][c];
        }
        rwkv7_matmul(xr, &mt[M_WR], r, M, threads);
        rwkv7_matmul(xk, &mt[M_WK], k, M, threads);
        rwkv7_matmul(xv, &mt[M_WV], v, M, threads);
        lora(xw, &mt[M_W1], &mt[M_W2], p[W0], hidden, w, M, C, LORA_TANH, threads);
        lora(xa, &mt[M_A1], &mt[M_A2], p[A0], hidden, iclr, M, C, LORA_PLAIN, threads);
        lora(xg, &mt[M_G1], &mt[M_G2], NULL, hidden, gate, M, C, LORA_SIGMOID, threads);
        if (l > 0) lora(xv, &mt[M_V1], &mt[M_V2], p[V0], hidden, mix, M, C, LORA_PLAIN, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
        for (size_t i = 0; i < MC; i++) {
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
        time_mix_heads(p, B, T, H, N, C, kv_in + kv_layer, kv_out + kv_layer, r, w, k, v, kk, iclr, gate, o, threads);
        rwkv7_matmul(o, &mt[M_WO], tmp, M, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY(MC))
        for (size_t i = 0; i < MC; i++) x[i] += tmp[i];

        /* -- channel mixing */
        layer_norm(x, p[LN2_W], p[LN2_B], xn, M, C, threads);
        shift_rows(xn, ffn_x_in + (size_t)l * BC, ffn_x_out + (size_t)l * BC, prev, B, T, C);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY(MC))
        for (size_t i = 0; i < MC; i++) xk[i] = xn[i] + (prev[i] - xn[i]) * p[FFN_X_K][i % C];
        rwkv7_matmul(xk, &mt[M_FFN_KEY], ffn, M, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY((size_t)M * F))
        for (size_t i = 0; i < (size_t)M * F; i++) {
            float h = ffn[i] > 0.0f ? ffn[i] : 0.0f;
            ffn[i] = h * h;
        }
        rwkv7_matmul(ffn, &mt[M_FFN_VALUE], tmp, M, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && MANY(MC))
        for (size_t i = 0; i < MC; i++) x[i] += tmp[i];
    }
    const matrix_t *head = &matrices[(size_t)L * MATRICES];
    if (every_logit || T == 1) {
        layer_norm(x, globals[LN_OUT_W], globals[LN_OUT_B], xn, M, C, threads);
        rwkv7_matmul(xn, head, logits, M, threads);
    } else { /* each row's last token only */
        for (int b = 0; b < B; b++) memcpy(xr + (size_t)b * C, x + ((size_t)b * T + T - 1) * C, sizeof(float) * C);
        layer_norm(xr, globals[LN_OUT_W], globals[LN_OUT_B], xn, B, C, threads);
        rwkv7_matmul(xn, head, logits, B, threads);
    }
    free(mem);
    return 0;
}
