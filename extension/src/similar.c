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
#include "stats.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_similar_to);
PG_FUNCTION_INFO_V1(infer_distance);
PG_FUNCTION_INFO_V1(infer_signatures);
PG_FUNCTION_INFO_V1(infer_similar_to_many);
PG_FUNCTION_INFO_V1(infer_embedding);

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
		stats_cache(false);
		cache->n = feature_signature(m, input, what, cache->hits);
		if (cache->input)
			pfree(cache->input);
		cache->input = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARHDRSZ + len);
		SET_VARSIZE(cache->input, VARHDRSZ + len);
		memcpy(VARDATA(cache->input), VARDATA_ANY(input), len);
		cache->generation = m->generation;
	}
	else
		stats_cache(true);
	*out = cache->hits;
	return cache->n;
}

static double
similar_texts(FunctionCallInfo fcinfo, int model_argno, const char *function)
{
	text *a = required_text(fcinfo, 0, "a");
	text *b = required_text(fcinfo, 1, "b");
	InferModel *m;
	CachedSignature *cache = fcinfo->flinfo->fn_extra;
	GateHit *sa;
	GateHit *sb;
	int na;
	int nb;
	double score;

	stats_begin(function);
	m = model_arg(fcinfo, model_argno);

	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, 2 * sizeof(CachedSignature));
	na = cached_signature(fcinfo, &cache[0], m, a, "a", &sa);
	nb = cached_signature(fcinfo, &cache[1], m, b, "b", &sb);
	score = signature_similarity(sa, na, sb, nb);
	stats_end(m, 1);
	return score;
}

/* similar_to(a, b, model); infer_similarity(a, b) (the <~ operator) with the default model */
Datum
infer_similar_to(PG_FUNCTION_ARGS)
{
	REMOTE_DISPATCH("similar_to", 2);
	PG_RETURN_FLOAT8(similar_texts(fcinfo, 2, PG_NARGS() > 2 ? "similar_to" : "infer_similarity"));
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
	REMOTE_DISPATCH("infer_distance", 2);
	PG_RETURN_FLOAT8(1.0 / (1.0 + similar_texts(fcinfo, 2, "infer_distance")));
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
	int64 rows = 0;

	REMOTE_DISPATCH("infer_signatures", 1);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("inputs must not be NULL")));
	stats_begin("infer_signatures");
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
			rows++;
		}
	stats_end(m, rows);
	PG_RETURN_VOID();
}

/* Candidates whose signatures one batched gate pass computes. */
#define SIMILAR_MANY_BATCH 256

/*
 * similar_to_many(candidates text[], query text, model text) -> float8[]
 *
 * similar_to(candidate, query, model) for every element, in the array's
 * shape (NULL elements give NULL scores), with the signatures computed by
 * the batched gate kernel SIMILAR_MANY_BATCH candidates at a time (the
 * query's with the first batch). NULL candidates: NULL.
 */
Datum
infer_similar_to_many(PG_FUNCTION_ARGS)
{
	ArrayType *arr;
	text *query;
	Datum *elems;
	bool *nulls;
	int n;
	InferModel *m;
	GateHit query_sig[SIGNATURE_SIZE];
	int query_n;
	Datum *scores;
	ArrayType *result;

	REMOTE_DISPATCH("similar_to_many", 2);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	query = required_text(fcinfo, 1, "query");
	stats_begin("similar_to_many");
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("candidates must be a one-dimensional array, not %d-dimensional",
							   ARR_NDIM(arr))));
	deconstruct_array_builtin(arr, TEXTOID, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && VARSIZE_ANY_EXHDR(DatumGetTextPP(elems[i])) == 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("candidates[%d] must not be empty", ARR_LBOUND(arr)[0] + i),
							errhint("Pass NULL for a candidate to skip: its score is NULL.")));
	m = model_arg(fcinfo, 2);
	query_n = feature_signature(m, query, "query", query_sig);
	scores = palloc(sizeof(Datum) * (n > 0 ? n : 1));
	for (int b0 = 0; b0 < n; b0 += SIMILAR_MANY_BATCH)
	{
		int nb = Min(SIMILAR_MANY_BATCH, n - b0);
		text **inputs = palloc(sizeof(text *) * nb);
		int *index = palloc(sizeof(int) * nb);
		GateHit(*sigs)[SIGNATURE_SIZE] = palloc(sizeof(*sigs) * nb);
		int *counts = palloc(sizeof(int) * nb);
		int ni = 0;

		for (int i = b0; i < b0 + nb; i++)
			if (!nulls[i])
			{
				index[ni] = i;
				inputs[ni++] = DatumGetTextPP(elems[i]);
			}
		feature_signatures_batch(m, inputs, ni, sigs, counts);
		for (int j = 0; j < ni; j++)
			scores[index[j]] =
				Float8GetDatum(signature_similarity(sigs[j], counts[j], query_sig, query_n));
		pfree(inputs);
		pfree(index);
		pfree(sigs);
		pfree(counts);
	}
	if (n == 0)
		result = construct_empty_array(FLOAT8OID);
	else
	{
		int dims[1] = {n};
		int lbs[1] = {ARR_LBOUND(arr)[0]};

		result = construct_md_array(scores, nulls, 1, dims, lbs, FLOAT8OID, sizeof(float8),
									FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	}
	stats_end(m, n);
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * infer_embedding(input text, model text) -> real[]
 *
 * The text's embedding as similar_to sees it: the mean of its tokens'
 * input embeddings (no special tokens) x embed_scale, hidden_size values.
 * pg_infer_vector's infer_embed() casts it to pgvector's vector.
 */
Datum
infer_embedding(PG_FUNCTION_ARGS)
{
	text *input = required_text(fcinfo, 0, "input");
	InferModel *m;
	float *q;
	Datum *values;
	ArrayType *result;

	REMOTE_DISPATCH("infer_embedding", 1);

	stats_begin("infer_embedding");
	m = model_arg(fcinfo, 1);
	q = query_vector(m, input, "input", false, QUERY_AVERAGE);
	values = palloc(sizeof(Datum) * m->hidden);
	for (int h = 0; h < m->hidden; h++)
		values[h] = Float4GetDatum(q[h]);
	result = construct_array_builtin(values, m->hidden, FLOAT4OID);
	stats_end(m, 1);
	PG_RETURN_ARRAYTYPE_P(result);
}
