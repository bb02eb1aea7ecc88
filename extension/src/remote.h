/*
 * remote.h: query functions on remote models (remote.c).
 */
#ifndef PG_INFER_REMOTE_H
#define PG_INFER_REMOTE_H

#include "postgres.h"

#include "fmgr.h"

#include "similar.h"

/*
 * When the call's model (argument model_argno, or infer.default_model when
 * that is absent or NULL) is remote, runs `function` (its SQL name on the
 * server, with the model as argument model_argno) on the model server and
 * sets *result (a set-returning function's rows are materialized); returns
 * true. Returns false for a local model, having done nothing.
 */
extern bool remote_dispatch(FunctionCallInfo fcinfo, const char *function, int model_argno,
							Datum *result);

/* First statement of a query function: answer from the server for a remote model. */
#define REMOTE_DISPATCH(function, model_argno)                                                     \
	do                                                                                             \
	{                                                                                              \
		Datum remote_result_;                                                                      \
		if (remote_dispatch(fcinfo, (function), (model_argno), &remote_result_))                   \
			return remote_result_;                                                                 \
	} while (0)

/* Whether `name` is a remote model (the column index's signatures then come from its server). */
extern bool remote_model_name(const char *name);

/* feature_signatures_batch for a remote model: infer_signatures on its server. */
extern void remote_signatures(const char *name, text **inputs, int n, Signature *out);

/*
 * For an index scan on a remote model: the dot products of each token's
 * signature vector with the query's signature tokens' (infer_signature_dots
 * on the server), ntok x *nq, row i for tokens[i], and each token's
 * specificity weight into weights[i].
 */
extern float *remote_token_dots(const char *name, text *query, const int32 *tokens, int ntok,
								int *nq, float *weights);

#endif /* PG_INFER_REMOTE_H */
