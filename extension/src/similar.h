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

/*
 * A text's signature (definition version 2): the distinct token ids of its
 * entity form mid-sentence (knowledge.h entity_tokens), in order of first
 * occurrence, at most SIGNATURE_SIZE. Each token stands for a unit vector:
 * for a model with inference weights, its knowledge state (the residual
 * stream after the first knowledge-band layer when the model reads the
 * token alone, centered on a vocabulary sample's mean); for a browse-level
 * model, its input embedding minus the vocabulary's mean embedding.
 */
#define SIGNATURE_SIZE 256
#define SIGNATURE_VERSION 2

/* A text's signature into out (SIGNATURE_SIZE room); returns its length. */
extern int feature_signature(InferModel *m, text *input, const char *what, int32 *out);

/* The signatures of n texts (one tokenizer round per text). */
extern void feature_signatures_batch(InferModel *m, text **inputs, int n,
									 int32 (*out)[SIGNATURE_SIZE], int *counts);

/* The layer whose states the token vectors are (-1: input embeddings, browse level). */
extern int signature_layer(const InferModel *m);

/* The unit vectors of n signature tokens: n x m->hidden, palloc'd. */
extern float *signature_vectors(InferModel *m, const int32 *ids, int n);

/*
 * The similarity of two signatures given as unit vectors: the mean over a's
 * tokens of the best cosine with one of b's, and the same from b to a,
 * averaged (symmetric, in [-1, 1], 1 for equal token sets; 0 when a side is empty).
 */
extern double signature_similarity_vectors(const float *a, int na, const float *b, int nb,
										   int hidden);

/* The dot product of two token vectors (every caller: the same bits). */
extern float signature_dot(const float *x, const float *y, int hidden);

/* The similarity from the dots of a's tokens (rows) with b's (columns), na x nb. */
extern double signature_similarity_dots(const float *dots, int na, int nb);

/* The same from token ids. */
extern double signature_similarity(InferModel *m, const int32 *a, int na, const int32 *b, int nb);

#endif /* PG_INFER_SIMILAR_H */
