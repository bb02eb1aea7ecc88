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
extern void gate_scores(const void *gate, GateDtype dtype, int rows, int hidden, const float *q,
						float *scores);

/*
 * scores[i * rows + r] = G[r] . q_i for nq queries stored one after another
 * (q_i = queries + i * hidden). Reads G once per block of queries, which is
 * what makes batched index builds cheaper than nq single calls.
 */
extern void gate_scores_batch(const void *gate, GateDtype dtype, int rows, int hidden,
							  const float *queries, int nq, float *scores);

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
