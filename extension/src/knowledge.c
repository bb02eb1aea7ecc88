/*
 * knowledge.c: the pieces walk(), describe() and similar_to() share.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
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

static void
check_query_text(int len, const char *what)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must not be empty", what)));
	if (len > QUERY_TEXT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s is too long (%d bytes; at most %d)", what, len, QUERY_TEXT_MAX),
				 errhint("Knowledge queries look at words and short phrases, not documents.")));
}

/* Tokens decoded to find out whether the tokenizer marks word starts. */
#define WORD_START_PROBE 2000

/*
 * Whether the tokenizer marks word starts with a space: among its first
 * WORD_START_PROBE tokens, some decode alone to a space and then a letter
 * or digit (" the": byte-level BPE, GPT-2, Qwen2, Llama 3). A SentencePiece
 * tokenizer's decoder strips the space of its word mark ("▁the" decodes to
 * "the"), and WordPiece has none: no.
 */
static bool
marks_word_starts(InferModel *m)
{
	if (m->word_start_space == 0)
	{
		int n = Min(m->vocab, WORD_START_PROBE);
		int32 *ids = palloc(sizeof(int32) * n);
		DecodedToken *t;
		int marked = 0;

		for (int i = 0; i < n; i++)
			ids[i] = i;
		t = decode_tokens(m, ids, n);
		for (int i = 0; i < n; i++)
		{
			unsigned char c = (unsigned char) t[i].raw[1];

			if (t[i].raw[0] == ' ' &&
				((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
				marked++;
		}
		m->word_start_space = marked >= 5 ? 2 : 1;
		pfree(ids);
	}
	return m->word_start_space == 2;
}

/* The tokens of `s` (len bytes) mid-sentence: after a space where words start with one. */
static int32 *
mid_sentence_tokens(InferModel *m, const char *s, int len, int *n)
{
	if (marks_word_starts(m))
	{
		char *spaced = palloc(len + 2);

		spaced[0] = ' ';
		memcpy(spaced + 1, s, len);
		spaced[len + 1] = '\0';
		return host_model_tokenize(m->name, spaced, len + 1, false, n);
	}
	return host_model_tokenize(m->name, s, len, false, n);
}

/* Lower case (title: upper at each word start) of ASCII letters; other bytes as they are. */
static char *
ascii_case(const char *s, int len, bool title)
{
	char *out = palloc(len + 1);
	bool start = true;

	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (letter)
			c = (title && start) ? (c & ~0x20) : (c | 0x20);
		out[i] = (char) c;
		/* a word starts after anything but a letter, a digit or a non-ASCII byte */
		start = !(letter || (c >= '0' && c <= '9') || c >= 0x80);
	}
	out[len] = '\0';
	return out;
}

/* The number of tokens of one word mid-sentence (none: as good as infinitely many). */
static int
word_cost(InferModel *m, const char *w, int len)
{
	int n;
	int32 *ids = mid_sentence_tokens(m, w, len, &n);

	pfree(ids);
	return n == 0 ? PG_INT32_MAX : n;
}

/*
 * The entity form: a text with both ASCII cases is taken as written; a text
 * all in lower case or all in upper case is re-cased word by word (words
 * split at spaces): each word takes, of its lower case, its title case and
 * as written, the one the tokenizer splits into the fewest tokens
 * mid-sentence (ties: as written, then lower, then title). So 'france' and
 * 'FRANCE' read as 'France', 'bosnia and herzegovina' as 'Bosnia and
 * Herzegovina', 'euro' stays 'euro'. Returns it with its mid-sentence tokens.
 */
char *
entity_form(InferModel *m, text *input, const char *what, int32 **ids, int *n)
{
	int len = VARSIZE_ANY_EXHDR(input);
	const char *s = VARDATA_ANY(input);
	bool has_lower = false, has_upper = false;
	char *form;

	check_query_text(len, what);
	for (int i = 0; i < len; i++)
	{
		has_lower |= s[i] >= 'a' && s[i] <= 'z';
		has_upper |= s[i] >= 'A' && s[i] <= 'Z';
	}
	form = pnstrdup(s, len);
	if (has_lower != has_upper)
	{
		for (int start = 0; start < len;)
		{
			int end = start;

			while (end < len && s[end] != ' ')
				end++;
			if (end > start)
			{
				int wl = end - start;
				int best = word_cost(m, s + start, wl);

				for (int v = 0; v < 2; v++)
				{
					char *alt = ascii_case(s + start, wl, v == 1);
					int na;

					if (memcmp(alt, form + start, wl) == 0)
						continue;
					na = word_cost(m, alt, wl);
					if (na < best)
					{
						memcpy(form + start, alt, wl);
						best = na;
					}
				}
			}
			start = end + 1;
		}
	}
	*ids = mid_sentence_tokens(m, form, len, n);
	if (*n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s has no tokens under model \"%s\"", what, m->name)));
	return form;
}

