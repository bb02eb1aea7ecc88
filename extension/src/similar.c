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

#include "fmgr.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "knowledge.h"
#include "similar.h"

PG_FUNCTION_INFO_V1(infer_similar_to);
PG_FUNCTION_INFO_V1(infer_distance);

int
feature_signature(InferModel *m, text *input, const char *what, GateHit *out)
{
	float *q = query_vector(m, input, what, false, QUERY_AVERAGE);
	TopK best;

	topk_init(&best, SIGNATURE_SIZE, RANK_SIGNED);
	scan_layers(m, q, &best, SIGNATURE_SIZE, true);
	topk_sorted(&best);
	memcpy(out, best.hits, sizeof(GateHit) * best.n);
	pfree(best.hits);
	pfree(q);
	return best.n;
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

static double
similar_texts(FunctionCallInfo fcinfo, int model_argno)
{
	text *a = required_text(fcinfo, 0, "a");
	text *b = required_text(fcinfo, 1, "b");
	InferModel *m = model_arg(fcinfo, model_argno);
	GateHit sa[SIGNATURE_SIZE];
	GateHit sb[SIGNATURE_SIZE];
	int na = feature_signature(m, a, "a", sa);
	int nb = feature_signature(m, b, "b", sb);

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
	PG_RETURN_FLOAT8(1.0 / (1.0 + similar_texts(fcinfo, 2)));
}
