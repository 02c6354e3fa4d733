/* The C step's matrix products for every weight type (rwkv7_matrix.h), and the conversion of float32
 * weights to those types at load.
 *
 * Kernels are picked at compile time from what -march=native enables: float16 through vcvtph2ps
 * (AVX-512F, or F16C on AVX2), bfloat16 and int8 through vector conversions, int8 with int8
 * activations through vpdpbusd (AVX-512 VNNI). RWKV7_PORTABLE (a define) leaves out every
 * intrinsic and vector conversion: plain C conversions into float32 tiles, the same float32
 * arithmetic, for any CPU (and to test that path here).
 *
 * Products read each weight once for up to 4 rows of x, 64-column tiles in parallel; for more
 * than 4 rows each tile is read from cache for 4 rows at a time, 64 rows per pass over the matrix.
 */
#include "rwkv7_matrix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if !defined(RWKV7_PORTABLE) && (defined(__AVX512F__) || defined(__F16C__) || defined(__AVX2__))
#include <immintrin.h>
#endif
#if !defined(RWKV7_PORTABLE) && defined(__AVX512F__)
#define F16_AVX512 1
#elif !defined(RWKV7_PORTABLE) && defined(__F16C__)
#define F16_F16C 1
#endif
#if !defined(RWKV7_PORTABLE) && defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define I8_VNNI 1
#endif
#if !defined(RWKV7_PORTABLE) && defined(__AVX512BF16__) && defined(__AVX512BW__)
#define BF16_DOT 1
#endif

#define INLINE static inline __attribute__((always_inline))
#if F16_AVX512 && (defined(__GNUC__) || defined(__clang__))
/* Loaded once into a register for its 4 products: else GCC reloads it as a memory operand of each */
#define KEEP_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define KEEP_IN_REGISTER(v) (void)0
#endif
/* How far ahead to prefetch: in each float32 row; in the narrow types' blocks (one stream) */
#define PREFETCH_F32 1024
#define PREFETCH_BLOCKS 8192
#define PREFETCH_ROW 2048 /* bytes ahead in a float32 row read alone */
#define COL_TILE 64         /* output columns per parallel task */
#define ROW_CHUNK 64        /* rows of x per pass over the weights */
#define MIN_PARALLEL 65536  /* weights below which one thread does an (out, in) product */
#define MIN_PARALLEL_ROWS 16 /* unless it has rows enough for as much arithmetic as MIN_PARALLEL weights x 16 rows */
#define MIN_PARALLEL_IN_OUT 16384 /* and an (in, out) one (the LoRA matrices) */

typedef uint16_t v16u16 __attribute__((vector_size(32), aligned(2)));
typedef uint32_t v16u32 __attribute__((vector_size(64), aligned(4)));
typedef int8_t v16i8 __attribute__((vector_size(16), aligned(1)));
typedef int32_t v16i32 __attribute__((vector_size(64), aligned(4)));

/* -- element conversions, exact and the same on every build (round to nearest even where rounding) */

static inline float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, rest = h & 0x7fff;
    if (rest >= 0x7c00) return bits_float(sign | 0x7f800000 | (rest & 0x3ff) << 13); /* inf, nan */
    /* normal and subnormal alike: the exponent rebiased by a multiply by 2^112 */
    return bits_float(sign | float_bits(bits_float(rest << 13) * 0x1p112f));
}

static inline uint16_t f32_to_f16(float f) { /* F. Giesen's float_to_half_fast3_rtne */
    uint32_t x = float_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffff;
    if (x >= 0x47800000) return sign | (x > 0x7f800000 ? 0x7e00 : 0x7c00); /* >= 65536: inf; nan */
    if (x < 0x38800000) /* below 2^-14: subnormal, rounded by a float addition */
        return sign | (uint16_t)(float_bits(bits_float(x) + 0.5f) - 0x3f000000);
    x += ((uint32_t)(15 - 127) << 23) + 0xfff + ((x >> 13) & 1);
    return sign | (uint16_t)(x >> 13);
}

static inline float bf16_to_f32(uint16_t h) { return bits_float((uint32_t)h << 16); }

static inline uint16_t f32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* nan stays a quiet nan */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* -- 16 weights at element i as float32 */

INLINE int elem_size(int type) { return type == MT_F32 ? 4 : type == MT_I8 ? 1 : 2; }

INLINE float welem(int type, const void *w, size_t i) {
    switch (type) {
    case MT_F16: return f16_to_f32(((const uint16_t *)w)[i]);
    case MT_BF16: return bf16_to_f32(((const uint16_t *)w)[i]);
    case MT_I8: return (float)((const int8_t *)w)[i];
    default: return ((const float *)w)[i];
    }
}

INLINE v16 wvec(int type, const void *w, size_t i) {
    if (type == MT_F32) return load16((const float *)w + i);
#ifndef RWKV7_PORTABLE
    if (type == MT_BF16) return (v16)(__builtin_convertvector(*(const v16u16 *)((const uint16_t *)w + i), v16u32) << 16);
#if defined(__AVX512F__)
    if (type == MT_I8) return (v16)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((const int8_t *)w + i))));
#elif defined(__AVX2__)
    if (type == MT_I8) {
        union { __m256 half[2]; v16 all; } u;
        const int8_t *p = (const int8_t *)w + i;
        u.half[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
        u.half[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8))));
        return u.all;
    }
#else
    if (type == MT_I8)
        return __builtin_convertvector(__builtin_convertvector(*(const v16i8 *)((const int8_t *)w + i), v16i32), v16);
