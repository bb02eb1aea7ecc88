/*
 * host.c: the C side of the bridge to the TypeScript host (see host.h).
 *
 * The JavaScript side is packages/pglite-infer/src/host/bridge.ts: every
 * EM_JS body below only forwards its arguments to Module.pgInferHost, so the
 * logic (decoding strings from the heap, error capture) is typed TypeScript.
 *
 * In a native build (the same sources compiled against stock PostgreSQL
 * headers, to keep them portable) there is no JavaScript host: the hooks
 * raise a clear error instead.
 */
#include "host.h"

#include "utils/elog.h"

#ifdef __EMSCRIPTEN__
#include <emscripten.h>

/*
 * Each call returns the result's size in bytes (>= 0), or -1 when the host
 * threw; then pgi_host_error() fetches the message. A missing host (the
 * extension was loaded without the pglite-infer package) is reported by the
 * bridge the same way when it exists, and here when it does not.
 */
EM_JS(int, pgi_host_tokenize,
	  (const char *json, int json_len, const char *text, int text_len, int special), {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.tokenize(Module, json, json_len, text, text_len, special);
	  });

/* Copies the pending result (size given by the last call) into dst. */
EM_JS(void, pgi_host_take, (void *dst, int len), { Module.pgInferHost.take(Module, dst, len); });

/* Size of the pending error message in UTF-8 bytes, including the NUL. */
EM_JS(int, pgi_host_error_len, (void), { return Module.pgInferHost.errorLength(); });

/* Copies the pending error: SQLSTATE (5 chars) then the message, NUL-ended. */
EM_JS(void, pgi_host_error, (char *dst, int len),
	  { Module.pgInferHost.takeError(Module, dst, len); });

/* Raises the host's last error as an ERROR; never returns. */
static void
raise_host_error(const char *hook, int rc)
{
	char *buf;
	int len;

	if (rc == -2)
		ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						errmsg("pg_infer: no host is installed, so \"%s\" cannot run", hook),
						errhint("Load the extension through the pglite-infer package: "
								"PGlite.create({ extensions: { pgInfer } }).")));

	len = pgi_host_error_len();
	buf = palloc(len > 6 ? len : 6);
	pgi_host_error(buf, len);
	ereport(ERROR, (errcode(MAKE_SQLSTATE(buf[0], buf[1], buf[2], buf[3], buf[4])),
					errmsg("pg_infer host \"%s\" failed: %s", hook, buf + 5)));
}

/* Allocates the pending result of a successful call and copies it in. */
static void *
take_result(int nbytes)
{
	void *dst = palloc(nbytes > 0 ? nbytes : 1);

	pgi_host_take(dst, nbytes);
	return dst;
}

int32 *
host_tokenize(const char *tokenizer_json, int json_len, const char *text, int text_len,
			  bool add_special_tokens, int *ntokens)
{
	int rc =
		pgi_host_tokenize(tokenizer_json, json_len, text, text_len, add_special_tokens ? 1 : 0);

	if (rc < 0)
		raise_host_error("tokenize", rc);
	*ntokens = rc / (int) sizeof(int32);
	return (int32 *) take_result(rc);
}

#else /* native build: no JavaScript host */

int32 *
host_tokenize(const char *tokenizer_json, int json_len, const char *text, int text_len,
			  bool add_special_tokens, int *ntokens)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					errmsg("pg_infer: the host hook \"tokenize\" exists only in the PGlite "
						   "(WebAssembly) build")));
	pg_unreachable();
}

#endif
