/*
 * explore.c: the gate-KNN probes of pg_infer's exploration workflow.
 *
 *   describe_layers(entity text, model text, threshold float8)
 *     -> TABLE(layer int, feature int, target text, gate_score float8, also text)
 *   nearest_to(entity text, layer int, top int, model text)
 *     -> TABLE(feature int, token text, score float8, also text)
 *   infer_explain_walk(prompt text, top int, model text)
 *     -> TABLE(layer int, band text, feature int, activation float8, token text, also text)
 *
 * describe_layers is describe()'s gate-KNN step without its deduplication:
 * the entity's query vector (mean token embedding, no special tokens, x
 * embed_scale), per layer the infer.describe_top_k features by |score|,
 * the same threshold rule (argument, else infer.gate_threshold, 0 =
 * adaptive) and content-word filter on the target (the feature's top
 * down_meta token), every hit kept; best score first (then layer, feature).
 *
 * nearest_to probes one layer: the `top` features by |score| of the
 * entity's query vector, unfiltered, best first.
 *
 * infer_explain_walk is walk() with the peer's per-layer `top`: per layer
 * the `top` features by |activation| of the prompt's query vector (as
 * walk's: last token, or the average per infer.walk_embed_mode; special
 * tokens on), with each layer's band; ordered by layer, then |activation|.
 *
 * `also` (knowledge.c, feature_also): up to 3 more of the feature's
 * down_meta tokens with positive logit, letters only.
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "compute.h"
#include "guc.h"
#include "host.h"
#include "knowledge.h"
#include "stats.h"
#include "remote.h"

#define EXPLORE_TOP_MAX 10000

PG_FUNCTION_INFO_V1(infer_describe_layers);
PG_FUNCTION_INFO_V1(infer_nearest_to);
PG_FUNCTION_INFO_V1(infer_explain_walk);

/* best |score| first, then layer, feature */
static int
cmp_by_score(const void *a, const void *b)
{
	const GateHit *x = a, *y = b;

	if (fabsf(x->score) != fabsf(y->score))
		return fabsf(x->score) > fabsf(y->score) ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->feature < y->feature ? -1 : x->feature > y->feature;
}

/* layer, then |score| descending, then feature */
static int
cmp_by_layer(const void *a, const void *b)
{
	const GateHit *x = a, *y = b;

	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return cmp_by_score(a, b);
}

/* One gate pass of one query vector: per layer at most per_layer, k in all. */
static TopK
gate_pass(InferModel *m, const float *query, const bool *use_layer, int per_layer, int k)
{
	GatePass pass = {0};
	TopK best;

	pass.queries = query;
	pass.nq = 1;
	pass.use_layer = use_layer;
	pass.per_layer_k = per_layer;
	pass.k = k;
	pass.rank = RANK_ABS;
	compute_gate_topk(m, &pass, &best);
	return best;
}

static char *
entity_lower(text *entity)
{
	return host_normalize(VARDATA_ANY(entity), VARSIZE_ANY_EXHDR(entity));
}