#endif
#if F16_AVX512
    if (type == MT_F16) return (v16)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)));
#elif F16_F16C
    if (type == MT_F16) {
        union { __m256 half[2]; v16 all; } u;
        u.half[0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
        u.half[1] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i + 8)));
        return u.all;
    }
#endif
#endif
    float t[16]; /* the portable path: plain C conversions */
    for (int j = 0; j < 16; j++) t[j] = welem(type, w, i + j);
    return load16(t);
}

/* float16 as two 8-wide conversions where `split`: on Zen 4 faster than one 16-wide in a step's products of 3 or 4
 * rows (weights streamed from memory), slower for 1 or 2 rows and in a prompt's (weights from the cache: 848 against
 * 629 tok/s); the same values either way */
INLINE v16 wvec_rows(int type, int split, const void *w, size_t i) {
#if F16_AVX512
    if (type == MT_F16 && split) {
        union { __m256 half[2]; v16 all; } u;
        u.half[0] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
        u.half[1] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i + 8)));
        return u.all;
    }
#endif
    (void)split;
    return wvec(type, w, i);
}

/* The sums of 4 vectors: with AVX-512 through shuffles and pairwise adds, all 4 at once. */
#if F16_AVX512
INLINE __m256 halves(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

INLINE void hsum4(const v16 *v, float *out) {
    const __m256 ab = _mm256_hadd_ps(halves((__m512)v[0]), halves((__m512)v[1]));
    const __m256 cd = _mm256_hadd_ps(halves((__m512)v[2]), halves((__m512)v[3]));
    const __m256 all = _mm256_hadd_ps(ab, cd); /* a01+a23, b.., c.., d.. | a45+a67, b.., c.., d.. */
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(all), _mm256_extractf128_ps(all, 1)));
}
#else
INLINE void hsum4(const v16 *v, float *out) {
    for (int j = 0; j < 4; j++) out[j] = hsum(v[j]);
}
#endif

/* -- (out, in) weights: y[m][n] = sum_k x[m][k] w[n][k] for MR rows and 4 columns n0..n0+3. float32 weights are
 * the model's rows; the narrow types are in 4-row blocks (rwkv7_matrix.h), read as one stream. */

INLINE void cols4(int type, int blocks, int split, int MR, const float *x, const void *w, const float *scale, float *y, int n0,
                  int N, int K) {
    v16 acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < 4; j++) acc[m][j] = (v16){0};
    const int size = elem_size(type), line = 64 / size; /* elements per cache line */
    const char *bytes = (const char *)w;
    size_t at[4]; /* each row's start (float32), or its tail's (a block) */
    int k = 0;
    if (!blocks) {
        for (int j = 0; j < 4; j++) at[j] = (size_t)(n0 + j) * K;
        for (; k + line <= K; k += line) { /* one prefetch per cache line and row */
            for (int j = 0; j < 4; j++) __builtin_prefetch(bytes + (at[j] + k) * size + PREFETCH_F32);
            v16 a = wvec(type, w, at[0] + k), b = wvec(type, w, at[1] + k), d = wvec(type, w, at[2] + k),
                e = wvec(type, w, at[3] + k);
            for (int m = 0; m < MR; m++) {
                v16 xv = load16(x + (size_t)m * K + k);
                acc[m][0] += xv * a;
                acc[m][1] += xv * b;
                acc[m][2] += xv * d;
                acc[m][3] += xv * e;
            }
        }
    } else {
        const char *block = bytes + (size_t)n0 * K * size;
        const int lines = K / line, tail = K - lines * line;
        for (int l = 0; l < lines; l++, k += line) {
            const char *p = block + (size_t)l * 256; /* the 4 rows' cache lines l */
            for (int j = 0; j < 4; j++) __builtin_prefetch(p + PREFETCH_BLOCKS + 64 * j);
            for (int c = 0; c < line; c += 16) {
                v16 a = wvec_rows(type, split, p, c), b = wvec_rows(type, split, p + 64, c),
                    d = wvec_rows(type, split, p + 128, c), e = wvec_rows(type, split, p + 192, c);
                v16 xs[4];
                for (int m = 0; m < MR; m++) {
                    xs[m] = load16(x + (size_t)m * K + k + c);
                    KEEP_IN_REGISTER(xs[m]);
                }
                for (int m = 0; m < MR; m++) {
                    v16 xv = xs[m];
                    acc[m][0] += xv * a;
                    acc[m][1] += xv * b;
                    acc[m][2] += xv * d;
                    acc[m][3] += xv * e;
                }
            }
        }
        const size_t tails = (size_t)n0 * K + (size_t)lines * line * 4; /* element index of row n0's tail */
        for (int j = 0; j < 4; j++) at[j] = tails + (size_t)j * tail - k; /* so that at[j] + kk is element kk */
    }
    for (int m = 0; m < MR; m++) {
        const float *xm = x + (size_t)m * K;
        float t[4];
        hsum4(acc[m], t);
        for (int j = 0; j < 4; j++) {
            for (int kk = k; kk < K; kk++) t[j] += xm[kk] * welem(type, w, at[j] + kk);
            if (type == MT_I8) t[j] *= scale[n0 + j];
        }
        memcpy(y + (size_t)m * N + n0, t, sizeof t);
    }
}

