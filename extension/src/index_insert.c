/*
 * index_insert.c: rows added after CREATE INDEX. The row's signature is
 * computed once, here; its postings go to the unsorted PENDING chain (read
 * whole by every scan, sorted into the lists by REINDEX) and its item to
 * the ROWS chain.
 */
#include "pg_infer.h"

#include "utils/builtins.h"

#include "index.h"

bool
infer_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer tid, Relation heap,
			   IndexUniqueCheck checkUnique, bool indexUnchanged, struct IndexInfo *info)
{
	InferMetaData meta;
	InferModel *m;
	GateHit sig[SIGNATURE_SIZE];
	PendingPosting pending[SIGNATURE_SIZE];
	int n;

	if (index_source_option(index) != NULL)
		return false; /* a model store: rows of infer._models are not indexed */
	index_read_meta(index, &meta);
	m = index_model(index, &meta);
	if (isnull[0] || !text_has_signature(DatumGetTextPP(values[0])))
	{
		index_append_row(index, tid, ROW_NULL, NULL, 0, m);
		return false;
	}
	n = feature_signature(m, DatumGetTextPP(values[0]), "indexed value", sig);
	for (int i = 0; i < n; i++)
	{
		pending[i].list = model_list_id(m, sig[i].layer, sig[i].feature);
		pending[i].p.tid = *tid;
		pending[i].p.flags = 0;
		pending[i].p.score = sig[i].score;
	}
	/* postings first: a crash in between leaves a row findable, not a stray one */
	index_append_pending(index, pending, n);
	index_append_row(index, tid, 0, sig, n, m);
	return false;
}