char *
entity_text(InferModel *m, text *input, const char *what)
{
	int32 *ids;
	int n;

	return entity_form(m, input, what, &ids, &n);
}

int32 *
entity_tokens(InferModel *m, text *input, const char *what, int *n)
{
	int32 *ids;

	entity_form(m, input, what, &ids, n);
	return ids;
}

float *
query_vector(InferModel *m, text *input, const char *what, bool special_tokens, QueryMode mode)
{
	int len = VARSIZE_ANY_EXHDR(input);
	int n;
	int32 *ids;
	double *acc;
	float *q;

	check_query_text(len, what);
	if (special_tokens)
		ids = host_model_tokenize(m->name, VARDATA_ANY(input), len, special_tokens, &n);
	else
		ids = entity_tokens(m, input, what, &n);
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

DecodedToken *
feature_tokens(InferModel *m, const GateHit *hits, int n)
{
	int k = m->down_top_k;
	int32 *ids = palloc(sizeof(int32) * ((size_t) n * k + 1));

	for (int i = 0; i < n; i++)
		memcpy(ids + (size_t) i * k, m->down_tokens[hits[i].layer] + (size_t) hits[i].feature * k,
			   sizeof(int32) * k);
	return decode_tokens(m, ids, n * k);
}

char *
feature_also(InferModel *m, const GateHit *hit, const DecodedToken *tokens,
			 const char *entity_lower)
{
	const float *logits = m->down_logits[hit->layer] + (size_t) hit->feature * m->down_top_k;
	StringInfoData out;
	int taken = 0;

	initStringInfo(&out);
	for (int j = 1; j < m->down_top_k && taken < 3; j++)
	{
		const DecodedToken *t = &tokens[j];
		bool seen = strcmp(t->lower, tokens[0].lower) == 0 ||
					(entity_lower && strcmp(t->lower, entity_lower) == 0);

		/* an earlier `also` token of the same word (" Paris", "Paris") once */
		for (int i = 1; i < j && !seen; i++)
			seen =
				logits[i] > 0 && tokens[i].letters_only && strcmp(tokens[i].lower, t->lower) == 0;
		if (logits[j] <= 0 || !t->letters_only || seen)
			continue;
		appendStringInfo(&out, "%s%s", taken++ ? ", " : "", t->text);
	}
	return out.data;
}

bool
is_content_target(const DecodedToken *t, const char *entity_lower)
{
	return t->letters_only && strcmp(t->lower, entity_lower) != 0 && !is_stopword(t->lower);
}

int
layer_arg(FunctionCallInfo fcinfo, int i, const InferModel *m)
{
	int layer;

	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("layer must not be NULL")));
	layer = PG_GETARG_INT32(i);
	if (layer < 0 || layer >= m->layers)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("layer %d is out of range: model \"%s\" has layers 0 to %d", layer,
							   m->name, m->layers - 1),
						errhint("infer_show_layers('%s') lists them.", m->name)));
	return layer;
}

int
top_arg(FunctionCallInfo fcinfo, int i, int max)
{
	int top;

	if (PG_ARGISNULL(i))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("top must not be NULL")));
	top = PG_GETARG_INT32(i);
	if (top < 1 || top > max)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("top must be between 1 and %d, not %d", max, top)));
	return top;
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