INLINE void one_col(int type, const float *x, const void *w, const float *scale, float *y, int rows, int n, int N,
                    int K) {
    const size_t row = (size_t)n * K;
    for (int m = 0; m < rows; m++) {
        float t = 0.0f;
        for (int k = 0; k < K; k++) t += x[(size_t)m * K + k] * welem(type, w, row + k);
        y[(size_t)m * N + n] = type == MT_I8 ? t * scale[n] : t;
    }
}

/* One plain float32 row against one row of x, one stream (faster than 4 rows side by side when x is one row). */
static __attribute__((noinline)) void row_f32(const float *x, const float *w, float *y, int n, int K) {
    const float *r = w + (size_t)n * K;
    v16 a0 = (v16){0}, a1 = (v16){0}, a2 = (v16){0}, a3 = (v16){0};
    int k = 0;
    for (; k + 64 <= K; k += 64) {
        for (int j = 0; j < 4; j++) __builtin_prefetch(r + k + 16 * j + PREFETCH_ROW / 4);
        a0 += load16(x + k) * load16(r + k);
        a1 += load16(x + k + 16) * load16(r + k + 16);
        a2 += load16(x + k + 32) * load16(r + k + 32);
        a3 += load16(x + k + 48) * load16(r + k + 48);
    }
    for (; k + 16 <= K; k += 16) a0 += load16(x + k) * load16(r + k);
    float t = hsum((a0 + a1) + (a2 + a3));
    for (; k < K; k++) t += x[k] * r[k];
    y[n] = t;
}

/* Each (type, layout, rows) kernel its own function, so that its accumulators stay in registers. */
typedef void (*cols_fn)(const float *, const void *, const float *, float *, int, int, int);
#define COLS_OF(T, B, S, NAME, MR)                                                                      \
    static __attribute__((noinline)) void NAME##_##MR(const float *x, const void *w, const float *s, float *y, \
                                                      int n0, int N, int K) {                           \
        cols4(T, B, S, MR, x, w, s, y, n0, N, K);                                                       \
    }
#define KERNELS_OF(T, B, S, NAME) \
    COLS_OF(T, B, S, NAME, 1) COLS_OF(T, B, S, NAME, 2) COLS_OF(T, B, S, NAME, 3) COLS_OF(T, B, S, NAME, 4)
KERNELS_OF(MT_F32, 0, 0, cols_f32)
KERNELS_OF(MT_F32, 1, 0, cols_f32b)
KERNELS_OF(MT_F16, 1, 0, cols_f16)
KERNELS_OF(MT_BF16, 1, 0, cols_bf16)
KERNELS_OF(MT_I8, 1, 0, cols_i8)
COLS_OF(MT_F16, 1, 1, cols_f16_step, 3) COLS_OF(MT_F16, 1, 1, cols_f16_step, 4) /* 1 and 2 rows: cols_f16's */
/* (type, layout) pairs with kernels (kind_of), and float16's for a step's few rows (matmul_out_in) */
enum { K_F32, K_F32_BLOCKS, K_F16, K_BF16, K_I8, K_F16_STEP, KINDS };
static const cols_fn COLS[KINDS][4] = {
    {cols_f32_1, cols_f32_2, cols_f32_3, cols_f32_4}, {cols_f32b_1, cols_f32b_2, cols_f32b_3, cols_f32b_4},
    {cols_f16_1, cols_f16_2, cols_f16_3, cols_f16_4}, {cols_bf16_1, cols_bf16_2, cols_bf16_3, cols_bf16_4},
    {cols_i8_1, cols_i8_2, cols_i8_3, cols_i8_4}, {cols_f16_1, cols_f16_2, cols_f16_step_3, cols_f16_step_4}};

/* One tile of columns [n0, n1) for `rows` (<= 4) rows of x. */
INLINE void tile_out_in(int type, int kind, const float *x, const void *w, const float *scale, float *y, int rows,
                        int n0, int n1, int N, int K) {
    if (kind == K_F32 && rows == 1) {
        for (int n = n0; n < n1; n++) row_f32(x, w, y, n, K);
        return;
    }
    const int whole = n0 + (n1 - n0) / 4 * 4;
    const cols_fn cols = COLS[kind][rows - 1];
    for (int n = n0; n < whole; n += 4) cols(x, w, scale, y, n, N, K);
    for (int n = whole; n < n1; n++) one_col(type, x, w, scale, y, rows, n, N, K);
}

typedef void (*tile_fn)(const float *, const void *, const float *, float *, int, int, int, int, int);
#define TILE_OF(T, KIND, NAME) \
    static void NAME(const float *x, const void *w, const float *s, float *y, int r, int a, int b, int N, int K) { \
        tile_out_in(T, KIND, x, w, s, y, r, a, b, N, K);                                                         \
    }
TILE_OF(MT_F32, K_F32, tile_f32)
TILE_OF(MT_F32, K_F32_BLOCKS, tile_f32b)
TILE_OF(MT_F16, K_F16, tile_f16)
TILE_OF(MT_BF16, K_BF16, tile_bf16)
TILE_OF(MT_I8, K_I8, tile_i8)
TILE_OF(MT_F16, K_F16_STEP, tile_f16_step)
static const tile_fn TILES[KINDS] = {tile_f32, tile_f32b, tile_f16, tile_bf16, tile_i8, tile_f16_step};

static int kind_of(const matrix_t *w) { /* float32 plain or in blocks; the narrow types are always in blocks */
    return w->type == MT_F32 ? (w->layout == LAYOUT_BLOCKS ? K_F32_BLOCKS : K_F32) : K_F16 + (w->type - MT_F16);
}

