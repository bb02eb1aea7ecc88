/*
 * infer.h: what infer(), forward-mode walk() and describe() share
 * (infer.c): running a prompt and ranking next tokens.
 */
#ifndef PG_INFER_INFER_H
#define PG_INFER_INFER_H

#include "postgres.h"

#include "forward.h"
#include "model.h"

/*
 * Tokenizes and runs a prompt (55000 unless the model has inference
 * weights), leaving room for `extra` more positions; the prompt's ids and
 * count are returned when asked.
 */
extern ForwardRun *infer_prompt(InferModel *m, text *prompt, int extra, bool capture_act,
								bool capture_resid, int32 **ids, int *n);

/*
 * The `top` largest logits (hit.feature = token id, hit.score = logit),
 * best first, ties by id; *z and *max give probability = exp(logit - max) / z.
 */
extern TopK top_tokens(const float *logits, int vocab, int top, double *z, double *max);

#endif /* PG_INFER_INFER_H */
