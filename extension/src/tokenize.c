/*
 * tokenize.c: infer_tokenize(input text, tokenizer_json text,
 *                            add_special_tokens boolean) -> int[]
 *
 * Hands the text and a HuggingFace tokenizer.json to the host's tokenizer
 * (@huggingface/tokenizers) and returns the token ids it computed.
 */
#include "pg_infer.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "varatt.h"

#include "host.h"

PG_FUNCTION_INFO_V1(infer_tokenize);

Datum
infer_tokenize(PG_FUNCTION_ARGS)
{
	text *input = PG_GETARG_TEXT_PP(0);
	text *json = PG_GETARG_TEXT_PP(1);
	bool special = PG_GETARG_BOOL(2);
	int ntokens;
	int32 *ids;
	Datum *elems;

	/* Checked here, not in the host: a clear error before any host work. */
	if (VARSIZE_ANY_EXHDR(json) == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("tokenizer_json is empty"),
						errhint("Pass the contents of a HuggingFace tokenizer.json file.")));

	ids = host_tokenize(VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json), VARDATA_ANY(input),
						VARSIZE_ANY_EXHDR(input), special, &ntokens);

	elems = palloc(sizeof(Datum) * (ntokens > 0 ? ntokens : 1));
	for (int i = 0; i < ntokens; i++)
		elems[i] = Int32GetDatum(ids[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array_builtin(elems, ntokens, INT4OID));
}