/* Whether a product's (chunk, tile) tasks are shared among the threads: a matrix of MIN_PARALLEL weights or more
 * (a step: bound by reading it), or as much arithmetic over many rows (a prompt's LoRA products). */
INLINE int worth_parallel(int N, int K, int M, int tasks, int threads) {
    const size_t weights = (size_t)N * K;
    return threads > 1 && tasks > 1 && (weights >= MIN_PARALLEL || weights * M >= (size_t)MIN_PARALLEL * MIN_PARALLEL_ROWS);
}

#if I8_VNNI || BF16_DOT
/* The loop of a product on prepared (narrow) activations: chunks of ROW_CHUNK rows, tiles of COL_TILE columns in
 * parallel, 4 rows x 4 columns per kernel call, then each tile's last N % 4 columns alone. */
typedef void (*cols_of_rows_fn)(int rows, const void *qx, int m0, const matrix_t *w, float *y, int n0, int N);
typedef void (*col_of_rows_fn)(const void *qx, int m0, int rows, const matrix_t *w, float *y, int n, int N);

static void narrow_product(const void *qx, const matrix_t *w, float *y, int M, int threads, cols_of_rows_fn cols,
                           col_of_rows_fn one_col) {
    const int N = w->n_out, tiles = (N + COL_TILE - 1) / COL_TILE, chunks = (M + ROW_CHUNK - 1) / ROW_CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads) if (worth_parallel(N, w->n_in, M, chunks * tiles, threads))
    for (int task = 0; task < chunks * tiles; task++) { /* as matmul_out_in's */
        const int c0 = task % chunks * ROW_CHUNK, c1 = M - c0 < ROW_CHUNK ? M : c0 + ROW_CHUNK;
        const int n0 = task / chunks * COL_TILE, n1 = N - n0 < COL_TILE ? N : n0 + COL_TILE, whole = n0 + (n1 - n0) / 4 * 4;
        for (int m0 = c0; m0 < c1; m0 += 4) {
            const int rows = c1 - m0 < 4 ? c1 - m0 : 4;
            for (int n = n0; n < whole; n += 4) cols(rows, qx, m0, w, y, n, N);
            for (int n = whole; n < n1; n++) one_col(qx, m0, rows, w, y, n, N);
        }
    }
}

/* narrow_product's two kernels of a kind NAME from its cols4_NAME(MR, ...) and one_col_NAME: each row count its own
 * code, so that the accumulators stay in registers */
#define NARROW_KERNELS(NAME)                                                                                   \
    static void cols_##NAME(int rows, const void *qx, int m0, const matrix_t *w, float *y, int n0, int N) {     \
        switch (rows) {                                                                                         \
        case 4: cols4_##NAME(4, qx, m0, w, y, n0, N); break;                                                    \
        case 3: cols4_##NAME(3, qx, m0, w, y, n0, N); break;                                                    \
        case 2: cols4_##NAME(2, qx, m0, w, y, n0, N); break;                                                    \
        default: cols4_##NAME(1, qx, m0, w, y, n0, N); break;                                                   \
        }                                                                                                       \
    }                                                                                                           \
    static void col_##NAME(const void *qx, int m0, int rows, const matrix_t *w, float *y, int n, int N) {       \
        one_col_##NAME(qx, m0, rows, w, y, n, N);                                                               \
    }
#endif

/* -- int8 weights x int8 activations (AVX-512 VNNI): each row of x quantised to int8 with its own scale,
 * offset by +128 to the unsigned bytes vpdpbusd takes (the offset taken back with the weights' row sums):
 * y[m][n] = sx[m] sw[n] (sum_k (qx[m][k] + 128) q[n][k] - 128 row_sum[n]). */

#if I8_VNNI
static int int8_activations = 1; /* the faster where compiled in (bench/bench_sizes.py); rwkv7_int8_kernel() sets it */

typedef struct { uint8_t *q; float *scale; int K, stride; } qrows_t; /* stride: K rounded up to 64 */

static int quantize_rows(const float *x, int M, int K, qrows_t *out) {
    out->K = K, out->stride = (K + 63) / 64 * 64;
    out->q = aligned_alloc(64, (size_t)M * out->stride);
    out->scale = malloc(sizeof(float) * M);
    if (!out->q || !out->scale) { free(out->q), free(out->scale); return 1; }
    for (int m = 0; m < M; m++) {
        const float *xm = x + (size_t)m * K;
        float top = 0.0f;
        for (int k = 0; k < K; k++) top = fabsf(xm[k]) > top ? fabsf(xm[k]) : top; /* not fmaxf: a call */
        const float inv = top > 0.0f ? 127.0f / top : 0.0f;
        uint8_t *qm = out->q + (size_t)m * out->stride;
        for (int k = 0; k < K; k++) qm[k] = (uint8_t)((int)rintf(xm[k] * inv) + 128);
        memset(qm + K, 128, out->stride - K); /* zero after the offset: the padding adds nothing */
        out->scale[m] = top / 127.0f;
    }
    return 0;
}

