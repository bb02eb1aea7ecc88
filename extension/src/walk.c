/*
 * walk.c: walk(prompt text, top int, model text)
 *           -> TABLE(layer int, feature int, activation float8, concept text)
 *
 * The features a prompt's query vector lights up across all layers: query =
 * the last token's embedding (or the average, per infer.walk_embed_mode) of
 * the prompt tokenized with the model's special tokens, x embed_scale;
 * activation = the gate score. The `top` strongest by |activation| over all
 * layers (ties: layer, then feature) come back ordered by layer, then
 * |activation| descending; concept = the feature's top down_meta token.
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "guc.h"
#include "knowledge.h"

#define WALK_TOP_MAX 10000

PG_FUNCTION_INFO_V1(infer_walk);

/* layer ascending, then |activation| descending, then feature */
static int
cmp_walk_rows(const void *a, const void *b)
{
	const GateHit *x = a, *y = b;

	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	if (fabsf(x->score) != fabsf(y->score))
		return fabsf(x->score) > fabsf(y->score) ? -1 : 1;
	return x->feature < y->feature ? -1 : x->feature > y->feature;
}

Datum
infer_walk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *prompt = required_text(fcinfo, 0, "prompt");
	int top = PG_ARGISNULL(1) ? 10 : PG_GETARG_INT32(1);
	InferModel *m;
	float *q;
	TopK best;
	int32 *tokens;
	DecodedToken *concepts;

	if (top < 1 || top > WALK_TOP_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("top must be between 1 and %d, not %d", WALK_TOP_MAX, top)));
	m = model_arg(fcinfo, 2);
	q = query_vector(m, prompt, "prompt", true,
					 infer_walk_embed_mode == WALK_EMBED_AVERAGE ? QUERY_AVERAGE : QUERY_LAST);

	topk_init(&best, top, RANK_ABS);
	scan_layers(m, q, &best, 0, false);
	qsort(best.hits, best.n, sizeof(GateHit), cmp_walk_rows);

	tokens = palloc(sizeof(int32) * (best.n > 0 ? best.n : 1));
	for (int i = 0; i < best.n; i++)
		tokens[i] = model_concept_token(m, best.hits[i].layer, best.hits[i].feature);
	concepts = decode_tokens(m, tokens, best.n);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < best.n; i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(best.hits[i].layer);
		values[1] = Int32GetDatum(best.hits[i].feature);
		values[2] = Float8GetDatum(best.hits[i].score);
		values[3] = CStringGetTextDatum(concepts[i].text);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
