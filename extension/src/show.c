/*
 * show.c: browsing what a model's layers and features encode.
 *
 *   infer_show_layers(model text) -> TABLE(layer int, band text, num_features int)
 *   infer_show_features(layer int, filter text, min_score float8, top int, model text)
 *     -> TABLE(feature int, token text, score float8, also text, label text)
 *   infer_show_relations(model text)
 *     -> TABLE(relation text, count int, max_score float8, layers text, examples text)
 *   infer_diff(model_a text, model_b text, layer int, top int)
 *     -> TABLE(layer int, feature int, token_a text, token_b text, score_a float8,
 *              score_b float8, status text)
 *
 * A feature's token is its top down_meta token (what W_embed @ W_down[:, f]
 * writes most) and its score that token's logit (the vindex's c_score).
 *
 * infer_show_features: the features of one layer whose score >= min_score
 * and whose token contains `filter` (case-insensitive), highest score first
 * (then feature), at most `top`; label = its relation labels
 * (infer.feature_labels, e.g. 'capital', '-capital' for a negative sign).
 *
 * infer_show_relations: the peer's "relation discovery": over the layers of
 * the knowledge band, features with score >= 0.2 whose token is a content
 * word, grouped by lower-cased token; the 30 most frequent (then highest
 * score, token), with their layers and up to 3 other tokens of theirs.
 *
 * infer_diff: feature by feature, where two models' features differ: the
 * token (as text, so different vocabularies compare) or the score by more
 * than 0.01 ('modified'); features only model_a has ('removed') or only
 * model_b ('added'). Largest |score_b - score_a| first (a missing side
 * scores 0), then layer, feature; at most `top`.
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "host.h"
#include "knowledge.h"
#include "predict.h"
#include "stats.h"
#include "remote.h"

#define SHOW_TOP_MAX 1000000
#define RELATIONS_SHOWN 30
#define RELATION_MIN_SCORE 0.2f

PG_FUNCTION_INFO_V1(infer_show_layers);
PG_FUNCTION_INFO_V1(infer_show_features);
PG_FUNCTION_INFO_V1(infer_show_relations);
PG_FUNCTION_INFO_V1(infer_diff_layers);

Datum
infer_show_layers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InferModel *m;

	REMOTE_DISPATCH("infer_show_layers", 0);

	stats_begin("infer_show_layers");
	m = model_arg(fcinfo, 0);
	InitMaterializedSRF(fcinfo, 0);
	for (int l = 0; l < m->layers; l++)
	{
		Datum values[3] = {Int32GetDatum(l), CStringGetTextDatum(band_name(m->band[l])),
						   Int32GetDatum(m->features[l])};
		bool nulls[3] = {0};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, m->layers);
	PG_RETURN_VOID();
}

/* Every feature of a layer as a hit scored by its c_score. */
static GateHit *
layer_features(const InferModel *m, int layer)
{
	GateHit *hits = palloc(sizeof(GateHit) * (m->features[layer] + 1));

	for (int f = 0; f < m->features[layer]; f++)
	{
		hits[f].layer = layer;
		hits[f].feature = f;
		hits[f].score = model_concept_score(m, layer, f);
	}
	return hits;
}

/* The top down_meta token of each hit, decoded in one host call. */
static DecodedToken *
concept_tokens(InferModel *m, const GateHit *hits, int n)
{
	int32 *ids = palloc(sizeof(int32) * (n + 1));

	for (int i = 0; i < n; i++)
		ids[i] = model_concept_token(m, hits[i].layer, hits[i].feature);
	return decode_tokens(m, ids, n);
}

/* score descending, then layer, feature */
static int
cmp_concept(const void *a, const void *b)
{
	const GateHit *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->feature < y->feature ? -1 : x->feature > y->feature;
}

