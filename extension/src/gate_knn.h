/*
 * gate_knn.h: the gate KNN kernel (gate_knn.c).
 *
 * A layer's gate matrix G holds one row per FFN feature ([features x hidden],
 * row-major, f32 or f16). Gate KNN scores every feature against a query
 * vector q (scores = G . q, one gemv) and keeps the k features with the
 * largest |score|.
 */
#ifndef PG_INFER_GATE_KNN_H
#define PG_INFER_GATE_KNN_H

#include "postgres.h"

typedef enum GateDtype
{
	GATE_F32 = 0,
	GATE_F16 = 1
} GateDtype;

/*
 * An f16 subnormal taken out of the dense matrix (see
 * gate_split_subnormals): its exact value, added back sparsely.
 */
typedef struct GateFixup
{
	int32 row;
	int32 col;
	float value;
} GateFixup;

/* One layer's gate rows. */
typedef struct GateMatrix
{
	void *data; /* rows x hidden, row-major */
	GateDtype dtype;
	int rows;
	int hidden;
	int nfix;
	GateFixup *fix;
} GateMatrix;

/* One scored feature. */
typedef struct GateHit
{
	int32 layer;
	int32 feature;
	float score;
} GateHit;

/* How hits are ranked: by |score| (gate KNN) or by signed score. */
typedef enum GateRank
{
	RANK_ABS,
	RANK_SIGNED
} GateRank;

/* scores[r] = G[r] . q for rows r in [0, rows) */
extern void gate_scores(const GateMatrix *g, const float *q, float *scores);

/*
 * scores[i * rows + r] = G[r] . q_i for nq queries stored one after another
 * (q_i = queries + i * hidden). Reads G once per block of queries, which is
 * what makes batched index builds cheaper than nq single calls.
 */
extern void gate_scores_batch(const GateMatrix *g, const float *queries, int nq, float *scores);

/* out[r] = G[r][col] for every row: one column, exact (fix-ups included). */
extern void gate_column(const GateMatrix *g, int col, float *out);

/*
 * Moves the f16 subnormals (|x| < 2^-14) of an f16 matrix out of the dense
 * rows into g->fix (allocated in cxt), leaving signed zeros behind. Done once
 * at load: the SIMD decode would turn them into f32 subnormals, which stall
 * x86 multiplies ~100x; they are rare (a fraction of a percent of weights),
 * so adding them back sparsely keeps scores exact at almost no cost.
 */
extern void gate_split_subnormals(GateMatrix *g, MemoryContext cxt);

/* Converts n f16 values to f32. */
extern void f16_to_f32(const uint16 *src, float *dst, int n);

/*
 * A bounded heap keeping the best k hits. Ties in rank are broken by
 * (layer, feature) ascending, so results never depend on scan order.
 */
typedef struct TopK
{
	int k;
	int n;
	GateRank rank;
	GateHit *hits; /* a min-heap: hits[0] is the worst kept */
} TopK;

extern void topk_init(TopK *t, int k, GateRank rank);
extern void topk_push(TopK *t, int32 layer, int32 feature, float score);
/* Pushes every row's score of one layer (skipping non-positive ones if asked). */
extern void topk_push_layer(TopK *t, int32 layer, const float *scores, int rows,
							bool positive_only);
/* Sorts the kept hits best first; returns their number. */
extern int topk_sorted(TopK *t);
/* true when a ranks strictly before b */
extern bool gate_hit_before(const GateHit *a, const GateHit *b, GateRank rank);

#endif /* PG_INFER_GATE_KNN_H */
