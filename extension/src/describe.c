/*
 * describe.c: describe(entity text, model text, threshold float8)
 *               -> TABLE(relation text, target text, confidence float8, layer int)
 *             implies(subject text, object text, model text) -> bool
 *
 * describe: query = mean of the entity's token embeddings (no special
 * tokens) x embed_scale; per layer the top infer.describe_top_k features by
 * |score|; keep score >= threshold (the argument, else infer.gate_threshold;
 * 0 = adaptive: 10% of the entity's largest candidate score); target = the
 * feature's top down_meta token, kept only if it is a content word (letters
 * only, not the entity itself, not a stopword); targets deduplicated
 * case-insensitively keeping the strongest; confidence = gate score;
 * relation = the feature's label (infer.feature_labels) or else the layer's
 * band; ordered by confidence descending (then layer, target, feature).
 *
 * For a model with inference weights, rows predicted by the model come
 * first: for each relation with a template (infer_add_relation,
 * infer_label_relations), the greedy continuation of the filled template
 * (predict.c), ordered by relation. The labelled feature edges follow:
 * in each template's forward pass, of the infer.describe_top_k strongest
 * FFN activations per layer at the prompt's last position, the features
 * labelled with that template's relation for the sign they fire with
 * (infer_label_relations); target = the feature's write token
 * (forward.c), confidence = |activation|; the same filters and
 * deduplication (per relation and target) as the gate edges; ordered by
 * confidence. The gate-KNN edges above come last. implies() is true when
 * the object is among the predicted objects; without templates or
 * inference weights, when it is among the feature edges' targets.
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "forward.h"
#include "guc.h"
#include "host.h"
#include "compute.h"
#include "knowledge.h"
#include "predict.h"
#include "stats.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_describe);
PG_FUNCTION_INFO_V1(infer_implies);
PG_FUNCTION_INFO_V1(infer_layer_bands);

typedef struct Edge
{
	GateHit hit;
	DecodedToken target;
	const char *relation; /* a labelled forward edge's; NULL: label or band at output */
} Edge;

/* confidence descending, then layer, target, feature */
static int
cmp_edges(const void *a, const void *b)
{
	const Edge *x = a, *y = b;
	int c;

	if (x->hit.score != y->hit.score)
		return x->hit.score > y->hit.score ? -1 : 1;
	if (x->hit.layer != y->hit.layer)
		return x->hit.layer < y->hit.layer ? -1 : 1;
	c = strcmp(x->target.text, y->target.text);
	if (c != 0)
		return c;
	return x->hit.feature < y->hit.feature ? -1 : x->hit.feature > y->hit.feature;
}

/*
 * Adds e to edges[*n] unless describe() leaves it out: a target that is not
 * a content word (letters only, not the entity, not a stopword), or a
 * weaker edge of the same relation and case-insensitive target.
 */
static void
add_edge(Edge *edges, int *n, Edge e, const char *self)
{
	if (!e.target.letters_only || strcmp(e.target.lower, self) == 0 || is_stopword(e.target.lower))
		return;
	for (int j = 0; j < *n; j++)
	{
		if (strcmp(edges[j].target.lower, e.target.lower) != 0 ||
			(edges[j].relation == NULL) != (e.relation == NULL) ||
			(e.relation && strcmp(edges[j].relation, e.relation) != 0))
			continue;
		if (cmp_edges(&e, &edges[j]) < 0)
			edges[j] = e;
		return;
	}
	edges[(*n)++] = e;
}

/*
 * The predictions at or above infer.min_confidence, in place; returns how
 * many. An answer below the floor is one the model does not know well
 * enough to state (docs/sql-reference.md, describe()).
 */
static int
confident_predictions(Prediction *p, int n)
{
	int kept = 0;

	for (int i = 0; i < n; i++)
		if (p[i].confidence >= infer_min_confidence)
			p[kept++] = p[i];
	return kept;
}

