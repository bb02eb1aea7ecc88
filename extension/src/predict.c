/*
 * predict.c: what the model itself answers for a relation, and the feature
 * labels infer_label_relations() stored.
 *
 * A relation's template ('The capital of {} is', infer.relation_templates)
 * is filled with the entity's form (knowledge.h entity_text: the case rule)
 * and continued greedily until the answer ends. The continuation stops
 * before EOS, before a token with a line break, before a later token the
 * model gives less than PREDICT_MIN_NEXT probability (the answer's end is
 * where the model stops being sure it goes on), and after
 * PREDICT_MAX_TOKENS; a sentence end ('.', '!' or '?' ending the text) is
 * then cut unless its last word holds another period (an abbreviation:
 * 'Washington D.C.' keeps its final period, 'Paris.' loses it). So
 * 'Port-au-Prince', "N'Djamena" and 'City of San Marino' come out whole,
 * with no word list. confidence = the product of the kept tokens'
 * probabilities; layer = the first layer at which the logit lens (final
 * norm + lm_head over the residual stream at the last prompt position)
 * ranks the object's first token top-1.
 */
#include "pg_infer.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "host.h"
#include "infer.h"
#include "knowledge.h"
#include "predict.h"

#define PREDICT_MAX_TOKENS 10
#define PREDICT_MIN_NEXT 0.5
/* the subject fit at which an answer's weight halves */
#define FIT_HALF 0.01

typedef struct Template
{
	char *relation;
	char *pattern;
} Template;

/* Rows of an SPI query of `ncols` columns with a model-name parameter, copied out. */
static int
query_rows(const char *sql, const char *model, int ncols, char ***cols)
{
	Oid argtypes[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(model)};
	MemoryContext caller = CurrentMemoryContext;
	int n;

	SPI_connect();
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_infer: \"%s\" failed", sql);
	n = (int) SPI_processed;
	for (int c = 0; c < ncols; c++)
	{
		cols[c] = MemoryContextAlloc(caller, sizeof(char *) * (n > 0 ? n : 1));
		for (int i = 0; i < n; i++)
		{
			char *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);

			cols[c][i] = MemoryContextStrdup(caller, v ? v : "");
		}
	}
	SPI_finish();
	return n;
}

/* The template with every "{}" replaced by the entity. */
static text *
fill_template(const char *pattern, const char *entity, int entity_len)
{
	StringInfoData s;

	initStringInfo(&s);
	for (const char *p = pattern; *p; p++)
	{
		if (p[0] == '{' && p[1] == '}')
		{
			appendBinaryStringInfo(&s, entity, entity_len);
			p++;
		}
		else
			appendStringInfoChar(&s, *p);
	}
	return cstring_to_text_with_len(s.data, s.len);
}

/* argmax of the logit lens at each layer's residual: the first layer that picks `token` */
static int
lens_layer(ForwardRun *run, const float *resid, float *logits, int32 token)
{
	InferModel *m = run->m;

	/* an owned model's own lm_head is in the backend: every layer in one call there */
	if (run->fm->lm_head.data == NULL)
	{
		int32 *best = palloc(sizeof(int32) * m->layers);
		int found = m->layers - 1;

		forward_lens_tokens(m, resid, m->layers, best);
		for (int l = 0; l < m->layers; l++)
			if (best[l] == token)
			{
				found = l;
				break;
			}
		pfree(best);
		return found;
	}
	for (int l = 0; l < m->layers; l++)
	{
		int best = 0;

		forward_logits(run, resid + (size_t) l * m->hidden, logits);
		for (int v = 1; v < m->vocab; v++)
			if (logits[v] > logits[best])
				best = v;
		if (best == token)
			return l;
	}
	return m->layers - 1;
}

/* Whether a chosen token (decoded alone) may extend the answer. */
static bool
continues_answer(const DecodedToken *t, int32 id, int eos, bool first, double p)
{
	if (id == eos || strchr(t->raw, '\n') != NULL || strchr(t->raw, '\r') != NULL)
		return false;
	if (first)
		return t->text[0] != '\0';
	return p >= PREDICT_MIN_NEXT;
}