Datum
infer_describe_layers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *entity = required_text(fcinfo, 0, "entity");
	bool has_threshold = !PG_ARGISNULL(2);
	double thr = has_threshold ? PG_GETARG_FLOAT8(2) : infer_gate_threshold;
	InferModel *m;
	char *self;
	TopK cand;
	DecodedToken *tokens;
	int k;
	int64 rows = 0;

	REMOTE_DISPATCH("describe_layers", 1);

	stats_begin("describe_layers");
	if (has_threshold && !(thr >= 0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("threshold must be >= 0, not %g", thr),
						errhint("0 means adaptive: 10%% of the entity's largest score.")));
	m = model_arg(fcinfo, 1);
	self = entity_lower(entity);
	cand = gate_pass(m, query_vector(m, entity, "entity", false, QUERY_AVERAGE), NULL,
					 infer_describe_top_k, infer_describe_top_k * m->layers);
	if (thr == 0)
	{
		float max = -INFINITY;

		for (int i = 0; i < cand.n; i++)
			max = Max(max, cand.hits[i].score);
		thr = 0.1 * max;
	}
	qsort(cand.hits, cand.n, sizeof(GateHit), cmp_by_score);
	tokens = feature_tokens(m, cand.hits, cand.n);
	k = m->down_top_k;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < cand.n; i++)
	{
		const DecodedToken *t = &tokens[(size_t) i * k];
		Datum values[5];
		bool nulls[5] = {0};

		if (cand.hits[i].score < thr || !is_content_target(t, self))
			continue;
		values[0] = Int32GetDatum(cand.hits[i].layer);
		values[1] = Int32GetDatum(cand.hits[i].feature);
		values[2] = CStringGetTextDatum(t->text);
		values[3] = Float8GetDatum(cand.hits[i].score);
		values[4] = CStringGetTextDatum(feature_also(m, &cand.hits[i], t, self));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		rows++;
	}
	stats_end(m, rows);
	PG_RETURN_VOID();
}

Datum
infer_nearest_to(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *entity = required_text(fcinfo, 0, "entity");
	InferModel *m;
	int layer;
	int top;
	bool *use_layer;
	char *self;
	TopK best;
	DecodedToken *tokens;

	REMOTE_DISPATCH("nearest_to", 3);

	stats_begin("nearest_to");
	top = top_arg(fcinfo, 2, EXPLORE_TOP_MAX);
	m = model_arg(fcinfo, 3);
	layer = layer_arg(fcinfo, 1, m);
	use_layer = palloc0(sizeof(bool) * m->layers);
	use_layer[layer] = true;
	self = entity_lower(entity);
	best = gate_pass(m, query_vector(m, entity, "entity", false, QUERY_AVERAGE), use_layer, 0,
					 Min(top, m->features[layer]));
	qsort(best.hits, best.n, sizeof(GateHit), cmp_by_score);
	tokens = feature_tokens(m, best.hits, best.n);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < best.n; i++)
	{
		const DecodedToken *t = &tokens[(size_t) i * m->down_top_k];
		Datum values[4];
		bool nulls[4] = {0};

		values[0] = Int32GetDatum(best.hits[i].feature);
		values[1] = CStringGetTextDatum(t->text);
		values[2] = Float8GetDatum(best.hits[i].score);
		values[3] = CStringGetTextDatum(feature_also(m, &best.hits[i], t, self));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, best.n);
	PG_RETURN_VOID();
}

Datum
infer_explain_walk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *prompt = required_text(fcinfo, 0, "prompt");
	int top;
	InferModel *m;
	TopK best;
	DecodedToken *tokens;
	float *query;

	REMOTE_DISPATCH("infer_explain_walk", 2);

	stats_begin("infer_explain_walk");
	top = top_arg(fcinfo, 1, EXPLORE_TOP_MAX);
	m = model_arg(fcinfo, 2);
	query = query_vector(m, prompt, "prompt", true,
						 infer_walk_embed_mode == WALK_EMBED_AVERAGE ? QUERY_AVERAGE : QUERY_LAST);
	best = gate_pass(m, query, NULL, top, top * m->layers);
	qsort(best.hits, best.n, sizeof(GateHit), cmp_by_layer);
	tokens = feature_tokens(m, best.hits, best.n);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < best.n; i++)
	{
		const DecodedToken *t = &tokens[(size_t) i * m->down_top_k];
		Datum values[6];
		bool nulls[6] = {0};

		values[0] = Int32GetDatum(best.hits[i].layer);
		values[1] = CStringGetTextDatum(band_name(m->band[best.hits[i].layer]));
		values[2] = Int32GetDatum(best.hits[i].feature);
		values[3] = Float8GetDatum(best.hits[i].score);
		values[4] = CStringGetTextDatum(t->text);
		values[5] = CStringGetTextDatum(feature_also(m, &best.hits[i], t, NULL));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, best.n);
	PG_RETURN_VOID();
}