/* The gate-KNN edges of an entity; *n is set. */
static Edge *
describe_edges(InferModel *m, text *entity, bool has_threshold, double threshold, int *n)
{
	GatePass pass = {0};
	char *self = host_normalize(VARDATA_ANY(entity), VARSIZE_ANY_EXHDR(entity));
	TopK cand;
	int32 *tokens;
	DecodedToken *targets;
	Edge *edges;
	int nedges = 0;
	double thr = has_threshold ? threshold : infer_gate_threshold;

	pass.queries = query_vector(m, entity, "entity", false, QUERY_AVERAGE);
	pass.nq = 1;
	pass.per_layer_k = infer_describe_top_k;
	pass.k = infer_describe_top_k * m->layers;
	pass.rank = RANK_ABS;
	compute_gate_topk(m, &pass, &cand);

	if (thr == 0)
	{
		float max = -INFINITY;

		for (int i = 0; i < cand.n; i++)
			max = Max(max, cand.hits[i].score);
		thr = 0.1 * max;
	}

	tokens = palloc(sizeof(int32) * (cand.n > 0 ? cand.n : 1));
	for (int i = 0; i < cand.n; i++)
		tokens[i] = model_concept_token(m, cand.hits[i].layer, cand.hits[i].feature);
	targets = decode_tokens(m, tokens, cand.n);

	edges = palloc(sizeof(Edge) * (cand.n > 0 ? cand.n : 1));
	for (int i = 0; i < cand.n; i++)
		if (cand.hits[i].score >= thr)
			add_edge(edges, &nedges, (Edge) {cand.hits[i], targets[i], NULL}, self);
	qsort(edges, nedges, sizeof(Edge), cmp_edges);
	*n = nedges;
	return edges;
}

/*
 * The labelled features active in the template passes of the predictions:
 * per prediction, per layer the infer.describe_top_k strongest activations,
 * kept when labelled with the prediction's relation; *n is set.
 */
static Edge *
labelled_edges(InferModel *m, text *entity, const Prediction *predictions, int npredicted,
			   const FeatureLabels *labels, int *n)
{
	int I = npredicted > 0 ? m->fwd->intermediate : 0;
	int cap = npredicted * m->layers * infer_describe_top_k;
	GateHit *hits = palloc(sizeof(GateHit) * (cap > 0 ? cap : 1));
	const char **relation = palloc(sizeof(char *) * (cap > 0 ? cap : 1));
	int nhits = 0;
	int32 *tokens;
	DecodedToken *targets;
	Edge *edges;
	char *self = host_normalize(VARDATA_ANY(entity), VARSIZE_ANY_EXHDR(entity));

	for (int p = 0; p < npredicted; p++)
		for (int l = 0; l < m->layers; l++)
		{
			TopK layer;

			topk_init(&layer, infer_describe_top_k, RANK_ABS);
			topk_push_layer(&layer, l, predictions[p].act + (size_t) l * I, I, false);
			for (int i = 0; i < layer.n; i++)
			{
				if (!feature_has_label(labels, l, layer.hits[i].feature, predictions[p].relation,
									   layer.hits[i].score))
					continue;
				relation[nhits] = predictions[p].relation;
				hits[nhits++] = layer.hits[i];
			}
			pfree(layer.hits);
		}

	*n = 0;
	if (nhits == 0)
		return NULL;
	tokens = palloc(sizeof(int32) * nhits);
	forward_feature_tokens(m, hits, nhits, tokens);
	targets = decode_tokens(m, tokens, nhits);
	edges = palloc(sizeof(Edge) * nhits);
	for (int i = 0; i < nhits; i++)
	{
		Edge e = {hits[i], targets[i], relation[i]};

		e.hit.score = fabsf(e.hit.score);
		add_edge(edges, n, e, self);
	}
	qsort(edges, *n, sizeof(Edge), cmp_edges);
	return edges;
}

