/*
 * index_cost.c: the planner's estimate for an `infer` index. It only
 * serves ORDER BY col <~> 'text' (no WHERE quals), and only when <~>'s model
 * (infer.default_model) is the index's: otherwise it reports a prohibitive
 * cost so the planner never picks it and the sequential scan gives the
 * right answer.
 */
#include "pg_infer.h"

#include "access/genam.h"
#include "nodes/pathnodes.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

#include "guc.h"
#include "index.h"

#define INFER_DISABLE_COST 1.0e10

static bool
serves_default_model(Oid indexoid)
{
	Relation index = index_open(indexoid, AccessShareLock);
	const char *model = index_model_option(index);
	bool ok = model && infer_default_model && strcmp(model, infer_default_model) == 0;

	index_close(index, AccessShareLock);
	return ok;
}

void
infer_amcostestimate(struct PlannerInfo *root, struct IndexPath *path, double loop_count,
					 Cost *startup, Cost *total, Selectivity *selectivity, double *correlation,
					 double *pages)
{
	GenericCosts costs;

	*correlation = 0;
	*selectivity = 1;
	*pages = 0;
	if (path->indexorderbys == NIL || !serves_default_model(path->indexinfo->indexoid))
	{
		*startup = *total = INFER_DISABLE_COST;
		return;
	}
	memset(&costs, 0, sizeof(costs));
	genericcostestimate(root, path, loop_count, &costs);
	/* the query's signature: its tokens and their vectors, like one <~> evaluation */
	*startup = costs.indexStartupCost + 10000 * 0.0025;
	*total = costs.indexTotalCost + *startup;
	*selectivity = costs.indexSelectivity;
	*correlation = costs.indexCorrelation;
	*pages = costs.numIndexPages;
}
