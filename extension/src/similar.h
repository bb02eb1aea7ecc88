/*
 * similar.h: feature signatures and the similarity behind similar_to(),
 * infer_distance() and the <~> operator (similar.c).
 */
#ifndef PG_INFER_SIMILAR_H
#define PG_INFER_SIMILAR_H

#include "postgres.h"

#include "gate_knn.h"
#include "model.h"
#include "knowledge.h"

/* Whether a text can have a signature at all: not empty, not past QUERY_TEXT_MAX. */
static inline bool
text_has_signature(const text *t)
{
	int len = VARSIZE_ANY_EXHDR(t);

	return len > 0 && len <= QUERY_TEXT_MAX;
}

/* Features kept in a text's signature. */
#define SIGNATURE_SIZE 50

/*
 * A text's top SIGNATURE_SIZE features with positive score over all layers,
 * best first, into out; returns how many (fewer when fewer are positive).
 */
extern int feature_signature(InferModel *m, text *input, const char *what, GateHit *out);

/*
 * The signatures of n texts at once: the batched gate kernel reads each
 * layer's gate matrix once per batch of texts instead of once per text.
 */
extern void feature_signatures_batch(InferModel *m, text **inputs, int n,
									 GateHit (*out)[SIGNATURE_SIZE], int *counts);

/* The largest min(score_a, score_b) over shared features; 0 when none. */
extern double signature_similarity(const GateHit *a, int na, const GateHit *b, int nb);

#endif /* PG_INFER_SIMILAR_H */
