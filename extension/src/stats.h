/*
 * stats.h: what pg_infer did in this backend, per model and SQL function
 * (stats.c): infer_stats(), infer_stats_reset() and infer.log_level.
 */
#ifndef PG_INFER_STATS_H
#define PG_INFER_STATS_H

#include "postgres.h"

#include "model.h"

typedef enum InferLogLevel
{
	INFER_LOG_ERROR,   /* nothing of pg_infer's own beyond errors */
	INFER_LOG_WARNING, /* nor beyond warnings (the default) */
	INFER_LOG_INFO,    /* model loads and compute backends: INFO */
	INFER_LOG_DEBUG    /* and one line per call: DEBUG1 */
} InferLogLevel;

extern int infer_log_level; /* InferLogLevel, guc.c */

/*
 * Brackets one call of a SQL function: stats_begin before its work,
 * stats_end with the model it used and the rows it returned. A call that
 * fails counts nothing; the next stats_begin starts afresh.
 */
extern void stats_begin(const char *function);
extern void stats_end(const InferModel *m, int64 rows);

/* A model loaded in `ms` milliseconds (counts under function 'load'). */
extern void stats_load(const InferModel *m, double ms);

/* A cache lookup of the current call: a loaded model or a cached signature. */
extern void stats_cache(bool hit);

/* What of a model a host compute backend holds: its gate rows, its forward weights. */
typedef enum ComputePart
{
	COMPUTE_PART_GATE = 0,
	COMPUTE_PART_FORWARD = 1,
	COMPUTE_PART_ALL = 2 /* both (to forget a model) */
} ComputePart;

/* Bytes of a model a host compute backend holds now (compute.c: uploads and frees). */
extern void stats_compute_bytes(const char *model, ComputePart part, int64 bytes);
extern int64 stats_compute_bytes_of(const char *model);

/* An INFO line when infer.log_level is info or debug. */
#define infer_log_info(...)                                                                        \
	do                                                                                             \
	{                                                                                              \
		if (infer_log_level >= INFER_LOG_INFO)                                                     \
			ereport(INFO, (errmsg_internal(__VA_ARGS__)));                                         \
	} while (0)

#endif /* PG_INFER_STATS_H */