Datum
infer_show_features(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char *filter = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	double min_score = PG_ARGISNULL(2) ? -INFINITY : PG_GETARG_FLOAT8(2);
	int top;
	InferModel *m;
	int layer;
	GateHit *hits;
	DecodedToken *tokens;
	GateHit *kept;
	int nkept = 0;
	DecodedToken *kept_tokens;
	FeatureLabels *labels;

	REMOTE_DISPATCH("infer_show_features", 4);

	stats_begin("infer_show_features");
	top = top_arg(fcinfo, 3, SHOW_TOP_MAX);
	m = model_arg(fcinfo, 4);
	layer = layer_arg(fcinfo, 0, m);
	if (filter)
		filter = host_normalize(filter, strlen(filter));
	hits = layer_features(m, layer);
	tokens = concept_tokens(m, hits, m->features[layer]);
	kept = palloc(sizeof(GateHit) * (m->features[layer] + 1));
	for (int f = 0; f < m->features[layer]; f++)
		if (hits[f].score >= min_score && (filter == NULL || strstr(tokens[f].lower, filter)))
			kept[nkept++] = hits[f];
	qsort(kept, nkept, sizeof(GateHit), cmp_concept);
	nkept = Min(nkept, top);
	kept_tokens = feature_tokens(m, kept, nkept);
	labels = feature_labels_load(m);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < nkept; i++)
	{
		const DecodedToken *t = &kept_tokens[(size_t) i * m->down_top_k];
		char *label = feature_label_list(labels, layer, kept[i].feature);
		Datum values[5];
		bool nulls[5] = {0};

		values[0] = Int32GetDatum(kept[i].feature);
		values[1] = CStringGetTextDatum(t->text);
		values[2] = Float8GetDatum(kept[i].score);
		values[3] = CStringGetTextDatum(feature_also(m, &kept[i], t, NULL));
		values[4] = label ? CStringGetTextDatum(label) : (Datum) 0;
		nulls[4] = label == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, nkept);
	PG_RETURN_VOID();
}

typedef struct RelationAgg
{
	const char *token; /* lower-cased */
	int count;
	float max_score;
	StringInfoData layers;
	int last_layer;
	StringInfoData examples;
	int nexamples;
} RelationAgg;

/* count descending, then max_score descending, then token */
static int
cmp_relations(const void *a, const void *b)
{
	const RelationAgg *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->max_score != y->max_score)
		return x->max_score > y->max_score ? -1 : 1;
	return strcmp(x->token, y->token);
}

/* Adds up to 3 examples in all: the feature's 2nd and 3rd tokens, positive, letters only. */
static void
add_examples(RelationAgg *r, const InferModel *m, const GateHit *hit, const DecodedToken *t)
{
	const float *logits = m->down_logits[hit->layer] + (size_t) hit->feature * m->down_top_k;

	for (int j = 1; j < Min(3, m->down_top_k) && r->nexamples < 3; j++)
	{
		if (logits[j] <= 0 || !t[j].letters_only || strcmp(t[j].lower, r->token) == 0)
			continue;
		if (strstr(r->examples.data, t[j].text) != NULL)
			continue;
		appendStringInfo(&r->examples, "%s%s", r->nexamples++ ? ", " : "", t[j].text);
	}
}

Datum
infer_show_relations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InferModel *m;
	RelationAgg *aggs = NULL;
	int naggs = 0;
	int cap = 0;
	int shown;

	REMOTE_DISPATCH("infer_show_relations", 0);

	stats_begin("infer_show_relations");
	m = model_arg(fcinfo, 0);
	for (int l = 0; l < m->layers; l++)
	{
		GateHit *hits;
		DecodedToken *tokens;
		int n = 0;

		if (m->band[l] != BAND_KNOWLEDGE)
			continue;
		hits = layer_features(m, l);
		for (int f = 0; f < m->features[l]; f++)
			if (hits[f].score >= RELATION_MIN_SCORE)
				hits[n++] = hits[f];
		tokens = feature_tokens(m, hits, n);
		for (int i = 0; i < n; i++)
		{
			const DecodedToken *t = &tokens[(size_t) i * m->down_top_k];
			RelationAgg *r = NULL;

			if (!is_content_target(t, "") || strlen(t->lower) < 3)
				continue;
			for (int a = 0; a < naggs && r == NULL; a++)
				if (strcmp(aggs[a].token, t->lower) == 0)
					r = &aggs[a];
			if (r == NULL)
			{
				if (naggs == cap)
				{
					cap = cap ? cap * 2 : 64;
					aggs = aggs ? repalloc(aggs, sizeof(RelationAgg) * cap)
								: palloc(sizeof(RelationAgg) * cap);
				}
				r = &aggs[naggs++];
				memset(r, 0, sizeof(*r));
				r->token = t->lower;
				r->last_layer = -1;
				initStringInfo(&r->layers);
				initStringInfo(&r->examples);
			}
			r->count++;
			r->max_score = Max(r->max_score, hits[i].score);
			if (r->last_layer != l)
				appendStringInfo(&r->layers, "%s%d", r->last_layer >= 0 ? "," : "", l);
			r->last_layer = l;
			add_examples(r, m, &hits[i], t);
		}
	}
	if (naggs > 1)
		qsort(aggs, naggs, sizeof(RelationAgg), cmp_relations);
	shown = Min(naggs, RELATIONS_SHOWN);

	InitMaterializedSRF(fcinfo, 0);
	for (int a = 0; a < shown; a++)
	{
		Datum values[5] = {CStringGetTextDatum(aggs[a].token), Int32GetDatum(aggs[a].count),
						   Float8GetDatum(aggs[a].max_score),
						   CStringGetTextDatum(aggs[a].layers.data),
						   CStringGetTextDatum(aggs[a].examples.data)};
		bool nulls[5] = {0};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, shown);
	PG_RETURN_VOID();
}