INLINE void cols4_vnni(int MR, const qrows_t *qx, int m0, const matrix_t *w, float *y, int n0, int N) {
    const int K = w->n_in, lines = K / 64, tail = K - lines * 64;
    const int8_t *block = (const int8_t *)w->data + (size_t)n0 * K; /* 4-row blocks of 64-byte lines */
    __m512i acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < 4; j++) acc[m][j] = _mm512_setzero_si512();
    for (int l = 0; l < lines; l++) {
        const int8_t *p = block + (size_t)l * 256;
        for (int j = 0; j < 4; j++) __builtin_prefetch(p + PREFETCH_BLOCKS + 64 * j);
        __m512i a = _mm512_loadu_si512(p), b = _mm512_loadu_si512(p + 64), c = _mm512_loadu_si512(p + 128),
                d = _mm512_loadu_si512(p + 192);
        for (int m = 0; m < MR; m++) {
            __m512i xv = _mm512_load_si512(qx->q + (size_t)(m0 + m) * qx->stride + l * 64);
            acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], xv, a);
            acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], xv, b);
            acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], xv, c);
            acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], xv, d);
        }
    }
    if (tail) { /* each row's last K % 64, after the lines: masked loads (the activations' padding is zero) */
        const int8_t *t = block + (size_t)lines * 256;
        const __mmask64 mask = _cvtu64_mask64(~0ULL >> (64 - tail));
        __m512i a = _mm512_maskz_loadu_epi8(mask, t), b = _mm512_maskz_loadu_epi8(mask, t + tail),
                c = _mm512_maskz_loadu_epi8(mask, t + 2 * tail), d = _mm512_maskz_loadu_epi8(mask, t + 3 * tail);
        for (int m = 0; m < MR; m++) {
            __m512i xv = _mm512_load_si512(qx->q + (size_t)(m0 + m) * qx->stride + lines * 64);
            acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], xv, a);
            acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], xv, b);
            acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], xv, c);
            acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], xv, d);
        }
    }
    for (int m = 0; m < MR; m++) { /* the 4 sums at once, as hsum4 */
        float *ym = y + (size_t)(m0 + m) * N + n0;
        __m256i half[4];
        for (int j = 0; j < 4; j++)
            half[j] = _mm256_add_epi32(_mm512_castsi512_si256(acc[m][j]), _mm512_extracti64x4_epi64(acc[m][j], 1));
        const __m256i all = _mm256_hadd_epi32(_mm256_hadd_epi32(half[0], half[1]), _mm256_hadd_epi32(half[2], half[3]));
        const __m128i dots = _mm_sub_epi32(_mm_add_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1)),
                                           _mm_slli_epi32(_mm_loadu_si128((const __m128i *)(w->row_sum + n0)), 7));
        const __m128 scaled = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(dots), _mm_set1_ps(qx->scale[m0 + m])),
                                         _mm_loadu_ps(w->scale + n0));
        _mm_storeu_ps(ym, scaled);
    }
}

/* One column for `rows` rows, with the same instructions (GCC 12 vectorises a plain C loop of this sum wrongly). */
static void one_col_vnni(const qrows_t *qx, int m0, int rows, const matrix_t *w, float *y, int n, int N) {
    const int K = w->n_in;
    const int8_t *qn = (const int8_t *)w->data + (size_t)n * K;
    for (int m = m0; m < m0 + rows; m++) {
        const uint8_t *qm = qx->q + (size_t)m * qx->stride;
        __m512i acc = _mm512_setzero_si512();
        for (int k = 0; k < K; k += 64) {
            const __mmask64 mask = K - k >= 64 ? ~(__mmask64)0 : _cvtu64_mask64(~0ULL >> (64 - (K - k)));
            acc = _mm512_dpbusd_epi32(acc, _mm512_load_si512(qm + k), _mm512_maskz_loadu_epi8(mask, qn + k));
        }
        const int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * w->row_sum[n];
        y[(size_t)m * N + n] = (float)dot * qx->scale[m] * w->scale[n];
    }
}

NARROW_KERNELS(vnni)

static int matmul_vnni(const float *x, const matrix_t *w, float *y, int M, int threads) {
    qrows_t qx;
    if (quantize_rows(x, M, w->n_in, &qx)) return 1;
    narrow_product(&qx, w, y, M, threads, cols_vnni, col_vnni);
    free(qx.q), free(qx.scale);
    return 0;
}
#endif

/* -- bfloat16 weights x bfloat16 activations (AVX-512 BF16): each row of x rounded to bfloat16 (to nearest even),
 * vdpbf16ps multiplying pairs and summing in float32: y[m][n] = sum_k bf16(x[m][k]) w[n][k]. Half the instructions
 * of widening the weights, so that 4 rows cost little more than one here too. */

#if BF16_DOT
static int bf16_activations = 1; /* the faster where compiled in (bench/bench_sizes.py); rwkv7_bf16_kernel() sets it */

typedef struct { uint16_t *q; int stride; } brows_t; /* stride: K rounded up to 32 elements (64 bytes) */

static int bf16_rows(const float *x, int M, int K, brows_t *out) {
    out->stride = (K + 31) / 32 * 32;
    out->q = aligned_alloc(64, (size_t)M * out->stride * sizeof(uint16_t));
    if (!out->q) return 1;
    for (int m = 0; m < M; m++) {
        uint16_t *qm = out->q + (size_t)m * out->stride;
        for (int k = 0; k < K; k++) qm[k] = f32_to_bf16(x[(size_t)m * K + k]);
        for (int k = K; k < out->stride; k++) qm[k] = 0; /* the padding adds nothing */
    }
    return 0;
}

INLINE __m512bh bf16_load(const uint16_t *p) { return (__m512bh)_mm512_loadu_si512(p); }

