/*
 * pg_infer.c: module entry point.
 *
 * One file per feature lives beside this one (host.c for the bridge to the
 * TypeScript host, tokenize.c for infer_tokenize, ...); this file only
 * declares the module and what belongs to the module as a whole.
 */
#include "pg_infer.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "compute.h"
#include "deadline.h"
#include "forward.h"
#include "guc.h"
#include "index.h"
#include "model.h"

PG_MODULE_MAGIC_EXT(.name = "pg_infer", .version = PG_INFER_VERSION);

PG_FUNCTION_INFO_V1(infer_version);

void _PG_init(void);

void
_PG_init(void)
{
	infer_define_gucs();
	index_options_init();
	model_registry_init();
	/* what plugs into the registry: sources and load hooks, in this order */
	model_index_init();
	forward_init();
	compute_init();
	utility_guards_init();
	deadline_init();
}

/* infer_version() -> text: the version of the loaded C module. */
Datum
infer_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(PG_INFER_VERSION));
}