typedef struct DiffRow
{
	int layer;
	int feature;
	const char *token_a; /* NULL: the feature is only in model_b */
	const char *token_b; /* NULL: only in model_a */
	float score_a;
	float score_b;
} DiffRow;

/* |score_b - score_a| descending, then layer, feature */
static int
cmp_diff(const void *a, const void *b)
{
	const DiffRow *x = a, *y = b;
	float dx = fabsf(x->score_b - x->score_a), dy = fabsf(y->score_b - y->score_a);

	if (dx != dy)
		return dx > dy ? -1 : 1;
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->feature < y->feature ? -1 : x->feature > y->feature;
}

static const char *
diff_status(const DiffRow *r)
{
	return r->token_a == NULL ? "added" : r->token_b == NULL ? "removed" : "modified";
}

/* The differing features of one layer appended to rows[*n]. */
static void
diff_layer(InferModel *a, InferModel *b, int layer, DiffRow **rows, int *n, int *cap)
{
	int fa = layer < a->layers ? a->features[layer] : 0;
	int fb = layer < b->layers ? b->features[layer] : 0;
	DecodedToken *ta = fa ? concept_tokens(a, layer_features(a, layer), fa) : NULL;
	DecodedToken *tb = fb ? concept_tokens(b, layer_features(b, layer), fb) : NULL;

	for (int f = 0; f < Max(fa, fb); f++)
	{
		DiffRow r = {layer,
					 f,
					 f < fa ? ta[f].text : NULL,
					 f < fb ? tb[f].text : NULL,
					 f < fa ? model_concept_score(a, layer, f) : 0,
					 f < fb ? model_concept_score(b, layer, f) : 0};

		if (r.token_a && r.token_b && strcmp(r.token_a, r.token_b) == 0 &&
			fabsf(r.score_a - r.score_b) <= 0.01f)
			continue;
		if (*n == *cap)
		{
			*cap = *cap ? *cap * 2 : 256;
			*rows =
				*rows ? repalloc(*rows, sizeof(DiffRow) * *cap) : palloc(sizeof(DiffRow) * *cap);
		}
		(*rows)[(*n)++] = r;
	}
}

Datum
infer_diff_layers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InferModel *a;
	InferModel *b;
	int top;
	int first = 0;
	int last;
	DiffRow *rows = NULL;
	int n = 0;
	int cap = 0;

	stats_begin("infer_diff");
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("model_a and model_b must not be NULL")));
	top = top_arg(fcinfo, 3, SHOW_TOP_MAX);
	a = model_get(PG_GETARG_TEXT_PP(0));
	b = model_get(PG_GETARG_TEXT_PP(1));
	last = Max(a->layers, b->layers) - 1;
	if (!PG_ARGISNULL(2))
	{
		first = last = PG_GETARG_INT32(2);
		if (first < 0 || first >= Max(a->layers, b->layers))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("layer %d is out of range: the models have layers 0 to %d",
								   first, Max(a->layers, b->layers) - 1)));
	}
	for (int l = first; l <= last; l++)
		diff_layer(a, b, l, &rows, &n, &cap);
	if (n > 1)
		qsort(rows, n, sizeof(DiffRow), cmp_diff);
	n = Min(n, top);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		Datum values[7];
		bool nulls[7] = {0};

		values[0] = Int32GetDatum(rows[i].layer);
		values[1] = Int32GetDatum(rows[i].feature);
		nulls[2] = rows[i].token_a == NULL;
		values[2] = nulls[2] ? (Datum) 0 : CStringGetTextDatum(rows[i].token_a);
		nulls[3] = rows[i].token_b == NULL;
		values[3] = nulls[3] ? (Datum) 0 : CStringGetTextDatum(rows[i].token_b);
		values[4] = Float8GetDatum(rows[i].score_a);
		values[5] = Float8GetDatum(rows[i].score_b);
		values[6] = CStringGetTextDatum(diff_status(&rows[i]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(a, n);
	PG_RETURN_VOID();
}