INLINE void cols4_bf16dot(int MR, const brows_t *qx, int m0, const matrix_t *w, float *y, int n0, int N) {
    const int K = w->n_in, lines = K / 32, tail = K - lines * 32;
    const uint16_t *block = (const uint16_t *)w->data + (size_t)n0 * K; /* 4-row blocks of 64-byte lines */
    v16 acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int j = 0; j < 4; j++) acc[m][j] = (v16){0};
    for (int l = 0; l < lines; l++) {
        const uint16_t *p = block + (size_t)l * 128;
        for (int j = 0; j < 4; j++) __builtin_prefetch((const char *)p + PREFETCH_BLOCKS + 64 * j);
        const __m512bh a = bf16_load(p), b = bf16_load(p + 32), c = bf16_load(p + 64), d = bf16_load(p + 96);
        for (int m = 0; m < MR; m++) {
            const __m512bh xv = (__m512bh)_mm512_load_si512(qx->q + (size_t)(m0 + m) * qx->stride + l * 32);
            acc[m][0] = (v16)_mm512_dpbf16_ps((__m512)acc[m][0], xv, a);
            acc[m][1] = (v16)_mm512_dpbf16_ps((__m512)acc[m][1], xv, b);
            acc[m][2] = (v16)_mm512_dpbf16_ps((__m512)acc[m][2], xv, c);
            acc[m][3] = (v16)_mm512_dpbf16_ps((__m512)acc[m][3], xv, d);
        }
    }
    if (tail) { /* each row's last K % 32, after the lines: masked loads (the activations' padding is zero) */
        const uint16_t *t = block + (size_t)lines * 128;
        const __mmask32 mask = _cvtu32_mask32(~0U >> (32 - tail));
        const __m512bh a = (__m512bh)_mm512_maskz_loadu_epi16(mask, t),
                       b = (__m512bh)_mm512_maskz_loadu_epi16(mask, t + tail),
                       c = (__m512bh)_mm512_maskz_loadu_epi16(mask, t + 2 * tail),
                       d = (__m512bh)_mm512_maskz_loadu_epi16(mask, t + 3 * tail);
        for (int m = 0; m < MR; m++) {
            const __m512bh xv = (__m512bh)_mm512_load_si512(qx->q + (size_t)(m0 + m) * qx->stride + lines * 32);
            acc[m][0] = (v16)_mm512_dpbf16_ps((__m512)acc[m][0], xv, a);
            acc[m][1] = (v16)_mm512_dpbf16_ps((__m512)acc[m][1], xv, b);
            acc[m][2] = (v16)_mm512_dpbf16_ps((__m512)acc[m][2], xv, c);
            acc[m][3] = (v16)_mm512_dpbf16_ps((__m512)acc[m][3], xv, d);
        }
    }
    for (int m = 0; m < MR; m++) hsum4(acc[m], y + (size_t)(m0 + m) * N + n0);
}

/* One column (a plain row of w: the last N % 4) for `rows` rows, with the same instructions. */
static void one_col_bf16dot(const brows_t *qx, int m0, int rows, const matrix_t *w, float *y, int n, int N) {
    const int K = w->n_in;
    const uint16_t *wn = (const uint16_t *)w->data + (size_t)n * K;
    for (int m = m0; m < m0 + rows; m++) {
        const uint16_t *qm = qx->q + (size_t)m * qx->stride;
        __m512 acc = _mm512_setzero_ps();
        for (int k = 0; k < K; k += 32) {
            const __mmask32 mask = K - k >= 32 ? ~(__mmask32)0 : _cvtu32_mask32(~0U >> (32 - (K - k)));
            acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_load_si512(qm + k), (__m512bh)_mm512_maskz_loadu_epi16(mask, wn + k));
        }
        y[(size_t)m * N + n] = _mm512_reduce_add_ps(acc);
    }
}

NARROW_KERNELS(bf16dot)

static int matmul_bf16dot(const float *x, const matrix_t *w, float *y, int M, int threads) {
    brows_t qx;
    if (bf16_rows(x, M, w->n_in, &qx)) return 1;
    narrow_product(&qx, w, y, M, threads, cols_bf16dot, col_bf16dot);
    free(qx.q);
    return 0;
}
#endif

/* 1: bfloat16 (out, in) products take bfloat16 activations through vdpbf16ps where this build has it (the default
 * there); 0: the weights are widened to float32. -1 only reads. Returns the kernel now in use (0 without it). */
int rwkv7_bf16_kernel(int which) {
#if BF16_DOT
    if (which >= 0) bf16_activations = which != 0;
    return bf16_activations;
#else
    (void)which;
    return 0;
#endif
}

/* 1: int8 (out, in) products take int8 activations through VNNI where this build has it (the default there);
 * 0: the weights are converted to float32. -1 only reads. Returns the kernel now in use (0 without VNNI). */
int rwkv7_int8_kernel(int which) {
#if I8_VNNI
    if (which >= 0) int8_activations = which != 0;
    return int8_activations;
#else
    (void)which;
    return 0;
#endif
}

static void matmul_out_in(const float *x, const matrix_t *w, float *y, int M, int threads) {
    const int N = w->n_out, K = w->n_in, tiles = (N + COL_TILE - 1) / COL_TILE, chunks = (M + ROW_CHUNK - 1) / ROW_CHUNK;
    const int kind = kind_of(w);
    const tile_fn tile_of = TILES[kind == K_F16 && M <= 4 ? K_F16_STEP : kind];
    /* one task: ROW_CHUNK rows of x by COL_TILE columns; tile-major, so that a thread reads a tile's weights for
     * all of its chunks while they are in its cache */
#pragma omp parallel for schedule(static) num_threads(threads) if (worth_parallel(N, K, M, chunks * tiles, threads))
    for (int task = 0; task < chunks * tiles; task++) {
        const int c0 = task % chunks * ROW_CHUNK, c1 = M - c0 < ROW_CHUNK ? M : c0 + ROW_CHUNK;
        const int n0 = task / chunks * COL_TILE, n1 = N - n0 < COL_TILE ? N : n0 + COL_TILE;
        for (int m0 = c0; m0 < c1; m0 += 4)
            tile_of(x + (size_t)m0 * K, w->data, w->scale, y + (size_t)m0 * N, c1 - m0 < 4 ? c1 - m0 : 4, n0, n1, N, K);
    }
}

