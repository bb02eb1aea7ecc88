/*
 * knowledge.c: the pieces walk(), describe() and similar_to() share.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "host.h"
#include "knowledge.h"

text *
required_text(FunctionCallInfo fcinfo, int i, const char *what)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", what)));
	return PG_GETARG_TEXT_PP(i);
}

InferModel *
model_arg(FunctionCallInfo fcinfo, int i)
{
	bool absent = i >= PG_NARGS() || PG_ARGISNULL(i);

	return model_get(absent ? NULL : PG_GETARG_TEXT_PP(i));
}

/* Adds embedding row `token` x weight into acc (float64 for the mean). */
static void
add_embedding(const InferModel *m, int32 token, double weight, double *acc)
{
	size_t off = (size_t) token * m->hidden;

	if (m->embed_dtype == GATE_F32)
	{
		const float *row = (const float *) m->embed + off;

		for (int h = 0; h < m->hidden; h++)
			acc[h] += weight * row[h];
	}
	else
	{
		float *row = palloc(sizeof(float) * m->hidden);

		f16_to_f32((const uint16 *) m->embed + off, row, m->hidden);
		for (int h = 0; h < m->hidden; h++)
			acc[h] += weight * row[h];
		pfree(row);
	}
}

float *
query_vector(InferModel *m, text *input, const char *what, bool special_tokens, QueryMode mode)
{
	int len = VARSIZE_ANY_EXHDR(input);
	int n;
	int32 *ids;
	double *acc;
	float *q;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must not be empty", what)));
	if (len > QUERY_TEXT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long (%d bytes; at most %d)", what, len, QUERY_TEXT_MAX),
				 errhint("Knowledge queries look at words and short phrases, not documents.")));

	ids = host_model_tokenize(m->name, VARDATA_ANY(input), len, special_tokens, &n);
	if (n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s has no tokens under model \"%s\"", what, m->name)));
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= m->vocab)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("token id %d of %s is outside model \"%s\"'s vocabulary (%d)",
								   ids[i], what, m->name, m->vocab),
							errhint("The tokenizer does not match the model's embeddings.")));

	acc = palloc0(sizeof(double) * m->hidden);
	if (mode == QUERY_LAST)
		add_embedding(m, ids[n - 1], 1.0, acc);
	else
		for (int i = 0; i < n; i++)
			add_embedding(m, ids[i], 1.0 / n, acc);

	q = palloc(sizeof(float) * m->hidden);
	for (int h = 0; h < m->hidden; h++)
		q[h] = (float) (acc[h] * m->embed_scale);
	pfree(acc);
	return q;
}

DecodedToken *
decode_tokens(InferModel *m, const int32 *ids, int n)
{
	DecodedToken *out = palloc(sizeof(DecodedToken) * (n > 0 ? n : 1));
	int len;
	char *buf;
	char *p;
	char *end;

	if (n == 0)
		return out;
	buf = host_model_decode(m->name, ids, n, &len);
	p = buf;
	end = buf + len;
	for (int i = 0; i < n; i++)
	{
		if (p >= end)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("pg_infer host returned %d decoded tokens, expected %d", i, n)));
		out[i].letters_only = (*p++ & 1) != 0;
		out[i].text = p;
		p += bounded_strlen(p, end - p) + 1;
		out[i].lower = p;
		p += bounded_strlen(p, end - p) + 1;
		out[i].raw = p;
		p += bounded_strlen(p, end - p) + 1;
	}
	return out;
}

/*
 * The classic English stopword list (NLTK's original 127 words): function
 * words that are never knowledge targets. Sorted for bsearch.
 */
static const char *const stopwords[] = {
	"a",      "about",  "above", "after", "again",   "against",   "all",        "am",
	"an",     "and",    "any",   "are",   "as",      "at",        "be",         "because",
	"been",   "before", "being", "below", "between", "both",      "but",        "by",
	"can",    "did",    "do",    "does",  "doing",   "don",       "down",       "during",
	"each",   "few",    "for",   "from",  "further", "had",       "has",        "have",
	"having", "he",     "her",   "here",  "hers",    "herself",   "him",        "himself",
	"his",    "how",    "i",     "if",    "in",      "into",      "is",         "it",
	"its",    "itself", "just",  "me",    "more",    "most",      "my",         "myself",
	"no",     "nor",    "not",   "now",   "of",      "off",       "on",         "once",
	"only",   "or",     "other", "our",   "ours",    "ourselves", "out",        "over",
	"own",    "s",      "same",  "she",   "should",  "so",        "some",       "such",
	"t",      "than",   "that",  "the",   "their",   "theirs",    "them",       "themselves",
	"then",   "there",  "these", "they",  "this",    "those",     "through",    "to",
	"too",    "under",  "until", "up",    "very",    "was",       "we",         "were",
	"what",   "when",   "where", "which", "while",   "who",       "whom",       "why",
	"will",   "with",   "you",   "your",  "yours",   "yourself",  "yourselves",
};

static int
cmp_word(const void *key, const void *elem)
{
	return strcmp((const char *) key, *(const char *const *) elem);
}

bool
is_stopword(const char *lower)
{
	return bsearch(lower, stopwords, lengthof(stopwords), sizeof(char *), cmp_word) != NULL;
}
