/*
 * gate_knn.c: scores = G . q over f32 or f16 gate rows, and top-k selection.
 *
 * The gemv is memory-bound: each gate element is read once and used in one
 * multiply-add, so the goal is to stream the matrix at memory bandwidth.
 * With WASM SIMD (-msimd128) a row is consumed 16 floats at a time into four
 * independent accumulators (hiding the add latency). f16 rows are widened in
 * registers with integer operations: no lookup table and no scalar loop, so
 * reading half the bytes of f32 actually pays off.
 */
#include "pg_infer.h"

#include <math.h>

#include "gate_knn.h"

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
#endif

/*
 * f16 -> f32 for normal and subnormal values: move exponent and mantissa
 * into place (<< 13), then multiply by 2^112 to rebias the exponent
 * (15 -> 127); subnormals come out exact because the multiply normalises
 * them. Inf/NaN are not preserved (they do not occur in weights).
 */
static inline float
half_to_float(uint16 h)
{
	union
	{
		uint32 u;
		float f;
	} v;
	uint32 sign = (uint32) (h & 0x8000) << 16;

	v.u = (uint32) (h & 0x7fff) << 13;
	v.f *= 0x1p112f;
	v.u |= sign;
	return v.f;
}

void
f16_to_f32(const uint16 *src, float *dst, int n)
{
	for (int i = 0; i < n; i++)
		dst[i] = half_to_float(src[i]);
}

#ifdef __wasm_simd128__

/* Eight f16 lanes -> two f32x4 vectors, as half_to_float does. */
static inline void
half8_to_float(v128_t h, v128_t *lo, v128_t *hi)
{
	const v128_t magnitude = wasm_i16x8_splat(0x7fff);
	const v128_t scale = wasm_f32x4_splat(0x1p112f);
	v128_t mag = wasm_v128_and(h, magnitude);
	v128_t sign = wasm_v128_andnot(h, magnitude);
	v128_t m_lo = wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(mag), 13);
	v128_t m_hi = wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(mag), 13);
	v128_t s_lo = wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(sign), 16);
	v128_t s_hi = wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(sign), 16);

	*lo = wasm_v128_or(wasm_f32x4_mul(m_lo, scale), s_lo);
	*hi = wasm_v128_or(wasm_f32x4_mul(m_hi, scale), s_hi);
}

static inline float
hsum(v128_t a, v128_t b, v128_t c, v128_t d)
{
	v128_t s = wasm_f32x4_add(wasm_f32x4_add(a, b), wasm_f32x4_add(c, d));

	return wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1) +
		   wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3);
}

static float
dot_f32(const float *row, const float *q, int n)
{
	v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	float tail = 0;

	for (; i + 16 <= n; i += 16)
	{
		a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(row + i), wasm_v128_load(q + i)));
		a1 = wasm_f32x4_add(a1,
							wasm_f32x4_mul(wasm_v128_load(row + i + 4), wasm_v128_load(q + i + 4)));
		a2 = wasm_f32x4_add(a2,
							wasm_f32x4_mul(wasm_v128_load(row + i + 8), wasm_v128_load(q + i + 8)));
		a3 = wasm_f32x4_add(
			a3, wasm_f32x4_mul(wasm_v128_load(row + i + 12), wasm_v128_load(q + i + 12)));
	}
	for (; i < n; i++)
		tail += row[i] * q[i];
	return hsum(a0, a1, a2, a3) + tail;
}

static float
dot_f16(const uint16 *row, const float *q, int n)
{
	v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	float tail = 0;

	for (; i + 16 <= n; i += 16)
	{
		v128_t x0, x1, x2, x3;

		half8_to_float(wasm_v128_load(row + i), &x0, &x1);
		half8_to_float(wasm_v128_load(row + i + 8), &x2, &x3);
		a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(x0, wasm_v128_load(q + i)));
		a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(x1, wasm_v128_load(q + i + 4)));
		a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(x2, wasm_v128_load(q + i + 8)));
		a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(x3, wasm_v128_load(q + i + 12)));
	}
	for (; i < n; i++)
		tail += half_to_float(row[i]) * q[i];
	return hsum(a0, a1, a2, a3) + tail;
}

#else /* portable C for native builds */

static float
dot_f32(const float *row, const float *q, int n)
{
	float s = 0;

	for (int i = 0; i < n; i++)
		s += row[i] * q[i];
	return s;
}

static float
dot_f16(const uint16 *row, const float *q, int n)
{
	float s = 0;

	for (int i = 0; i < n; i++)
		s += half_to_float(row[i]) * q[i];
	return s;
}

#endif

