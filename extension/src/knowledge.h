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
 * The entity form of a text (knowledge.c): as written when it has both
 * ASCII cases; all lower or all upper case, re-cased word by word to the
 * casing (lower, title, as written) the tokenizer splits into the fewest
 * tokens mid-sentence, so 'france', 'FRANCE' and 'France' are one entity.
 * palloc'd, NUL-terminated. Errors (22023, 54000) for empty or over-long text.
 */
extern char *entity_text(InferModel *m, text *input, const char *what);

/* entity_text and entity_tokens in one: the form, and its tokens into *ids, *n. */
extern char *entity_form(InferModel *m, text *input, const char *what, int32 **ids, int *n);

/*
 * The token ids of a text as it occurs mid-sentence: its entity form after a
 * space when the tokenizer marks word starts with one (" Paris" is one token
 * where "Paris" is two), no special tokens. Errors (22023) for none.
 */
extern int32 *entity_tokens(InferModel *m, text *input, const char *what, int *n);

/*
 * The query vector of a text: its tokens' embeddings (last or averaged) x
 * embed_scale. `what` names the argument in errors. palloc'd, m->hidden long.
 */
/* With special_tokens false the text is an entity: its tokens are entity_tokens(). */
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

/*
 * The down_meta tokens of n features, down_top_k per feature in logit order,
 * decoded in one host call: tokens[i * m->down_top_k + j].
 */
extern DecodedToken *feature_tokens(InferModel *m, const GateHit *hits, int n);

/*
 * A feature's `also` column: up to 3 of its other down_meta tokens with a
 * positive logit that are letters only and differ (case-insensitively) from
 * its top token and from `entity_lower` (NULL: none), joined with ", ".
 * `tokens` are the feature's down_top_k decoded tokens (feature_tokens).
 */
extern char *feature_also(InferModel *m, const GateHit *hit, const DecodedToken *tokens,
						  const char *entity_lower);

/* A feature's c_score: the logit of its top down_meta token. */
static inline float
model_concept_score(const InferModel *m, int layer, int feature)
{
	return m->down_logits[layer][(size_t) feature * m->down_top_k];
}

/*
 * Whether describe() keeps a target: a content word (letters only, not a
 * stopword) that is not the entity itself.
 */
extern bool is_content_target(const DecodedToken *t, const char *entity_lower);

/* A layer argument: NULL, or outside the model's layers, is an error naming the range. */
extern int layer_arg(FunctionCallInfo fcinfo, int i, const InferModel *m);

/* A `top` argument: NULL, or outside 1..max, is an error. */
extern int top_arg(FunctionCallInfo fcinfo, int i, int max);

/* Whether a lower-case word is an English stopword (describe() skips them). */
extern bool is_stopword(const char *lower);

/* A required text argument: NULL is an error naming it. */
extern text *required_text(FunctionCallInfo fcinfo, int i, const char *what);

/* The optional model argument: NULL means infer.default_model. */
extern InferModel *model_arg(FunctionCallInfo fcinfo, int i);

#endif /* PG_INFER_KNOWLEDGE_H */
