/*
 * index_vacuum.c: VACUUM for `infer` indexes. Rows of dead heap tuples are
 * flagged dead in the ROWS chain (and, in an index of signature version 1,
 * in every posting that names them), so scans skip them; the space comes
 * back with REINDEX.
 */
#include "pg_infer.h"

#include "access/genam.h"
#include "commands/vacuum.h"
#include "utils/rel.h"

#include "index.h"

/* Flags the dead entries of one page; returns how many rows it removed. */
static int
vacuum_page(Relation index, Buffer buf, IndexBulkDeleteCallback callback, void *cb_state,
			double *live)
{
	Page page = BufferGetPage(buf);
	InferPageOpaqueData *o = InferPageGetOpaque(page);
	GenericXLogState *state = NULL;
	Page copy = NULL;
	int removed = 0;

	if (PageIsNew(page) ||
		(o->type != PAGE_ROWS && o->type != PAGE_POSTINGS && o->type != PAGE_PENDING))
		return 0;
#define BEGIN_CHANGE()                                                                             \
	do                                                                                             \
	{                                                                                              \
		if (state == NULL)                                                                         \
		{                                                                                          \
			state = GenericXLogStart(index);                                                       \
			copy = GenericXLogRegisterBuffer(state, buf, 0);                                       \
		}                                                                                          \
	} while (0)

	if (o->type == PAGE_ROWS)
	{
		OffsetNumber max = PageGetMaxOffsetNumber(page);

		for (OffsetNumber off = FirstOffsetNumber; off <= max; off++)
		{
			RowHeader *h = (RowHeader *) PageGetItem(page, PageGetItemId(page, off));

			if (h->flags & ROW_DEAD)
				continue;
			if (callback(&h->tid, cb_state))
			{
				BEGIN_CHANGE();
				((RowHeader *) PageGetItem(copy, PageGetItemId(copy, off)))->flags |= ROW_DEAD;
				removed++;
			}
			else
				(*live)++;
		}
	}
	else
	{
		bool pending = o->type == PAGE_PENDING;
		Size size = pending ? sizeof(PendingPosting) : sizeof(Posting);

		for (int i = 0; i < o->count; i++)
		{
			Posting *p = (Posting *) (InferPageEntries(page) + i * size + (pending ? 4 : 0));

			if (!(p->flags & POSTING_DEAD) && callback(&p->tid, cb_state))
			{
				BEGIN_CHANGE();
				((Posting *) (InferPageEntries(copy) + i * size + (pending ? 4 : 0)))->flags |=
					POSTING_DEAD;
			}
		}
	}
#undef BEGIN_CHANGE
	if (state)
		GenericXLogFinish(state);
	return removed;
}

IndexBulkDeleteResult *
infer_ambulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
				   IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation index = info->index;
	BlockNumber nblocks = RelationGetNumberOfBlocksInFork(index, MAIN_FORKNUM);
	double live = 0;

	if (stats == NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult));
	for (BlockNumber blk = INFER_META_BLKNO + 1; blk < nblocks; blk++)
	{
		Buffer buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, info->strategy);

		vacuum_delay_point(false);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		stats->tuples_removed += vacuum_page(index, buf, callback, callback_state, &live);
		UnlockReleaseBuffer(buf);
	}
	stats->num_pages = nblocks;
	stats->num_index_tuples = live;
	return stats;
}

IndexBulkDeleteResult *
infer_amvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;
	if (stats == NULL && index_source_option(info->index) != NULL)
		stats = palloc0(sizeof(IndexBulkDeleteResult)); /* a model store: no rows */
	if (stats == NULL)
	{
		InferMetaData meta;

		index_read_meta(info->index, &meta);
		stats = palloc0(sizeof(IndexBulkDeleteResult));
		stats->num_index_tuples = meta.nrows;
	}
	stats->num_pages = RelationGetNumberOfBlocksInFork(info->index, MAIN_FORKNUM);
	return stats;
}
