/*
 * pg_infer.h: declarations shared by the pg_infer C sources.
 */
#ifndef PG_INFER_H
#define PG_INFER_H

#include "postgres.h"

/* Must match default_version in pg_infer.control and the npm package version. */
#define PG_INFER_VERSION "0.1.0"

#endif /* PG_INFER_H */