/* Cuts a sentence end off the answer, unless its last word is an abbreviation. */
static void
cut_sentence_end(StringInfo s, double *confidence, double last_p)
{
	int len = s->len;
	int word;
	bool abbreviation = false;

	while (len > 0 && s->data[len - 1] == ' ')
		len--;
	if (len == 0 || strchr(".!?", s->data[len - 1]) == NULL)
		return;
	for (word = len - 1; word > 0 && s->data[word - 1] != ' '; word--)
		;
	for (int i = word; i < len - 1; i++)
		abbreviation |= s->data[i] == '.';
	if (s->data[len - 1] == '.' && abbreviation)
		return;
	s->data[len - 1] = '\0';
	s->len = len - 1;
	/* the period was a token of its own: its probability is not the answer's */
	if (last_p > 0)
		*confidence /= last_p;
}

/* Greedy continuation of a run that has read its prompt. */
static bool
continue_answer(InferModel *m, ForwardRun *run, Prediction *p)
{
	float *logits = palloc(sizeof(float) * m->vocab);
	StringInfoData object;
	int budget = PREDICT_MAX_TOKENS;
	size_t act_bytes = sizeof(float) * m->layers * run->fm->intermediate;
	double last_p = 0;
	bool last_alone = false;

	/* the prompt's activations, before the continuation overwrites them */
	p->act = memcpy(palloc(act_bytes), run->capture.act, act_bytes);
	initStringInfo(&object);
	p->confidence = 1;
	for (int i = 0; i < budget; i++)
	{
		double z, max, prob;
		TopK best;
		int32 id;
		DecodedToken *t;

		forward_logits(run, run->last, logits);
		best = top_tokens(logits, m->vocab, 1, &z, &max);
		id = best.hits[0].feature;
		prob = exp(best.hits[0].score - max) / z;
		t = decode_tokens(m, &id, 1);
		if (!continues_answer(t, id, run->fm->eos, i == 0, prob))
			break;
		if (i == 0)
		{
			/* the lens layer is computed for the answer describe() shows only (predict_layer) */
			size_t bytes = sizeof(float) * m->layers * m->hidden;

			p->run = run;
			p->first = id;
			p->resid = memcpy(palloc(bytes), run->capture.resid, bytes);
		}
		appendStringInfoString(&object, t->raw);
		p->confidence *= prob;
		last_p = prob;
		/* a sentence end the model is sure of: the answer is done */
		last_alone =
			strcmp(t->text, ".") == 0 || strcmp(t->text, "!") == 0 || strcmp(t->text, "?") == 0;
		if (i + 1 < budget)
			forward_step(run, &id, 1);
	}
	cut_sentence_end(&object, &p->confidence, last_alone ? last_p : 0);
	p->object = pstrdup(object.data);
	while (*p->object == ' ')
		p->object++;
	if (*p->object == '\0')
		return false;
	p->lower = host_normalize(p->object, strlen(p->object));
	return true;
}

/* Greedy continuation of one prompt. */
static bool
predict_one(InferModel *m, text *prompt, Prediction *p)
{
	ForwardRun *run = infer_prompt(m, prompt, PREDICT_MAX_TOKENS, true, true, NULL, NULL);

	p->fit = 1;
	return continue_answer(m, run, p);
}