/* -- (in, out) float32 weights (the LoRA matrices in the model's memory): each row of w is added into up to 4 rows of
 * y at once, Q x 16 columns at a time, so y stays in registers. Tiles of 64 columns, or of 16 where that leaves too
 * few to share. */

INLINE void in_out_tile(int Q, const float *x, const float *w, float *y, int rows, int n0, int N, int K) {
    v16 acc[4][4];
    for (int m = 0; m < 4; m++)
        for (int q = 0; q < 4; q++) acc[m][q] = (v16){0};
    int k = 0;
    if (Q == 1) /* one 16-column vector: 4 partial sums over k, so that the adds do not wait on each other */
        for (; k + 4 <= K; k += 4)
            for (int p = 0; p < 4; p++) {
                const v16 wk = load16(w + (size_t)(k + p) * N + n0);
                for (int m = 0; m < rows; m++) acc[m][p] += x[(size_t)m * K + k + p] * wk;
            }
    for (; k < K; k++) {
        const float *at = w + (size_t)k * N + n0;
        v16 wq[4];
        for (int q = 0; q < Q; q++) wq[q] = load16(at + 16 * q);
        for (int m = 0; m < rows; m++) {
            const float xk = x[(size_t)m * K + k];
            for (int q = 0; q < Q; q++) acc[m][q] += xk * wq[q];
        }
    }
    if (Q == 1)
        for (int m = 0; m < rows; m++) acc[m][0] += (acc[m][1] + acc[m][2]) + acc[m][3];
    for (int m = 0; m < rows; m++) memcpy(y + (size_t)m * N + n0, acc[m], sizeof(v16) * Q);
}

static void in_out_rest(const float *x, const float *w, float *y, int rows, int n0, int width, int N, int K) {
    for (int m = 0; m < rows; m++) { /* the last columns, fewer than a tile */
        float acc[64] = {0};
        for (int k = 0; k < K; k++) {
            const float *at = w + (size_t)k * N + n0, xk = x[(size_t)m * K + k];
            for (int j = 0; j < width; j++) acc[j] += xk * at[j];
        }
        memcpy(y + (size_t)m * N + n0, acc, sizeof(float) * width);
    }
}

static void in_out(const float *x, const float *w, float *y, int M, int N, int K, int threads) {
    const int tile = N >= 64 * 2 * threads || N < 32 ? 64 : 16;
    const int tiles = (N + tile - 1) / tile;
    const int parallel = (size_t)N * K >= MIN_PARALLEL_IN_OUT && threads > 1 && tiles > 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
    for (int t = 0; t < tiles; t++) {
        const int n0 = t * tile, width = N - n0 < tile ? N - n0 : tile;
        for (int m0 = 0; m0 < M; m0 += 4) {
            const int rows = M - m0 < 4 ? M - m0 : 4;
            const float *xm = x + (size_t)m0 * K;
            float *ym = y + (size_t)m0 * N;
            if (width == 64)
                in_out_tile(4, xm, w, ym, rows, n0, N, K);
            else if (width == 16)
                in_out_tile(1, xm, w, ym, rows, n0, N, K);
            else
                in_out_rest(xm, w, ym, rows, n0, width, N, K);
        }
    }
}

void rwkv7_matmul(const float *x, const matrix_t *w, float *y, int M, int threads) {
    if (w->layout == LAYOUT_IN_OUT) { /* float32 only (rwkv7_convert stores the narrow types in blocks) */
        if (w->type == MT_F32) in_out(x, w->data, y, M, w->n_out, w->n_in, threads);
        return;
    }
#if I8_VNNI
    if (w->type == MT_I8 && w->layout == LAYOUT_BLOCKS && int8_activations && matmul_vnni(x, w, y, M, threads) == 0)
        return;
#endif
#if BF16_DOT
    if (w->type == MT_BF16 && w->layout == LAYOUT_BLOCKS && bf16_activations && matmul_bf16dot(x, w, y, M, threads) == 0)
        return;
#endif
    matmul_out_in(x, w, y, M, threads);
}

/* -- conversion at load: float32 src (n_out x n_in in src_layout, (out, in) or (in, out)) to `type` in dst, in 4-row
 * blocks (rwkv7_matrix.h; float32 too: a copy), with int8's per-output scales and row sums. Returns how many values do
 * not fit the type (non-finite, or beyond float16's range; the caller refuses the conversion then), or -1 for a
 * conversion it does not make. */

/* Where element (n, k) of an (out, in) matrix of a narrow type goes. */
static inline size_t block_index(size_t n, size_t k, size_t N, size_t K, size_t line) {
    if (n >= N / 4 * 4) return n * K + k; /* the last N % 4 rows as they are */
    const size_t lines = K / line, base = n / 4 * 4 * K, j = n % 4;
    if (k < lines * line) return base + k / line * line * 4 + j * line + k % line;
    return base + lines * line * 4 + j * (K - lines * line) + (k - lines * line);
}

