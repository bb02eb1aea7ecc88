/*
 * walk.c: walk(prompt text, top int, model text, mode text, band text,
 *             per_layer boolean)
 *           -> TABLE(layer int, feature int, activation float8, concept text)
 *
 * mode NULL or 'embedding' (below), or 'forward': activation = the real FFN
 * activation act(gate) * up (the input of down_proj) at the prompt's last
 * position in each layer, from the forward pass (needs inference weights);
 * concept = the feature's write token (forward.c: the logit lens of the
 * down_proj column, signed like the activation), what the feature pushes
 * the prediction toward.
 *
 * band NULL: every layer; 'syntax', 'knowledge' or 'output': only the
 * layers of that band (infer_layer_bands()) compete for the `top` rows.
 *
 * per_layer false: `top` rows over all layers; true: `top` per layer (the
 * peer pg_infer's meaning of top).
 *
 * The features a prompt's query vector lights up across all layers: query =
 * the last token's embedding (or the average, per infer.walk_embed_mode) of
 * the prompt tokenized with the model's special tokens, x embed_scale;
 * activation = the gate score. The `top` strongest by |activation| over all
 * layers (ties: layer, then feature) come back ordered by layer, then
 * |activation| descending; concept = the feature's top down_meta token
 * (the vindex's W_embed @ W_down readout).
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "guc.h"
#include "infer.h"
#include "compute.h"
#include "knowledge.h"
#include "stats.h"
#include "remote.h"

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

/* Whether the mode argument asks for the forward pass. */
static bool
forward_mode(FunctionCallInfo fcinfo, int i)
{
	char *mode;

	if (i >= PG_NARGS() || PG_ARGISNULL(i))
		return false;
	mode = text_to_cstring(PG_GETARG_TEXT_PP(i));
	if (strcmp(mode, "embedding") == 0)
		return false;
	if (strcmp(mode, "forward") == 0)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid walk mode \"%s\"", mode),
			 errhint("Use 'embedding' (the default) or 'forward'.")));
	return false;
}

/* The layers of the band argument (NULL: every layer). */
static bool *
band_layers(FunctionCallInfo fcinfo, int i, InferModel *m)
{
	char *band;
	bool *use;

	if (i >= PG_NARGS() || PG_ARGISNULL(i))
		return NULL;
	band = text_to_cstring(PG_GETARG_TEXT_PP(i));
	if (strcmp(band, "syntax") != 0 && strcmp(band, "knowledge") != 0 &&
		strcmp(band, "output") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid band \"%s\"", band),
				 errhint("Use 'syntax', 'knowledge', 'output' or NULL for every layer.")));
	use = palloc(sizeof(bool) * m->layers);
	for (int l = 0; l < m->layers; l++)
		use[l] = strcmp(band_name(m->band[l]), band) == 0;
	return use;
}

/* The strongest FFN activations of the prompt's last position (at most per_layer a layer). */
static void
forward_walk(InferModel *m, text *prompt, const bool *use_layer, int per_layer, TopK *best)
{
	ForwardRun *run = infer_prompt(m, prompt, 0, true, false, NULL, NULL);
	int I = run->fm->intermediate;

	for (int l = 0; l < m->layers; l++)
	{
		TopK one;

		if (use_layer && !use_layer[l])
			continue;
		if (per_layer <= 0)
		{
			topk_push_layer(best, l, run->capture.act + (size_t) l * I, I, false);
			continue;
		}
		topk_init(&one, per_layer, RANK_ABS);
		topk_push_layer(&one, l, run->capture.act + (size_t) l * I, I, false);
		for (int i = 0; i < one.n; i++)
			topk_push(best, l, one.hits[i].feature, one.hits[i].score);
		pfree(one.hits);
	}
}

Datum
infer_walk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *prompt = required_text(fcinfo, 0, "prompt");
	int top;
	InferModel *m;
	bool forward;
	bool *use_layer;
	TopK best;
	int32 *tokens;
	DecodedToken *concepts;
	bool per_layer = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	int k;

	REMOTE_DISPATCH("walk", 2);

	stats_begin("walk");
	/* as documented: a NULL top is an error, not the default (which SQL's DEFAULT gives) */
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("top must not be NULL")));
	top = PG_GETARG_INT32(1);
	if (top < 1 || top > WALK_TOP_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("top must be between 1 and %d, not %d", WALK_TOP_MAX, top)));
	forward = forward_mode(fcinfo, 3);
	m = model_arg(fcinfo, 2);
	use_layer = band_layers(fcinfo, 4, m);
	k = per_layer ? top * m->layers : top;
	if (forward)
	{
		topk_init(&best, k, RANK_ABS);
		forward_walk(m, prompt, use_layer, per_layer ? top : 0, &best);
	}
	else
	{
		GatePass pass = {0};

		pass.queries =
			query_vector(m, prompt, "prompt", true,
						 infer_walk_embed_mode == WALK_EMBED_AVERAGE ? QUERY_AVERAGE : QUERY_LAST);
		pass.nq = 1;
		pass.use_layer = use_layer;
		pass.per_layer_k = per_layer ? top : 0;
		pass.k = k;
		pass.rank = RANK_ABS;
		compute_gate_topk(m, &pass, &best);
	}
	qsort(best.hits, best.n, sizeof(GateHit), cmp_walk_rows);

	tokens = palloc(sizeof(int32) * (best.n > 0 ? best.n : 1));
	if (forward)
		forward_feature_tokens(m, best.hits, best.n, tokens);
	else
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
	stats_end(m, best.n);
	PG_RETURN_VOID();
}