/* Whether b[0..nb) is a prefix of a[0..na). */
static bool
ids_prefix(const int32 *a, int na, const int32 *b, int nb)
{
	if (nb > na)
		return false;
	for (int i = 0; i < nb; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/*
 * One template filled with the entity's form, read so that the subject's
 * fit is measured on the way: for each of the subject's tokens that has
 * context before it, its probability divided by the probability of the
 * token the model expected most there; the fit is the smallest of these (1
 * when no token has context, or when the template's text around the slot
 * does not tokenize apart). A subject the model knows in this slot fits
 * (0.3 to 1 on the fixture's countries); a made-up or out-of-place one does
 * not (1e-3 and below). Then the greedy answer, as predict_one.
 */
static bool
predict_template(InferModel *m, const char *pattern, const char *form, Prediction *p)
{
	const char *slot = strstr(pattern, "{}");
	int slot_at = slot ? (int) (slot - pattern) : (int) strlen(pattern);
	int pre_len = slot_at;
	text *prompt = fill_template(pattern, form, strlen(form));
	char *subject = psprintf("%.*s%s", slot_at, pattern, form);
	int n, n_pre, n_sub, start;
	int32 *ids, *pre_ids, *sub_ids;
	ForwardRun *run;

	forward_require(m, "describe()");
	/* the text before the slot without its space: the space belongs to the subject's token */
	while (pre_len > 0 && pattern[pre_len - 1] == ' ')
		pre_len--;
	ids = forward_tokens(m, prompt, &n);
	pre_ids = host_model_tokenize(m->name, pattern, pre_len, true, &n_pre);
	sub_ids = host_model_tokenize(m->name, subject, strlen(subject), true, &n_sub);
	run = forward_begin(m, n + PREDICT_MAX_TOKENS, n, true, true);
	p->fit = 1;
	if (n_pre < n_sub && ids_prefix(ids, n, sub_ids, n_sub) && ids_prefix(ids, n, pre_ids, n_pre))
	{
		float *logits = palloc(sizeof(float) * m->vocab);

		start = Max(n_pre, 1);
		p->fit_measured = start < n_sub;
		forward_step(run, ids, start);
		for (int i = start; i < n_sub; i++)
		{
			double z, max;
			TopK best;

			forward_logits(run, run->last, logits);
			best = top_tokens(logits, m->vocab, 1, &z, &max);
			p->fit = Min(p->fit, exp(logits[ids[i]] - best.hits[0].score));
			pfree(best.hits);
			forward_step(run, &ids[i], 1);
		}
		if (n_sub < n)
			forward_step(run, ids + n_sub, n - n_sub);
		pfree(logits);
	}
	else
		forward_step(run, ids, n);
	return continue_answer(m, run, p);
}

/*
 * Without relation templates describe() can only show gate-KNN feature
 * edges, which on their own read as noise: say so, once per loaded model
 * (not once per row of a query that calls describe() for many).
 */
static void
notice_no_templates(const InferModel *m)
{
	static uint64 noticed_generation = 0;

	if (m->generation == noticed_generation)
		return;
	noticed_generation = m->generation;
	ereport(NOTICE,
			(errmsg("model \"%s\" has no relation templates: describe() shows feature edges only",
					m->name),
			 errhint("Add templates with infer_add_relation('%s', 'capital', 'The capital of {} "
					 "is'), then label features with infer_label_relations('%s', <facts>).",
					 m->name, m->name)));
}

/* The first layer whose logit lens ranks the prediction's first token top-1. */
static void
predict_layer(Prediction *p)
{
	float *logits = palloc(sizeof(float) * p->run->m->vocab);

	p->layer = lens_layer(p->run, p->resid, logits, p->first);
	pfree(logits);
}

Prediction *
predict_relations(InferModel *m, text *entity, int *n)
{
	char **cols[3];
	int ntemplates;
	Prediction *out;
	Prediction *answers;
	double *weights;
	int kept = 0;
	char *form;
	double subject_fit = 1;

	*n = 0;
	if (m->fwd == NULL || VARSIZE_ANY_EXHDR(entity) == 0)
		return NULL; /* the feature edges' checks report an empty entity */
	ntemplates = query_rows("SELECT relation, template, weight FROM infer.relation_templates "
							"WHERE model = $1 ORDER BY relation, weight DESC, template",
							m->name, 3, cols);
	if (ntemplates == 0)
		notice_no_templates(m);
	out = palloc0(sizeof(Prediction) * (ntemplates > 0 ? ntemplates : 1));
	answers = palloc0(sizeof(Prediction) * (ntemplates > 0 ? ntemplates : 1));
	weights = palloc0(sizeof(double) * (ntemplates > 0 ? ntemplates : 1));
	form = ntemplates > 0 ? entity_text(m, entity, "entity") : NULL;
	for (int i = 0; i < ntemplates; i++)
	{
		answers[i].relation = cols[0][i];
		weights[i] = strtod(cols[2][i], NULL);
		if (!predict_template(m, cols[1][i], form, &answers[i]))
			answers[i].object = NULL;
	}
	/*
	 * The subject's fit: the best over every template of every relation (a
	 * subject is known when some template's slot takes it, and a paraphrase
	 * the model was not trained on may expect something else in its slot).
	 */
	for (int i = 0, measured = 0; i < ntemplates; i++)
		if (answers[i].fit_measured)
			subject_fit = measured++ ? Max(subject_fit, answers[i].fit) : answers[i].fit;
	/*
	 * Per relation, its templates' answers combined by weight: an answer's
	 * score is the sum of weight x probability over the templates that gave
	 * it, divided by the relation's total weight or 1, whichever is larger,
	 * times fit / (fit + FIT_HALF). The best scoring answer is the
	 * prediction and its score the confidence: templates that agree about a
	 * subject the model recognises make it high; templates that disagree, or
	 * a subject no template's slot takes (a made-up country, a fruit), make
	 * it low. Dividing by at least 1 keeps templates whose weights are their
	 * measured precision below 1 (infer_score_templates) from being read as
	 * sure: a relation whose only template is right 82% of the time answers
	 * with at most 0.82.
	 */
	for (int first = 0; first < ntemplates;)
	{
		int end = first;
		double total = 0;
		int best = -1;
		double best_score = 0;

		while (end < ntemplates && strcmp(cols[0][end], cols[0][first]) == 0)
			total += weights[end++];
		for (int i = first; i < end; i++)
		{
			double score = 0;

			if (answers[i].object == NULL)
				continue;
			for (int j = first; j < end; j++)
				if (answers[j].object != NULL && strcmp(answers[j].lower, answers[i].lower) == 0)
					score += weights[j] * answers[j].confidence;
			if (best < 0 || score > best_score)
			{
				best = i;
				best_score = score;
			}
		}
		if (best >= 0 && total > 0)
		{
			out[kept] = answers[best];
			out[kept].confidence =
				best_score / Max(total, 1.0) * subject_fit / (subject_fit + FIT_HALF);
			out[kept].fit = subject_fit;
			predict_layer(&out[kept]);
			kept++;
		}
		first = end;
	}
	*n = kept;
	return out;
}

PG_FUNCTION_INFO_V1(infer_answer);

/* infer_answer(prompt, model) -> (answer text, probability float8) */
Datum
infer_answer(PG_FUNCTION_ARGS)
{
	text *prompt = required_text(fcinfo, 0, "prompt");
	InferModel *m = model_arg(fcinfo, 1);
	TupleDesc desc;
	Datum values[2];
	bool nulls[2] = {false, false};
	Prediction p = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pg_infer: infer_answer must return a record");
	forward_require(m, "infer_answer()");
	if (predict_one(m, prompt, &p))
	{
		values[0] = CStringGetTextDatum(p.object);
		values[1] = Float8GetDatum(p.confidence);
	}
	else
		nulls[0] = nulls[1] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---- feature labels ---- */

struct FeatureLabels
{
	int n;
	int *layer;
	int *feature;
	int *sign;
	char **relation;
};

FeatureLabels *
feature_labels_load(InferModel *m)
{
	FeatureLabels *labels = palloc0(sizeof(FeatureLabels));
	char **cols[4];
	int rows;

	rows = query_rows("SELECT layer, feature, sign, relation FROM infer.feature_labels "
					  "WHERE model = $1 ORDER BY layer, feature, relation, sign",
					  m->name, 4, cols);
	labels->n = rows;
	labels->layer = palloc(sizeof(int) * (rows > 0 ? rows : 1));
	labels->feature = palloc(sizeof(int) * (rows > 0 ? rows : 1));
	labels->sign = palloc(sizeof(int) * (rows > 0 ? rows : 1));
	labels->relation = cols[3];
	for (int i = 0; i < rows; i++)
	{
		labels->layer[i] = atoi(cols[0][i]);
		labels->feature[i] = atoi(cols[1][i]);
		labels->sign[i] = atoi(cols[2][i]);
	}
	return labels;
}

const char *
feature_label(const FeatureLabels *labels, int layer, int feature)
{
	for (int i = 0; i < labels->n; i++)
		if (labels->layer[i] == layer && labels->feature[i] == feature)
			return labels->relation[i];
	return NULL;
}

char *
feature_label_list(const FeatureLabels *labels, int layer, int feature)
{
	StringInfoData out;

	initStringInfo(&out);
	for (int i = 0; i < labels->n; i++)
		if (labels->layer[i] == layer && labels->feature[i] == feature)
			appendStringInfo(&out, "%s%s%s", out.len ? ", " : "", labels->sign[i] < 0 ? "-" : "",
							 labels->relation[i]);
	return out.len ? out.data : NULL;
}

bool
feature_has_label(const FeatureLabels *labels, int layer, int feature, const char *relation,
				  float activation)
{
	int sign = activation < 0 ? -1 : 1;

	for (int i = 0; i < labels->n; i++)
		if (labels->layer[i] == layer && labels->feature[i] == feature && labels->sign[i] == sign &&
			strcmp(labels->relation[i], relation) == 0)
			return true;
	return false;
}