void
gate_scores(const void *gate, GateDtype dtype, int rows, int hidden, const float *q, float *scores)
{
	if (dtype == GATE_F32)
	{
		const float *g = gate;

		for (int r = 0; r < rows; r++)
			scores[r] = dot_f32(g + (size_t) r * hidden, q, hidden);
	}
	else
	{
		const uint16 *g = gate;

		for (int r = 0; r < rows; r++)
			scores[r] = dot_f16(g + (size_t) r * hidden, q, hidden);
	}
}

/*
 * Batched scoring. Rows are processed in blocks small enough to stay in
 * cache (widened to f32 once for f16), and every query of the batch is
 * scored against the block before the next block is read: the matrix
 * streams from memory once per batch instead of once per query.
 */
#define BATCH_BLOCK_BYTES (64 * 1024)

void
gate_scores_batch(const void *gate, GateDtype dtype, int rows, int hidden, const float *queries,
				  int nq, float *scores)
{
	int block = BATCH_BLOCK_BYTES / (int) (hidden * sizeof(float));
	float *widened = NULL;

	if (block < 1)
		block = 1;
	if (dtype == GATE_F16)
		widened = palloc(sizeof(float) * (size_t) block * hidden);

	for (int r0 = 0; r0 < rows; r0 += block)
	{
		int nrows = Min(block, rows - r0);
		const float *rowsf;

		if (dtype == GATE_F32)
			rowsf = (const float *) gate + (size_t) r0 * hidden;
		else
		{
			f16_to_f32((const uint16 *) gate + (size_t) r0 * hidden, widened, nrows * hidden);
			rowsf = widened;
		}
		for (int i = 0; i < nq; i++)
			for (int r = 0; r < nrows; r++)
				scores[(size_t) i * rows + r0 + r] =
					dot_f32(rowsf + (size_t) r * hidden, queries + (size_t) i * hidden, hidden);
	}
	if (widened)
		pfree(widened);
}

/* ---- top-k ---- */

static inline float
rank_key(float score, GateRank rank)
{
	return rank == RANK_ABS ? fabsf(score) : score;
}

bool
gate_hit_before(const GateHit *a, const GateHit *b, GateRank rank)
{
	float ka = rank_key(a->score, rank);
	float kb = rank_key(b->score, rank);

	if (ka != kb)
		return ka > kb;
	if (a->layer != b->layer)
		return a->layer < b->layer;
	return a->feature < b->feature;
}

void
topk_init(TopK *t, int k, GateRank rank)
{
	t->k = k;
	t->n = 0;
	t->rank = rank;
	t->hits = palloc(sizeof(GateHit) * (k > 0 ? k : 1));
}

/* the heap keeps the worst kept hit at the root */
static inline bool
heap_less(const TopK *t, int i, int j)
{
	return gate_hit_before(&t->hits[j], &t->hits[i], t->rank);
}

static void
sift_down(TopK *t, int i)
{
	for (;;)
	{
		int l = 2 * i + 1, r = l + 1, m = i;
		GateHit tmp;

		if (l < t->n && heap_less(t, l, m))
			m = l;
		if (r < t->n && heap_less(t, r, m))
			m = r;
		if (m == i)
			return;
		tmp = t->hits[i];
		t->hits[i] = t->hits[m];
		t->hits[m] = tmp;
		i = m;
	}
}

void
topk_push(TopK *t, int32 layer, int32 feature, float score)
{
	GateHit h = {layer, feature, score};

	if (t->k <= 0)
		return;
	if (t->n < t->k)
	{
		int i = t->n++;

		t->hits[i] = h;
		while (i > 0)
		{
			int p = (i - 1) / 2;
			GateHit tmp;

			if (!heap_less(t, i, p))
				break;
			tmp = t->hits[i];
			t->hits[i] = t->hits[p];
			t->hits[p] = tmp;
			i = p;
		}
		return;
	}
	if (!gate_hit_before(&h, &t->hits[0], t->rank))
		return;
	t->hits[0] = h;
	sift_down(t, 0);
}

void
topk_push_layer(TopK *t, int32 layer, const float *scores, int rows, bool positive_only)
{
	for (int r = 0; r < rows; r++)
	{
		float s = scores[r];

		if (positive_only && !(s > 0))
			continue;
		/* cheap reject before building a hit: most rows lose to the root */
		if (t->n == t->k && t->k > 0 && rank_key(s, t->rank) < rank_key(t->hits[0].score, t->rank))
			continue;
		topk_push(t, layer, r, s);
	}
}

static GateRank sort_rank;

static int
cmp_hits(const void *a, const void *b)
{
	if (gate_hit_before(a, b, sort_rank))
		return -1;
	if (gate_hit_before(b, a, sort_rank))
		return 1;
	return 0;
}

int
topk_sorted(TopK *t)
{
	sort_rank = t->rank;
	qsort(t->hits, t->n, sizeof(GateHit), cmp_hits);
	return t->n;
}
