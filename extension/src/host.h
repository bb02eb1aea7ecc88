/*
 * host.h: synchronous calls from C into the TypeScript host.
 *
 * The host is the JavaScript object that the pglite-infer package installs
 * as Module.pgInferHost when PGlite loads the extension. Each hook here is an
 * EM_JS function: it runs inside PGlite's JavaScript glue, calls the host,
 * and returns a length. Results travel back in two steps because C must own
 * the memory (palloc, so an ERROR frees it): the host keeps its result, C
 * allocates that many bytes and asks the host to copy them in.
 *
 * A host exception never unwinds through WebAssembly: the glue catches it,
 * and the hook raises it here as an ordinary PostgreSQL ERROR with the
 * host's message and SQLSTATE (default 38000, external_routine_exception).
 */
#ifndef PG_INFER_HOST_H
#define PG_INFER_HOST_H

#include "postgres.h"

/*
 * Token ids of text[0..text_len) under the tokenizer described by
 * tokenizer_json[0..json_len). Returns a palloc'd array; *ntokens is set.
 */
extern int32 *host_tokenize(const char *tokenizer_json, int json_len, const char *text,
							int text_len, bool add_special_tokens, int *ntokens);

#endif /* PG_INFER_HOST_H */
