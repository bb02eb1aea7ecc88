/*
 * pg_infer.h: declarations shared by the pg_infer C sources.
 */
#ifndef PG_INFER_H
#define PG_INFER_H

#include "postgres.h"

/* Must match default_version in pg_infer.control and the npm package version. */
#define PG_INFER_VERSION "0.1.0"

/*
 * strlen bounded by max: PGlite exports no strnlen, so a side module cannot
 * call it (wasm/check-symbols.mjs would refuse the build).
 */
static inline size_t
bounded_strlen(const char *s, size_t max)
{
	const char *nul = memchr(s, '\0', max);

	return nul ? (size_t) (nul - s) : max;
}

#endif /* PG_INFER_H */
