/*
 * index.h: the `infer` index access method, column mode.
 *
 *   CREATE INDEX ON docs USING infer (title) WITH (model = 'm');
 *   SELECT * FROM docs ORDER BY title <~> 'query' LIMIT 10;
 *
 * Each indexed value's signature (similar.h: its tokens) is computed once, at
 * insert, and stored; a scan ranks every row by the same infer_distance the
 * <~> operator computes, from the stored tokens.
 * One file per phase, as pgvector does: index_utils.c (handler, options,
 * pages), index_build.c, index_insert.c, index_scan.c, index_vacuum.c.
 *
 * Pages (all WAL-logged with GenericXLog, like contrib/bloom):
 *   block 0      META      InferMetaData
 *   ROWS pages   one item per heap row: its TID, flags and signature (token ids)
 * (Version 1 indexes also had POSTINGS, DIR and PENDING pages of feature
 * posting lists; a version 1 index is refused with a REINDEX hint.)
 */
#ifndef PG_INFER_INDEX_H
#define PG_INFER_INDEX_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

#include "similar.h"

#define INFER_INDEX_MAGIC 0x49584e49 /* "INXI" */
/* = SIGNATURE_VERSION: an index of another signature definition is refused (REINDEX) */
#define INFER_INDEX_VERSION SIGNATURE_VERSION
#define INFER_META_BLKNO 0

typedef enum InferPageType
{
	PAGE_META = 1,
	PAGE_ROWS = 2,
	PAGE_POSTINGS = 3,
	PAGE_DIR = 4,
	PAGE_PENDING = 5,
	/* model store mode (index_model.c) */
	PAGE_GATE = 6,
	PAGE_EMBED = 7,
	PAGE_DOWNMETA = 8,
	PAGE_BLOB = 9,
	PAGE_WEIGHT = 10
} InferPageType;

/* The special space of every page. */
typedef struct InferPageOpaqueData
{
	BlockNumber next; /* next page of the same chain */
	uint16 type;      /* InferPageType */
	uint16 count;     /* fixed-size entries on the page (POSTINGS, DIR, PENDING) */
} InferPageOpaqueData;

#define InferPageGetOpaque(page) ((InferPageOpaqueData *) PageGetSpecialPointer(page))
#define InferPageEntries(page) ((char *) PageGetContents(page))
#define INFER_PAGE_CAPACITY(size)                                                                  \
	((BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(InferPageOpaqueData))) / (size))

typedef struct InferMetaData
{
	uint32 magic;
	uint32 version;
	char model[MODEL_NAME_MAX + 1];
	int32 nlists; /* version 2: the model's vocabulary size (signature tokens are below it) */
	BlockNumber dir_head;
	BlockNumber rows_head;
	BlockNumber rows_tail;
	BlockNumber pending_head;
	BlockNumber pending_tail;
	int64 nrows;
	int32 signature_layer; /* version 2: similar.h signature_layer() at build time */
} InferMetaData;

#define InferPageGetMeta(page) ((InferMetaData *) PageGetContents(page))

/* Where list i's sorted postings start. */
typedef struct DirEntry
{
	BlockNumber blk;
	uint16 index;
	uint16 unused;
	int32 count;
} DirEntry;

#define POSTING_DEAD 0x0001

typedef struct Posting
{
	ItemPointerData tid;
	uint16 flags;
	float4 score;
} Posting;

typedef struct PendingPosting
{
	int32 list;
	Posting p;
} PendingPosting;

#define ROW_DEAD 0x0001
#define ROW_NULL 0x0002

/* A ROWS item: header, then nsig SignatureEntry. */
typedef struct RowHeader
{
	ItemPointerData tid;
	uint16 flags;
	uint16 nsig;
	uint16 unused;
} RowHeader;

/* version 3: a signature token (list) and its confidence (score) */
typedef struct SignatureEntry
{
	int32 list;
	float4 score;
} SignatureEntry;

/* WITH (...) options */
typedef struct InferOptions
{
	int32 vl_len_;
	int model_offset;
	int source_offset;
	int level_offset;
} InferOptions;

/* index_utils.c */
extern void index_options_init(void);
extern const char *index_model_option(Relation index);
/* WITH (source = ...): the index is a model store (index_model.c) */
extern const char *index_source_option(Relation index);
extern void build_model_index(Relation index, const char *source, const char *level);
extern const char *index_level_option(Relation index);
extern Buffer index_new_buffer(Relation index);
extern void index_init_page(Page page, InferPageType type);
extern void index_set_lower(Page page, int count, Size entry_size);
extern void index_read_meta(Relation index, InferMetaData *meta);
extern InferModel *index_model(Relation index, const InferMetaData *meta);

/*
 * signature_layer of an index built on a remote model: its server computes
 * the signatures (infer_signatures) and the scan's dots
 * (infer_signature_dots); nlists is 0 (the server checks the tokens).
 */
#define SIGNATURE_LAYER_REMOTE (-1000)

/* An index on a remote model: checks the model is still remote (else REINDEX). */
extern void index_check_remote(Relation index, const InferMetaData *meta);
/* A ROWS item: the signature's tokens and confidences (sig NULL: none). */
extern char *index_make_row(ItemPointer tid, uint16 flags, const Signature *sig, Size *size);
extern void index_append_row(Relation index, ItemPointer tid, uint16 flags, const Signature *sig);

/* the phases */
extern IndexBuildResult *infer_ambuild(Relation heap, Relation index, struct IndexInfo *info);
extern void infer_ambuildempty(Relation index);
extern bool infer_aminsert(Relation index, Datum *values, bool *isnull, ItemPointer tid,
						   Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
						   struct IndexInfo *info);
extern IndexScanDesc infer_ambeginscan(Relation index, int nkeys, int norderbys);
extern void infer_amrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys,
						   int norderbys);
extern bool infer_amgettuple(IndexScanDesc scan, ScanDirection dir);
extern void infer_amendscan(IndexScanDesc scan);
extern IndexBulkDeleteResult *infer_ambulkdelete(IndexVacuumInfo *info,
												 IndexBulkDeleteResult *stats,
												 IndexBulkDeleteCallback callback,
												 void *callback_state);
extern IndexBulkDeleteResult *infer_amvacuumcleanup(IndexVacuumInfo *info,
													IndexBulkDeleteResult *stats);
extern void infer_amcostestimate(struct PlannerInfo *root, struct IndexPath *path,
								 double loop_count, Cost *startup, Cost *total,
								 Selectivity *selectivity, double *correlation, double *pages);

#endif /* PG_INFER_INDEX_H */
