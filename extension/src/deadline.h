/*
 * deadline.h: statement_timeout inside pg_infer's long loops (deadline.c).
 *
 * PostgreSQL enforces statement_timeout with SIGALRM, which PGlite does not
 * have: a long index build or forward pass would run to its end. Every loop
 * of pg_infer that can run long checks the statement's deadline between
 * steps instead, through INFER_CHECK_INTERRUPTS().
 */
#ifndef PG_INFER_DEADLINE_H
#define PG_INFER_DEADLINE_H

#include "postgres.h"

#include "miscadmin.h"

/* Raises 57014 (query_canceled) once the statement has run past statement_timeout. */
extern void infer_check_deadline(void);

/*
 * Milliseconds the statement has left before statement_timeout, or -1 when
 * no timeout is set: for work that leaves the WASM thread (a compute
 * backend's worker), which must stop at the same deadline.
 */
extern int infer_deadline_left_ms(void);

/* Tracks where statements begin (_PG_init). */
extern void deadline_init(void);

/* utility.c: a top-level utility statement (CREATE INDEX, REINDEX, ...) begins and ends. */
extern void deadline_utility_begin(bool toplevel);
extern void deadline_utility_end(void);

#define INFER_CHECK_INTERRUPTS()                                                                   \
	do                                                                                             \
	{                                                                                              \
		CHECK_FOR_INTERRUPTS();                                                                    \
		infer_check_deadline();                                                                    \
	} while (0)

#endif /* PG_INFER_DEADLINE_H */
