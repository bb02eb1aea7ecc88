/*
 * similar.c: similar_to(a text, b text, model text) -> float8
 *            infer_distance(a text, b text) -> float8
 *
 * Each text's query vector as in describe (mean token embedding, no special
 * tokens, x embed_scale) and its top-50 features with positive score over
 * all layers (ties: layer, feature). similar_to is the largest
 * min(score_a, score_b) over the features both share, 0 when none;
 * infer_distance = 1 / (1 + similar_to). The index access method uses the
 * same signature and distance, so index scans order rows exactly as
 * sequential scans sorted by <~> do.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "compute.h"
#include "knowledge.h"
#include "similar.h"

PG_FUNCTION_INFO_V1(infer_similar_to);
PG_FUNCTION_INFO_V1(infer_distance);
PG_FUNCTION_INFO_V1(infer_signatures);

/*
 * The signatures of nq query vectors: the top SIGNATURE_SIZE features by
 * signed score, positive ones only, over all layers (one gate pass).
 */
static void
feature_signatures_of(InferModel *m, const float *queries, int nq, GateHit (*out)[SIGNATURE_SIZE],
					  int *counts)
{
	GatePass pass = {0};
	TopK *best = palloc(sizeof(TopK) * (nq > 0 ? nq : 1));

	pass.queries = queries;
	pass.nq = nq;
	pass.per_layer_k = SIGNATURE_SIZE;
	pass.k = SIGNATURE_SIZE;
	pass.rank = RANK_SIGNED;
	pass.positive_only = true;
	compute_gate_topk(m, &pass, best);
	for (int i = 0; i < nq; i++)
	{
		counts[i] = best[i].n;
		memcpy(out[i], best[i].hits, sizeof(GateHit) * best[i].n);
		pfree(best[i].hits);
	}
	pfree(best);
}

int
feature_signature(InferModel *m, text *input, const char *what, GateHit *out)
{
	float *q = query_vector(m, input, what, false, QUERY_AVERAGE);
	int count;

	feature_signatures_of(m, q, 1, (GateHit(*)[SIGNATURE_SIZE]) out, &count);
	pfree(q);
	return count;
}

void
feature_signatures_batch(InferModel *m, text **inputs, int n, GateHit (*out)[SIGNATURE_SIZE],
						 int *counts)
{
	float *queries = palloc(sizeof(float) * (size_t) (n > 0 ? n : 1) * m->hidden);

	for (int i = 0; i < n; i++)
	{
		float *q = query_vector(m, inputs[i], "text", false, QUERY_AVERAGE);

		memcpy(queries + (size_t) i * m->hidden, q, sizeof(float) * m->hidden);
		pfree(q);
		/* tokenizing thousands of texts is long work too */
		INFER_CHECK_INTERRUPTS();
	}
	/* one pass for the whole batch: the backend blocks it as it likes */
	feature_signatures_of(m, queries, n, out, counts);
	pfree(queries);
}

double
signature_similarity(const GateHit *a, int na, const GateHit *b, int nb)
{
	double best = 0;

	/* 50 x 50 comparisons: cheaper than any hashing at this size */
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			if (a[i].layer == b[j].layer && a[i].feature == b[j].feature)
				best = Max(best, Min(a[i].score, b[j].score));
	return best;
}

/*
 * The last signature computed for each argument of a call site, kept in
 * fn_extra: in `ORDER BY col <~> 'query'` one side is the same text for
 * every row, and recomputing its signature (a full gate scan) per row would
 * double the cost of every distance.
 */
typedef struct CachedSignature
{
	uint64 generation; /* of the model: a re-created model has a new one */
	text *input;
	int n;
	GateHit hits[SIGNATURE_SIZE];
} CachedSignature;

static int
cached_signature(FunctionCallInfo fcinfo, CachedSignature *cache, InferModel *m, text *input,
				 const char *what, GateHit **out)
{
	Size len = VARSIZE_ANY_EXHDR(input);

	if (cache->input == NULL || cache->generation != m->generation ||
		VARSIZE_ANY_EXHDR(cache->input) != len ||
		memcmp(VARDATA_ANY(cache->input), VARDATA_ANY(input), len) != 0)
	{
		cache->n = feature_signature(m, input, what, cache->hits);
		if (cache->input)
			pfree(cache->input);
		cache->input = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARHDRSZ + len);
		SET_VARSIZE(cache->input, VARHDRSZ + len);
		memcpy(VARDATA(cache->input), VARDATA_ANY(input), len);
		cache->generation = m->generation;
	}
	*out = cache->hits;
	return cache->n;
}

static double
similar_texts(FunctionCallInfo fcinfo, int model_argno)
{
	text *a = required_text(fcinfo, 0, "a");
	text *b = required_text(fcinfo, 1, "b");
	InferModel *m = model_arg(fcinfo, model_argno);
	CachedSignature *cache = fcinfo->flinfo->fn_extra;
	GateHit *sa;
	GateHit *sb;
	int na;
	int nb;

	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, 2 * sizeof(CachedSignature));
	na = cached_signature(fcinfo, &cache[0], m, a, "a", &sa);
	nb = cached_signature(fcinfo, &cache[1], m, b, "b", &sb);
	return signature_similarity(sa, na, sb, nb);
}

Datum
infer_similar_to(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(similar_texts(fcinfo, 2));
}

/* infer_distance(a, b): with infer.default_model, as the <~> operator is */
Datum
infer_distance(PG_FUNCTION_ARGS)
{
	/*
	 * A text with no signature (empty, or longer than a query may be) has no
	 * distance, like NULL: the column index stores such rows as it stores
	 * NULLs, so an index scan and a sort by <~> agree on them too.
	 */
	if (!PG_ARGISNULL(0) && !text_has_signature(PG_GETARG_TEXT_PP(0)))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1) && !text_has_signature(PG_GETARG_TEXT_PP(1)))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(1.0 / (1.0 + similar_texts(fcinfo, 2)));
}

/*
 * infer_signatures(inputs text[], model text)
 *   -> TABLE(ord int, layer int, feature int, score float8)
 *
 * The signature of every element (1-based ord), computed with the batched
 * kernel: what an index build does for its rows.
 */
Datum
infer_signatures(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType *arr;
	Datum *elems;
	bool *nulls;
	int n;
	InferModel *m;
	text **inputs;
	GateHit(*sigs)[SIGNATURE_SIZE];
	int *counts;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("inputs must not be NULL")));
	arr = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array_builtin(arr, TEXTOID, &elems, &nulls, &n);
	m = model_arg(fcinfo, 1);
	inputs = palloc(sizeof(text *) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("inputs must not contain NULL (element %d)", i + 1)));
		inputs[i] = DatumGetTextPP(elems[i]);
	}
	sigs = palloc(sizeof(*sigs) * (n > 0 ? n : 1));
	counts = palloc(sizeof(int) * (n > 0 ? n : 1));
	feature_signatures_batch(m, inputs, n, sigs, counts);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < counts[i]; j++)
		{
			Datum values[4];
			bool isnull[4] = {false, false, false, false};

			values[0] = Int32GetDatum(i + 1);
			values[1] = Int32GetDatum(sigs[i][j].layer);
			values[2] = Int32GetDatum(sigs[i][j].feature);
			values[3] = Float8GetDatum(sigs[i][j].score);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
		}
	PG_RETURN_VOID();
}
