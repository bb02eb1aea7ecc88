/*
 * deadline.c: the start of the current statement and its statement_timeout.
 *
 * A statement begins when the executor starts at nesting depth 0 (queries)
 * or when a top-level utility statement runs (CREATE INDEX, REINDEX). SPI
 * queries that pg_infer runs inside them are nested and do not restart the
 * clock. statement_timeout is read when the statement begins, as PostgreSQL
 * arms its timer then.
 */
#include "pg_infer.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "deadline.h"

static ExecutorStart_hook_type prev_start = NULL;
static ExecutorEnd_hook_type prev_end = NULL;
static int depth = 0;
static TimestampTz statement_start = 0;
static int timeout_ms = 0;

static void
statement_begins(void)
{
	const char *v = GetConfigOption("statement_timeout", true, false);

	statement_start = GetCurrentTimestamp();
	timeout_ms = v ? atoi(v) : 0;
}

void
infer_check_deadline(void)
{
	if (timeout_ms <= 0 || statement_start == 0)
		return;
	if (GetCurrentTimestamp() - statement_start >= (TimestampTz) timeout_ms * 1000)
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("canceling statement due to statement timeout")));
}

int
infer_deadline_left_ms(void)
{
	TimestampTz left;

	if (timeout_ms <= 0 || statement_start == 0)
		return -1;
	left = (TimestampTz) timeout_ms * 1000 - (GetCurrentTimestamp() - statement_start);
	return left > 0 ? (int) (left / 1000) : 0;
}

static void
deadline_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (depth == 0)
		statement_begins();
	depth++;
	if (prev_start)
		prev_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
deadline_executor_end(QueryDesc *queryDesc)
{
	if (depth > 0)
		depth--;
	if (prev_end)
		prev_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

void
deadline_utility_begin(bool toplevel)
{
	if (toplevel && depth == 0)
		statement_begins();
	depth++;
}

void
deadline_utility_end(void)
{
	if (depth > 0)
		depth--;
}

/* An error skips ExecutorEnd: the next statement starts from depth 0 again. */
static void
deadline_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		depth = 0;
		statement_start = 0;
	}
}

void
deadline_init(void)
{
	prev_start = ExecutorStart_hook;
	ExecutorStart_hook = deadline_executor_start;
	prev_end = ExecutorEnd_hook;
	ExecutorEnd_hook = deadline_executor_end;
	RegisterXactCallback(deadline_xact_callback, NULL);
}
