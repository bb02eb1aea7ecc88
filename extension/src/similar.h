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
 * A text's signature (definition version 3, docs/index-am.md): tokens, each
 * with a confidence in (0, 1]:
 *   - the distinct tokens of its entity form mid-sentence (knowledge.h
 *     entity_tokens), confidence 1;
 *   - for a model with inference weights, the tokens of the model's greedy
 *     continuation of the entity form (what the model attaches to the text:
 *     'Paris' -> ' is the capital of France.'), each with the probability
 *     the model gave it, up to SIGNATURE_CONTINUATION tokens, stopping at
 *     EOS or a line break; texts of more than SIGNATURE_PROMPT_MAX tokens
 *     are not continued.
 * At most SIGNATURE_SIZE tokens, in order of first occurrence (a token seen
 * twice keeps its highest confidence). Each token also stands for a unit
 * vector (signature_vectors: its knowledge state, or for a browse-level
 * model its centered input embedding) and has a specificity weight
 * (signature_weights: (-ln p_prior)^SIGNATURE_WEIGHT_POWER, p_prior the
 * model's mean next-token probability of it after a vocabulary sample; 1 for
 * browse-level models) that, times the token's confidence, weighs it in the
 * late interaction (signature_similarity_dots).
 */
#define SIGNATURE_SIZE 256
#define SIGNATURE_VERSION 3
#define SIGNATURE_CONTINUATION 8
#define SIGNATURE_PROMPT_MAX 64
#define SIGNATURE_WEIGHT_POWER 2
/* the smallest prior a weight is computed from (a bound on one token's weight) */
#define SIGNATURE_PRIOR_FLOOR 1e-12

typedef struct Signature
{
	int n;
	int32 ids[SIGNATURE_SIZE];
	float conf[SIGNATURE_SIZE];
} Signature;

/* A text's signature into *out; returns its length. */
extern int feature_signature(InferModel *m, text *input, const char *what, Signature *out);

/* The signatures of n texts. */
extern void feature_signatures_batch(InferModel *m, text **inputs, int n, Signature *out);

/* The layer whose states the token vectors are (-1: input embeddings, browse level). */
extern int signature_layer(const InferModel *m);

/* The unit vectors of n signature tokens: n x m->hidden, palloc'd. */
extern float *signature_vectors(InferModel *m, const int32 *ids, int n);

/* A token's specificity weight (1 for browse-level models). */
extern float signature_token_weight(InferModel *m, int32 id);

/* The weights of a signature's tokens: confidence x specificity weight, palloc'd. */
extern float *signature_weights(InferModel *m, const Signature *sig);

/*
 * similar_to's weights (not <~>'s, not the column index's): each token's step
 * confidence, its confidence over that of the token before it in the
 * signature (the first token's over 1; the text's own tokens: 1), so a
 * continuation token weighs the probability of its own step rather than of
 * the whole path to it, x specificity weight; palloc'd.
 */
extern float *signature_step_weights(InferModel *m, const Signature *sig);

/* One token's weight in a signature: every caller multiplies the same way. */
static inline float
signature_weight(float conf, float token_weight)
{
	return conf * token_weight;
}

/*
 * The similarity of two signatures given as unit vectors and weights: the
 * weighted mean over a's tokens of the best cosine with one of b's, and the
 * same from b to a, averaged (symmetric, in [-1, 1], 1 for equal token sets;
 * 0 when a side is empty or weighs nothing).
 */
extern double signature_similarity_vectors(const float *a, const float *wa, int na, const float *b,
										   const float *wb, int nb, int hidden);

/* The dot product of two token vectors (every caller: the same bits). */
extern float signature_dot(const float *x, const float *y, int hidden);

/* The same from the dots of a's tokens (rows) with b's (columns), na x nb, and the weights. */
extern double signature_similarity_dots(const float *dots, const float *wa, int na, const float *wb,
										int nb);

/* The same from two signatures. */
extern double signature_similarity(InferModel *m, const Signature *a, const Signature *b);

#endif /* PG_INFER_SIMILAR_H */
