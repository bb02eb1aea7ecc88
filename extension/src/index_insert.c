/*
 * index_insert.c: rows added after CREATE INDEX. The row's signature is
 * computed once, here, and its item appended to the ROWS chain.
 */
#include "pg_infer.h"

#include "utils/builtins.h"

#include "index.h"
#include "remote.h"

bool
infer_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer tid, Relation heap,
			   IndexUniqueCheck checkUnique, bool indexUnchanged, struct IndexInfo *info)
{
	InferMetaData meta;
	InferModel *m;
	Signature *sig = palloc(sizeof(Signature));

	if (index_source_option(index) != NULL)
		return false; /* a model store: rows of infer._models are not indexed */
	index_read_meta(index, &meta);
	if (meta.signature_layer == SIGNATURE_LAYER_REMOTE)
	{
		index_check_remote(index, &meta);
		m = NULL;
	}
	else
		m = index_model(index, &meta);
	if (isnull[0] || !text_has_signature(DatumGetTextPP(values[0])))
	{
		index_append_row(index, tid, ROW_NULL, NULL);
		return false;
	}
	if (m == NULL)
	{
		text *value = DatumGetTextPP(values[0]);

		remote_signatures(meta.model, &value, 1, sig);
	}
	else
		feature_signature(m, DatumGetTextPP(values[0]), "indexed value", sig);
	index_append_row(index, tid, 0, sig);
	return false;
}
