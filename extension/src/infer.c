/*
 * infer.c: infer(prompt text, top int, model text)
 *            -> TABLE(token text, probability float8, rank int)
 *
 * Next-token prediction with the C forward pass (forward.c): the prompt is
 * tokenized with the special tokens the tokenizer's post-processor adds,
 * run through the model, and the softmax of the final logits at the last
 * position gives the `top` most probable tokens (ties: lower id first).
 * token is the token decoded on its own, untrimmed (" Paris").
 */
#include "pg_infer.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "forward.h"
#include "infer.h"
#include "knowledge.h"
#include "stats.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_next_tokens);

ForwardRun *
infer_prompt(InferModel *m, text *prompt, int extra, bool capture_act, bool capture_resid,
			 int32 **ids_out, int *n_out)
{
	int n;
	int32 *ids;
	ForwardRun *run;

	forward_require(m, "this function");
	ids = forward_tokens(m, prompt, &n);
	run = forward_begin(m, n + extra, n, capture_act, capture_resid);
	forward_step(run, ids, n);
	if (ids_out)
		*ids_out = ids;
	if (n_out)
		*n_out = n;
	return run;
}

/* Probabilities (softmax in double) of the `top` largest logits, best first. */
TopK
top_tokens(const float *logits, int vocab, int top, double *z_out, double *max_out)
{
	TopK best;
	double max = -INFINITY, z = 0;

	for (int v = 0; v < vocab; v++)
		max = Max(max, logits[v]);
	for (int v = 0; v < vocab; v++)
		z += exp(logits[v] - max);
	topk_init(&best, top, RANK_SIGNED);
	topk_push_layer(&best, 0, logits, vocab, false);
	topk_sorted(&best);
	*z_out = z;
	*max_out = max;
	return best;
}

Datum
infer_next_tokens(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text *prompt = required_text(fcinfo, 0, "prompt");
	int top;
	InferModel *m;
	ForwardRun *run;
	float *logits;
	TopK best;
	double z, max;
	int32 *ids;
	DecodedToken *tokens;

	REMOTE_DISPATCH("infer", 2);

	stats_begin("infer");
	if (PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("top must not be NULL")));
	top = PG_GETARG_INT32(1);
	m = model_arg(fcinfo, 2);
	if (top < 1 || top > m->vocab)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("top must be between 1 and the vocabulary size %d, not %d", m->vocab,
							   top)));
	run = infer_prompt(m, prompt, 0, false, false, NULL, NULL);
	logits = palloc_extended(sizeof(float) * m->vocab, MCXT_ALLOC_HUGE);
	forward_logits(run, run->last, logits);
	best = top_tokens(logits, m->vocab, top, &z, &max);

	ids = palloc(sizeof(int32) * best.n);
	for (int i = 0; i < best.n; i++)
		ids[i] = best.hits[i].feature;
	tokens = decode_tokens(m, ids, best.n);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < best.n; i++)
	{
		Datum values[3];
		bool nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(tokens[i].raw);
		values[1] = Float8GetDatum(exp(best.hits[i].score - max) / z);
		values[2] = Int32GetDatum(i + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	stats_end(m, best.n);
	PG_RETURN_VOID();
}