/* Rows of edges: relation = its own, else the feature's label, else its layer's band. */
static void
put_edges(ReturnSetInfo *rsinfo, InferModel *m, const FeatureLabels *labels, const Edge *edges,
		  int n)
{
	for (int i = 0; i < n; i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};
		const char *relation = edges[i].relation;

		if (relation == NULL)
			relation = feature_label(labels, edges[i].hit.layer, edges[i].hit.feature);
		if (relation == NULL)
			relation = band_name(m->band[edges[i].hit.layer]);
		values[0] = CStringGetTextDatum(relation);
		values[1] = CStringGetTextDatum(edges[i].target.text);
		values[2] = Float8GetDatum(edges[i].hit.score);
		values[3] = Int32GetDatum(edges[i].hit.layer);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

Datum
infer_describe(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *entity = required_text(fcinfo, 0, "entity");
	bool has_threshold = !PG_ARGISNULL(2);
	double threshold = has_threshold ? PG_GETARG_FLOAT8(2) : 0;
	InferModel *m;
	Edge *edges;
	int n;
	Edge *labelled;
	int nlabelled;
	Prediction *predictions;
	int npredicted;
	FeatureLabels *labels;

	REMOTE_DISPATCH("describe", 1);

	stats_begin("describe");
	if (has_threshold && !(threshold >= 0))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("threshold must be >= 0, not %g", threshold),
						errhint("0 means adaptive: 10%% of the entity's largest score.")));
	m = model_arg(fcinfo, 1);
	predictions = predict_relations(m, entity, &npredicted);
	npredicted = confident_predictions(predictions, npredicted);
	labels = feature_labels_load(m);
	labelled = labelled_edges(m, entity, predictions, npredicted, labels, &nlabelled);
	edges = describe_edges(m, entity, has_threshold, threshold, &n);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < npredicted; i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(predictions[i].relation);
		values[1] = CStringGetTextDatum(predictions[i].object);
		values[2] = Float8GetDatum(predictions[i].confidence);
		values[3] = Int32GetDatum(predictions[i].layer);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	put_edges(rsinfo, m, labels, labelled, nlabelled);
	put_edges(rsinfo, m, labels, edges, n);
	stats_end(m, npredicted + nlabelled + n);
	PG_RETURN_VOID();
}

/* implies(subject, object, model): is object among describe(subject)'s targets? */
Datum
infer_implies(PG_FUNCTION_ARGS)
{
	text *subject = required_text(fcinfo, 0, "subject");
	text *object = required_text(fcinfo, 1, "object");
	char *want = host_normalize(VARDATA_ANY(object), VARSIZE_ANY_EXHDR(object));
	InferModel *m;
	Edge *edges;
	int n;
	Prediction *predictions;
	int npredicted;
	bool found = false;

	REMOTE_DISPATCH("implies", 2);

	stats_begin(PG_NARGS() > 2 ? "implies" : "infer_implies_op");
	if (want[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("object must not be empty")));
	m = model_arg(fcinfo, 2);
	predictions = predict_relations(m, subject, &npredicted);
	if (npredicted > 0)
	{
		/* the object must be a relation's answer, stated at or above the floor */
		for (int i = 0; i < npredicted && !found; i++)
			found = strcmp(predictions[i].lower, want) == 0 &&
					predictions[i].confidence >= infer_min_confidence;
	}
	else
	{
		edges = describe_edges(m, subject, false, 0, &n);
		for (int i = 0; i < n && !found; i++)
			found = strcmp(edges[i].target.lower, want) == 0;
	}
	stats_end(m, 1);
	PG_RETURN_BOOL(found);
}

/* infer_layer_bands(model) -> (layer, band): the band of each layer */
Datum
infer_layer_bands(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InferModel *m;

	REMOTE_DISPATCH("infer_layer_bands", 0);
	m = model_arg(fcinfo, 0);

	InitMaterializedSRF(fcinfo, 0);
	for (int l = 0; l < m->layers; l++)
	{
		Datum values[2] = {Int32GetDatum(l), CStringGetTextDatum(band_name(m->band[l]))};
		bool nulls[2] = {false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
