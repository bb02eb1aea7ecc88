/*
 * knowledge.h: what walk(), describe() and similar_to() share
 * (knowledge.c): query vectors from text, gate scans over all layers, and
 * decoded feature concepts.
 */
#ifndef PG_INFER_KNOWLEDGE_H
#define PG_INFER_KNOWLEDGE_H

#include "postgres.h"

#include "gate_knn.h"
#include "model.h"

/* Longest text a knowledge query accepts, in bytes. */
#define QUERY_TEXT_MAX 65536

typedef enum QueryMode
{
	QUERY_LAST,   /* the last token's embedding */
	QUERY_AVERAGE /* the mean of the tokens' embeddings */
} QueryMode;

/*
 * The query vector of a text: its tokens' embeddings (last or averaged) x
 * embed_scale. `what` names the argument in errors. palloc'd, m->hidden long.
 */
extern float *query_vector(InferModel *m, text *input, const char *what, bool special_tokens,
						   QueryMode mode);

/* A token decoded on its own: trimmed, lower-cased, and as decoded (raw). */
typedef struct DecodedToken
{
	char *text;
	char *lower;
	char *raw; /* untrimmed, e.g. " Paris": what infer() reports */
	bool letters_only;
} DecodedToken;

extern DecodedToken *decode_tokens(InferModel *m, const int32 *ids, int n);

/* Whether a lower-case word is an English stopword (describe() skips them). */
extern bool is_stopword(const char *lower);

/* A required text argument: NULL is an error naming it. */
extern text *required_text(FunctionCallInfo fcinfo, int i, const char *what);

/* The optional model argument: NULL means infer.default_model. */
extern InferModel *model_arg(FunctionCallInfo fcinfo, int i);

#endif /* PG_INFER_KNOWLEDGE_H */
