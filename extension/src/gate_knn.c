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

#ifdef __wasm_simd128__

/*
 * Eight f16 lanes -> two vectors of f32 *bit patterns scaled by 2^-112*:
 * sign-extending each half to 32 bits puts its sign in bit 31, and shifting
 * left by 13 puts exponent and mantissa in place; masking drops the copies
 * of the sign that the extension smeared over bits 28-30. The missing 2^112
 * of exponent rebias is folded into the query (see gate_scores), so the
 * decode costs three integer operations per four lanes and no multiply.
 *
 * An f16 subnormal would become an f32 subnormal here, and x86 multiplies
 * those ~100x slower; gate_flush_subnormals() removes them at load.
 */
static inline void
half8_to_scaled_float(v128_t h, v128_t *lo, v128_t *hi)
{
	const v128_t keep = wasm_i32x4_splat((int32) 0x8fffe000);

	*lo = wasm_v128_and(wasm_i32x4_shl(wasm_i32x4_extend_low_i16x8(h), 13), keep);
	*hi = wasm_v128_and(wasm_i32x4_shl(wasm_i32x4_extend_high_i16x8(h), 13), keep);
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

/* row . q for f16 rows, where q has been multiplied by 2^112 (see above) */
static float
dot_f16(const uint16 *row, const float *q, int n)
{
	v128_t a0 = wasm_f32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
	int i = 0;
	float tail = 0;

	for (; i + 16 <= n; i += 16)
	{
		v128_t x0, x1, x2, x3;

		half8_to_scaled_float(wasm_v128_load(row + i), &x0, &x1);
		half8_to_scaled_float(wasm_v128_load(row + i + 8), &x2, &x3);
		a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(x0, wasm_v128_load(q + i)));
		a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(x1, wasm_v128_load(q + i + 4)));
		a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(x2, wasm_v128_load(q + i + 8)));
		a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(x3, wasm_v128_load(q + i + 12)));
	}
	for (; i < n; i++)
		tail += half_to_float(row[i]) * q[i] * 0x1p-112f;
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
		s += half_to_float(row[i]) * q[i] * 0x1p-112f;
	return s;
}

#endif

void
f16_to_f32(const uint16 *src, float *dst, int n)
{
	int i = 0;

#ifdef __wasm_simd128__
	const v128_t scale = wasm_f32x4_splat(0x1p112f);

	for (; i + 8 <= n; i += 8)
	{
		v128_t lo, hi;

		half8_to_scaled_float(wasm_v128_load(src + i), &lo, &hi);
		wasm_v128_store(dst + i, wasm_f32x4_mul(lo, scale));
		wasm_v128_store(dst + i + 4, wasm_f32x4_mul(hi, scale));
	}
#endif
	for (; i < n; i++)
		dst[i] = half_to_float(src[i]);
}

/*
 * q x 2^112, which dot_f16 needs. Exact (a power of two) as long as it does
 * not overflow: |q| must stay below 2^128 / 2^112 = 65536, far above any
 * embedding value; larger queries are refused rather than scored wrongly.
 */
static float *
scale_query(const float *q, int n)
{
	float *s = palloc(sizeof(float) * n);

	for (int i = 0; i < n; i++)
	{
		if (!(fabsf(q[i]) < 65536.0f))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("query vector value %g is out of range for f16 gate scoring", q[i])));
		s[i] = q[i] * 0x1p112f;
	}
	return s;
}

void
gate_split_subnormals(GateMatrix *g, MemoryContext cxt)
{
	uint16 *v = g->data;
	size_t n = (size_t) g->rows * g->hidden;
	int count = 0;

	g->nfix = 0;
	g->fix = NULL;
	if (g->dtype != GATE_F16)
		return;
	for (size_t i = 0; i < n; i++)
		count += (v[i] & 0x7fff) != 0 && (v[i] & 0x7c00) == 0;
	if (count == 0)
		return;
	g->fix = MemoryContextAllocExtended(cxt, sizeof(GateFixup) * count, MCXT_ALLOC_HUGE);
	for (size_t i = 0; i < n; i++)
	{
		if ((v[i] & 0x7fff) == 0 || (v[i] & 0x7c00) != 0)
			continue;
		g->fix[g->nfix].row = (int32) (i / g->hidden);
		g->fix[g->nfix].col = (int32) (i % g->hidden);
		g->fix[g->nfix].value = half_to_float(v[i]);
		g->nfix++;
		v[i] &= 0x8000;
	}
}

/* Adds the sparse subnormal weights back: scores[i * rows + r] += w . q_i */
static void
add_fixups(const GateMatrix *g, const float *queries, int nq, float *scores)
{
	for (int i = 0; i < nq; i++)
	{
		const float *q = queries + (size_t) i * g->hidden;
		float *out = scores + (size_t) i * g->rows;

		for (int j = 0; j < g->nfix; j++)
			out[g->fix[j].row] += g->fix[j].value * q[g->fix[j].col];
	}
}

void
gate_scores(const GateMatrix *g, const float *q, float *scores)
{
	int hidden = g->hidden;

	if (g->dtype == GATE_F32)
	{
		const float *rows = g->data;

		for (int r = 0; r < g->rows; r++)
			scores[r] = dot_f32(rows + (size_t) r * hidden, q, hidden);
	}
	else
	{
		const uint16 *rows = g->data;
		float *q112 = scale_query(q, hidden);

		for (int r = 0; r < g->rows; r++)
			scores[r] = dot_f16(rows + (size_t) r * hidden, q112, hidden);
		pfree(q112);
		add_fixups(g, q, 1, scores);
	}
}

/*
 * One column of the matrix (out[r] = G[r][col], rows values): a strided
 * read, with the column's subnormal fix-ups put back so it is exact.
 */
void
gate_column(const GateMatrix *g, int col, float *out)
{
	for (int r = 0; r < g->rows; r++)
	{
		size_t i = (size_t) r * g->hidden + col;

		out[r] = g->dtype == GATE_F32 ? ((const float *) g->data)[i]
									  : half_to_float(((const uint16 *) g->data)[i]);
	}
	for (int j = 0; j < g->nfix; j++)
		if (g->fix[j].col == col)
			out[g->fix[j].row] = g->fix[j].value;
}

/*
 * Batched scoring. Rows are processed in blocks small enough to stay in
 * cache (widened to f32 once for f16), and every query of the batch is
 * scored against the block before the next block is read: the matrix
 * streams from memory once per batch instead of once per query.
 */
#define BATCH_BLOCK_BYTES (64 * 1024)

void
gate_scores_batch(const GateMatrix *g, const float *queries, int nq, float *scores)
{
	const void *gate = g->data;
	GateDtype dtype = g->dtype;
	int rows = g->rows;
	int hidden = g->hidden;
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
	{
		pfree(widened);
		add_fixups(g, queries, nq, scores);
	}
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