/* Row n of an (out, in) matrix, float32 in place or converted into blocks, as float32: the embedding's row of a token. */
void rwkv7_matrix_row(const matrix_t *w, int n, float *out) {
    const size_t N = w->n_out, K = w->n_in, line = 64 / elem_size(w->type);
    if (w->layout == LAYOUT_OUT_IN) {
        for (size_t k = 0; k < K; k++) out[k] = welem(w->type, w->data, (size_t)n * K + k);
    } else {
        for (size_t k = 0; k < K; k++) out[k] = welem(w->type, w->data, block_index(n, k, N, K, line));
    }
    if (w->type == MT_I8)
        for (size_t k = 0; k < K; k++) out[k] *= w->scale[n];
}

/* count values from src (every stride-th float) into 16-bit dst; returns how many became inf or nan. float16 through
 * the CPU's conversion where compiled in (vcvtps2ph, round to nearest even: the same bits as f32_to_f16 for every
 * value but a nan's payload, and a nan is refused anyway). */
static int64_t to_16_bit(int type, const float *src, size_t stride, size_t count, uint16_t *dst) {
    size_t i = 0;
#if F16_AVX512 || F16_F16C
    if (type == MT_F16 && stride == 1)
        for (; i + 8 <= count; i += 8)
            _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < count; i++) dst[i] = type == MT_F16 ? f32_to_f16(src[i * stride]) : f32_to_bf16(src[i * stride]);
    int64_t bad = 0; /* an all-ones exponent: inf or nan */
    const uint16_t ones = type == MT_F16 ? 0x7c00 : 0x7f80;
    for (i = 0; i < count; i++) bad += (dst[i] & ones) == ones;
    return bad;
}

/* count values from src (every stride-th) times inv, rounded and clipped to int8 in dst; returns their sum. */
static int32_t to_int8(const float *src, size_t stride, size_t count, float inv, int8_t *dst) {
    int32_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        const float v = rintf(src[i * stride] * inv);
        const int8_t q = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v);
        dst[i] = q;
        sum += q;
    }
    return sum;
}

/* Row n's runs of consecutive destination elements in blocks (rwkv7_matrix.h): its cache lines, then its tail; the
 * last N % 4 rows are one run each. run_count: how many; run r: *at (where it goes), *first (its first k), length. */
static size_t run_count(size_t n, size_t N, size_t K, size_t line) {
    return n >= N / 4 * 4 ? 1 : K / line + (K % line != 0);
}

static size_t run_of(size_t n, size_t r, size_t N, size_t K, size_t line, size_t *at, size_t *first) {
    if (n >= N / 4 * 4) {
        *at = n * K, *first = 0;
        return K;
    }
    const size_t lines = K / line, base = n / 4 * 4 * K, j = n % 4;
    if (r < lines) {
        *at = base + r * line * 4 + j * line, *first = r * line;
        return line;
    }
    *at = base + lines * line * 4 + j * (K - lines * line), *first = lines * line;
    return K - lines * line;
}

int64_t rwkv7_convert(const float *src, int type, int src_layout, int dst_layout, int n_out, int n_in, void *dst,
                      float *scale, int32_t *row_sum, int threads) {
    const size_t N = n_out, K = n_in, line = 64 / elem_size(type);
    const int parallel = threads > 1 && N * K >= 1 << 16;
    if (type < 0 || type >= MATRIX_TYPES || src_layout == LAYOUT_BLOCKS || dst_layout != LAYOUT_BLOCKS) return -1;
    const size_t stride = src_layout == LAYOUT_OUT_IN ? 1 : N; /* between src's (n, k) and (n, k + 1) */
    int64_t bad = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : bad) if (parallel)
    for (size_t n = 0; n < N; n++) {
        const float *row = src_layout == LAYOUT_OUT_IN ? src + n * K : src + n; /* element (n, 0) */
        float inv = 0.0f;
        if (type == MT_I8) { /* one scale per output */
            float top = 0.0f;
            int64_t found = 0;
            for (size_t k = 0; k < K; k++) {
                const float v = fabsf(row[k * stride]);
                found += !isfinite(v);
                top = v > top ? v : top;
            }
            bad += found;
            inv = top > 0.0f ? 127.0f / top : 0.0f;
            scale[n] = top / 127.0f;
        }
        int32_t sum = 0;
        for (size_t r = 0, runs = run_count(n, N, K, line); r < runs; r++) {
            size_t at, first;
            const size_t count = run_of(n, r, N, K, line, &at, &first);
            const float *from = row + first * stride;
            if (type == MT_F32)
                for (size_t i = 0; i < count; i++) ((float *)dst)[at + i] = from[i * stride];
            else if (type == MT_I8)
                sum += to_int8(from, stride, count, inv, (int8_t *)dst + at);
            else
                bad += to_16_bit(type, from, stride, count, (uint16_t *)dst + at);
        }
        if (type == MT_I8 && row_sum) row_sum[n] = sum;
    }
    return bad;
}

/* What this build's kernels use, for the status and the tests: "portable", or the instruction sets. */
const char *rwkv7_kernels(void) {
#ifdef RWKV7_PORTABLE
    return "portable";
#else
    return "float16:"
#if F16_AVX512
           "avx512f"
#elif F16_F16C
           "f16c"
#else
           "c"
#endif
           " bfloat16:vector"
#if BF16_DOT
           "+avx512bf16"
#endif
           " int8:vector"
#if I8_VNNI
           "+avx512vnni"
#endif
        ;
#endif
}
