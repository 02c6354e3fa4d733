/* The weight matrices of the C step (rwkv7_matrix.c): float32 in the model's own memory, or a copy
 * converted once at load to 16-bit (float16, bfloat16) or 8-bit (int8, one float32 scale per output
 * channel). Every product converts the weights to float32 in registers and accumulates in float32;
 * activations stay float32. */
#ifndef RWKV7_MATRIX_H
#define RWKV7_MATRIX_H

#include <stddef.h>
#include <stdint.h>

typedef float v16 __attribute__((vector_size(64), aligned(4))); /* 16 floats; unaligned loads are fine */

/* Element types (native_step.py's PRECISIONS) and layouts: nn.Linear's (out, in), y[n] = sum_k W[n][k] x[k], or the
 * LoRA matrices' (in, out), y[n] = sum_k x[k] W[k][n], both row-major (float32 only, in the model's memory); or
 * (out, in) in 4-row blocks, so that a product reads one stream (any type; the narrow types' matrices are always so,
 * the LoRA ones too): block b (rows 4b .. 4b+3, at element 4bK) holds the 4 rows' first cache lines (64 bytes each),
 * then their second ones, and so on, then each row's last K % (64 / element size) elements in turn; the last N % 4
 * rows follow as plain rows (rwkv7_convert writes them so). */
enum { MT_F32, MT_F16, MT_BF16, MT_I8, MATRIX_TYPES };
enum { LAYOUT_OUT_IN, LAYOUT_IN_OUT, LAYOUT_BLOCKS };

typedef struct {
    const void *data;       /* n_out x n_in elements in `layout` */
    const float *scale;     /* MT_I8: one per output channel (W = scale[n] * q[n][k]); else unused */
    const int32_t *row_sum; /* MT_I8, (out, in): sum_k q[n][k] per output (the VNNI kernel's offset); else unused */
    int32_t type, layout, n_out, n_in;
} matrix_t;

/* y (M, n_out) = x (M, n_in) @ W^T, each weight read once for up to 4 rows of x. */
void rwkv7_matmul(const float *x, const matrix_t *w, float *y, int M, int threads);

/* out (n_in) = row n of an (out, in) matrix (float32 in place, or in blocks), as float32. */
void rwkv7_matrix_row(const matrix_t *w, int n, float *out);

static inline v16 load16(const float *p) { return *(const v16 *)p; }

static inline float hsum(v16 v) { /* a tree: 4 dependent adds, not 16 */
    float t[16];
    __builtin_memcpy(t, &v, sizeof t);
    for (int width = 8; width > 0; width /= 2)
        for (int i = 0; i < width; i++) t[i] += t[i + width];
    return t[0];
}

#endif
